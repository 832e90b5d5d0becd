"""The G1 bridge core: safety checks, chunk scheduling, the per-2 ms controller, LowCmd I/O.

Plain Python (no rclpy): ``neon_ros.nodes.g1_bridge`` wraps it in a ROS 2 node, and
`neon-ros bench bridge` (neon_ros.tools.bench.bridge) drives the same code. Modules:

- ``safety``: input validation (whole-message rejects with counted reasons), joint-limit
  clamp with margin, per-joint rate limit;
- ``schedule``: plays a chunk on its own time base and switches chunks without a jump;
- ``command``: one cycle's motor command, the measured state, a mode's joints, the damping command;
- ``controller``: disabled / enabling / policy / teleop / hold / damp / e-stop decisions;
- ``lowcmd``: unitree_hg LowCmd_ building for the ``lowcmd`` and ``arm_sdk`` modes;
- ``loop``: the 500 Hz thread with absolute deadlines over unitree_sdk2py DDS;
- ``heartbeat``: the loop's liveness sample after each LowCmd_ (rt/neon/bridge_heartbeat);
- ``watchdog``: bridge_watchdog's core: the bridge's damping when its heartbeat stops;
- ``latch``: the e-stop latch on disk, which survives a bridge restart;
- ``motion_switcher``: lowcmd mode's check before enabling: no Unitree motion mode owns the motors;
- ``gravity``: the G1 model's gravity torque as feed-forward (``gravity_compensation``).

Figures measured on the 2-core development machine while 7 other engineers loaded it
(load average 12-20): one safety+LowCmd+CRC step ~150 us median; 500 Hz period error
p50 0.004-0.01 ms, p99 0.26-0.51 ms with ``rt_priority`` 50 (SCHED_FIFO), p99 12-18 ms at
normal priority.
"""
