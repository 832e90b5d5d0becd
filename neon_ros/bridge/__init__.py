"""The G1 bridge core: safety checks, chunk scheduling, the per-2 ms controller, LowCmd I/O.

Plain Python (no rclpy): ``neon_ros.nodes.g1_bridge`` wraps it in a ROS 2 node, and the
benchmark and the scripted demo drive the same code. Modules:

- ``safety``: input validation (whole-message rejects with counted reasons), joint-limit
  clamp with margin, per-joint rate limit;
- ``schedule``: plays a chunk on its own time base and switches chunks without a jump;
- ``controller``: disabled / enabling / policy / teleop / hold / damp / e-stop decisions;
- ``lowcmd``: unitree_hg LowCmd_ building for the ``lowcmd`` and ``arm_sdk`` modes;
- ``loop``: the 500 Hz thread with absolute deadlines over unitree_sdk2py DDS.
"""
