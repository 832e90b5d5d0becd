"""The simulated G1: a MuJoCo scene (G1, table, red cup, head camera) and its physics.

- ``scene``: builds the model with ``mujoco.MjSpec`` from the G1 MJCF of ``neon-ros assets``.
- ``g1_sim``: ``G1Sim``, the plain-Python simulator (motor PD like the real robot, IMU,
  off-screen rendering); no DDS, no rclpy.
- ``firmware``: what the robot does with DDS messages (CRC check of LowCmd_, newest wins,
  LowState_ contents), as plain functions and classes.
- ``robot_dds``: ``SimRobot``, the robot's DDS side (rt/lowcmd in, rt/lowstate out, both through ``neon_ros.hg_wire``) around a
  ``G1Sim``, stepped in real time on absolute deadlines by a dedicated thread.
- ``camera``: ``CameraLoop``, the head camera rendered at a fixed rate in its own thread.
- ``render``: ``OffscreenRenderer``, headless GL (EGL, else OSMesa) chosen by itself.

The ``sim_g1`` node (neon_ros/nodes/sim_g1.py) wires these to ROS. Nothing here imports
rclpy, and nothing runs at import time.
"""
