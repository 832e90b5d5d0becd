"""The simulated G1: a MuJoCo scene (G1, table, red cup, head camera) and its physics.

- ``scene``: builds the model with ``mujoco.MjSpec`` from the G1 MJCF of ``neon-ros assets``.
- ``g1_sim``: ``G1Sim``, the plain-Python simulator (motor PD like the real robot, IMU,
  off-screen rendering); no DDS, no rclpy.
- ``robot_dds``: the robot's DDS side (rt/lowcmd in, rt/lowstate out) around a ``G1Sim``,
  stepped in real time by a dedicated thread; used by the ``sim_g1`` node.

Nothing here imports rclpy, and nothing runs at import time.
"""
