"""Small rclpy helpers shared by the node files (the only core module that imports rclpy).

- QoS profiles per topic kind (DESIGN.md section 3),
- ``run_node``: init, spin, clean shutdown on SIGINT/SIGTERM (executor shut down before
  the node is destroyed),
- ``declare``: a parameter with a description and an optional range, in one call.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# Images and high-rate state: best effort, keep the newest few.
SENSOR_QOS = qos_profile_sensor_data
# Commands (chunks, teleop, e-stop) and features: reliable, shallow queue (newest wins).
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
# The instruction: latched, so a late joiner gets the current one.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Clips (~1.5 MB each): reliable so a lost UDP fragment is resent instead of losing the whole
# clip when the receiver is busy; depth 1, so a slow backbone still only ever sees the newest.
CLIP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Joint states and diagnostics: reliable, default depth.
STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def declare(node: Node, name: str, default, description: str,
            lo: float | int | None = None, hi: float | int | None = None, read_only: bool = False):
    """Declare a parameter with a description (and a range for numbers); return its value."""
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if lo is not None and hi is not None:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        elif isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return node.declare_parameter(name, default, desc).value


def now_ns(node: Node) -> int:
    return node.get_clock().now().nanoseconds


def run_node(make_node: Callable[[], Node], args: list[str] | None = None, threads: int = 0) -> int:
    """Create the node, spin until SIGINT/SIGTERM, then shut down in the safe order.

    threads=0 spins single-threaded; >0 uses a MultiThreadedExecutor with that many threads.
    The node may define ``on_shutdown()``: it runs after the executor stops, before the
    node is destroyed (the bridge uses it to send its last damping commands).
    """
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 0 else SingleThreadedExecutor()

    def _term(signum, _frame):
        rclpy.try_shutdown()  # makes executor.spin() return

    signal.signal(signal.SIGTERM, _term)
    try:
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        if node is not None:
            hook = getattr(node, "on_shutdown", None)
            if hook is not None:
                hook()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
