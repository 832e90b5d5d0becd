"""The ROS edge: rclpy helpers (QoS, clocks, parameter tables), message <-> numpy
conversions, the teleop publisher node and the demo's observer node. Only nodes/, ros/
and tools/ may import rclpy (enforced by test/test_layering.py)."""
