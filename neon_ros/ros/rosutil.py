"""Small rclpy helpers shared by the node files (the only core module that imports rclpy).

- QoS profiles per topic kind (DESIGN.md section 3),
- ``run_node``: init, spin, clean shutdown on SIGINT/SIGTERM (executor shut down before
  the node is destroyed), Python stacks on a native crash,
- ``declare_parameters``: a node's parameter table (ros/params.py), read-only, with
  descriptions and ranges,
- ``SideNode``: a second node in an rclpy context of its own, spun by its own thread.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from neon_ros.ros.params import Param, ParamTable, usage, wants_help

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


def descriptor(param: Param) -> ParameterDescriptor:
    """Read-only (the nodes read every parameter once, at start), with the description and range."""
    desc = ParameterDescriptor(description=param.description, read_only=True)
    if param.limits is not None and not isinstance(param.default, bool):
        lo, hi = param.limits
        if isinstance(param.default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        elif isinstance(param.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return desc


def declare_parameters(node: Node, table: ParamTable) -> dict[str, Any]:
    """Declare every parameter of ``table`` on ``node``; return name -> value (overrides applied)."""
    return {name: node.declare_parameter(name, param.default, descriptor(param)).value
            for name, param in table.items()}


def apply_scheduling(p: dict[str, Any], whole_process: bool = True) -> str:
    """A node's ``nice`` and ``slice_us`` (``params.scheduling_params``) for every thread it has
    (or the calling one); the threads started later inherit them. Call early in ``__init__``;
    returns a status text."""
    from neon_ros.runtime.timing import set_nice, set_session_nice, set_slice

    status = ["normal priority"]
    if p["nice"] != 0:
        status.append(set_nice(p["nice"], whole_process))
        if whole_process:  # a session of its own (autogroup): its nice is what ranks it against the others
            status.append(set_session_nice(p["nice"]))
    if p["slice_us"] > 0:
        status.append(set_slice(p["slice_us"], whole_process).removeprefix("normal priority, "))
    return ", ".join(part for part in status if part)


def now_ns(node: Node) -> int:
    return node.get_clock().now().nanoseconds


def run_node(make_node: Callable[[], Node], args: list[str] | None = None, threads: int = 0) -> int:
    """Create the node, spin until SIGINT/SIGTERM, then shut down in the safe order.

    threads=0 spins single-threaded; >0 uses a MultiThreadedExecutor with that many threads.
    The node may define ``on_shutdown()``: it runs after the executor stops, before the
    node is destroyed (the bridge uses it to send its last damping commands).
    A crash in native code (SIGSEGV, SIGABRT, ...) prints every thread's Python stack to stderr
    (faulthandler), so a node that dies in a DDS or rclpy callback says where.
    """
    faulthandler.enable(all_threads=True)
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
    except RCLError:
        if rclpy.ok():
            raise  # a real failure, not the shutdown SIGTERM asked for
        # SIGTERM invalidated the context while an executor thread was building its wait set
    finally:
        executor.shutdown(timeout_sec=1.0)
        if node is not None:
            hook = getattr(node, "on_shutdown", None)
            if hook is not None:
                hook()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def node_main(make_node: Callable[[], Node], name: str, doc: str, parameters: ParamTable,
              args: list[str] | None = None, threads: int = 0) -> int:
    """A node's ``main()``: ``--help`` prints its parameter table (no rclpy.init), else ``run_node``."""
    if wants_help(args):
        print(usage(doc, parameters, name))
        return 0
    return run_node(make_node, args, threads)


def publish_until_acked(pub, send: Callable[[], None], period: float, timeout: float,
                        between: Callable[[], None] | None = None) -> float | None:
    """``send()`` (a publish on the reliable ``pub``), then wait up to ``period`` s for every matched
    subscription to acknowledge it; again until they did (the seconds it took) or ``timeout`` s
    passed (None). Only a reader that knows the writer acknowledges, and a sample lost on the way
    would otherwise wait for the reliability protocol's heartbeat (3 s in Fast DDS).
    ``between()`` runs after each unacknowledged send (spin an executor there)."""
    t0 = time.monotonic()
    while True:
        send()
        wait = min(period, t0 + timeout - time.monotonic())
        if pub.wait_for_all_acked(Duration(seconds=max(wait, 0.0))):
            return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout:
            return None
        if between is not None:
            between()


class SideNode:
    """A node in an rclpy context of its own (its own DDS participant), spun by its own thread.

    For inputs that must not wait behind the main node's executor, nor share its participant's
    receive queues (the bridge's e-stop; its command intake). The context takes the process's
    ROS arguments (an SROS2 ``--enclave`` is the participant's identity); the node takes none
    (a launch file's ``__node:=`` would rename it after the main node). Create the
    subscriptions on ``node``, then ``start()``; ``shutdown()`` before the main node goes.
    """

    def __init__(self, name: str, namespace: str = "", dds_nice: int = 0):
        """``dds_nice`` > 0: the threads its DDS participant starts (receiving and decoding what
        arrives, no Python) run on normal scheduling at that nice value, also in a real-time
        process, so a flood on its topics takes CPU from nothing of this process that matters
        more; the spinning thread keeps the caller's scheduling."""
        from neon_ros.runtime.timing import set_nice_of, thread_ids

        self.name = name
        before = set(thread_ids())
        self.context = rclpy.Context()
        rclpy.init(args=sys.argv, context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace or None, context=self.context,
                                      use_global_arguments=False, start_parameter_services=False)
        self.dds_threads = sorted(set(thread_ids()) - before)
        self.dds_nice = set_nice_of(self.dds_threads, dds_nice, fair=True) if dds_nice else "nice 0"
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def shutdown(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        if self.thread.is_alive():
            self.thread.join(timeout=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()
