"""`neon-ros demo`: orchestration (run), child processes, observer node (monitor), live status,
task verdict (tasks) and the report (report). See neon_ros.tools.demo.cli for the user's view."""
