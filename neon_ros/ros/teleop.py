"""The rclpy side of `neon-ros teleop` (plain logic: runtime/teleop.py; command line: tools/teleop.py).

One node, ``neon_teleop``: reads the start pose from /joint_states, then publishes
single-point JointTrajectory messages (stamp 0 = "now", only the driven joints) on
/neon/teleop/joint_trajectory at the requested rate; when it ends (or on space in keyboard
mode) a message naming the driven joints with no points releases them to the policy (the
bridge holds teleop's last target until then). The e-stop goes out through EstopSender:
/neon/estop latched (transient-local, reliable), from a DDS participant of its own, only once
a subscriber matched, and again until every subscriber acknowledged it.
"""

from __future__ import annotations

import argparse
import select
import sys
import termios
import time
import tty
from collections.abc import Callable

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil
from neon_ros.runtime.teleop import KeyboardState, TeleopScript

ESTOP_TIMEOUT_S = 2.0  # `--estop`: discovery of the bridge, then its acknowledgement
KEY_ESTOP_TIMEOUT_S = 0.5  # the keyboard's e key: the bridge is known by then (the pose came from it)


class TeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("neon_teleop")
        self.pose: np.ndarray | None = None
        self.sent = 0
        self.create_subscription(JointState, contract.TOPIC_JOINT_STATES, self._on_state, rosutil.STATE_QOS)
        self.pub = self.create_publisher(JointTrajectory, contract.TOPIC_TELEOP, rosutil.COMMAND_QOS)

    def _on_state(self, msg: JointState) -> None:
        try:
            self.pose, _ = msgs.joint_state_to_g1(msg)
        except msgs.MessageError as exc:
            self.get_logger().warning(f"ignoring /joint_states: {exc}", throttle_duration_sec=5.0)

    def send(self, joints: list[str], targets: np.ndarray) -> None:
        msg = JointTrajectory()  # header.stamp 0: "now" for the bridge
        msg.joint_names = list(joints)
        msg.points = [JointTrajectoryPoint(positions=[float(v) for v in targets],
                                           time_from_start=msgs.s_to_duration(0.0))]
        self.pub.publish(msg)
        self.sent += 1

    def release(self, joints: list[str]) -> None:
        """Hand ``joints`` back to the policy: the bridge reads a message without points as a release."""
        if joints:
            msg = JointTrajectory()
            msg.joint_names = list(joints)
            self.pub.publish(msg)


class EstopSender:
    """The operator's e-stop level on /neon/estop, from a DDS participant of its own.

    Its own participant: a process that also streams commands (keyboard teleop, a test's flood)
    shares one participant's shared-memory segment among its writers, and a flood that fills it
    held the e-stop sample back: 22 ms twice in five trials, and once (a CI run) 3 s, the period of
    the reliability protocol's heartbeat that repairs a lost sample. Each send publishes
    the level again every RESEND_S until every matched subscription acknowledged it, so a sample
    lost on the way costs one period, not a heartbeat. The bridge latches the level, so a repeat
    changes nothing there.
    """

    RESEND_S = 0.02

    def __init__(self, name: str = "neon_estop"):
        self.side = rosutil.SideNode(name)
        self.pub = self.side.node.create_publisher(Bool, contract.TOPIC_ESTOP, rosutil.LATCHED_QOS)
        self.side.start()
        self.sent_ns = 0  # wall clock (ns) of the last send's first publish

    def wait_bridge(self, timeout: float) -> int:
        """The subscriptions matched, once g1_bridge's e-stop subscription is among them or ``timeout``
        s passed (0: not seen; its side node's thread spins it: here is only waiting)."""
        return _wait_for_node(self.side.node, self.pub, contract.TOPIC_ESTOP, contract.BRIDGE_ESTOP_NODE, timeout,
                              lambda: time.sleep(0.01))

    def send(self, level: bool, timeout: float) -> bool:
        """Publish ``level`` until every matched subscription acknowledged it; False at ``timeout``."""
        self.sent_ns = time.time_ns()
        return rosutil.publish_until_acked(self.pub, lambda: self.pub.publish(Bool(data=level)), self.RESEND_S,
                                           timeout) is not None

    def close(self) -> None:
        self.side.shutdown()


def _send_estop(sender: EstopSender, timeout: float) -> int:
    """Send the e-stop once g1_bridge's subscription matched and wait for the acknowledgements; 1 if
    the bridge was not seen."""
    matched = sender.wait_bridge(timeout)
    if matched == 0:
        print(f"neon-ros teleop: E-STOP NOT DELIVERED: g1_bridge's subscription on {contract.TOPIC_ESTOP} not seen "
              f"within {timeout:.1f} s (is g1_bridge running, same ROS_DOMAIN_ID?)", file=sys.stderr, flush=True)
        return 1
    acked = sender.send(True, timeout)
    print(f"teleop: E-STOP sent on {contract.TOPIC_ESTOP} to {matched} subscription(s)"
          f"{', acknowledged' if acked else ', NOT acknowledged within the timeout'}", flush=True)
    return 0 if acked else 1


def _spin_for(ex: SingleThreadedExecutor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        ex.spin_once(timeout_sec=min(left, 0.01))


def _wait_pose(node: TeleopNode, ex: SingleThreadedExecutor, timeout: float) -> np.ndarray | None:
    end = time.monotonic() + timeout
    while node.pose is None and time.monotonic() < end:
        ex.spin_once(timeout_sec=0.05)
    return node.pose


def _wait_for_node(node: Node, pub, topic: str, node_name: str, timeout: float, idle: Callable[[], None]) -> int:
    """``idle()`` until a subscription of node ``node_name`` on ``topic`` is on the graph and ``pub``
    matched every subscription there, or ``timeout`` s passed; the match count (0: that node's
    subscription was not seen; seen but another never matched: the count so far). Any subscriber
    matching first (the demo's observer, a recorder) is not the bridge: in CI the bridge took
    teleop 2.3 s into a 4 s hold that had started on the observer."""
    end = time.monotonic() + timeout
    seen = False
    while time.monotonic() < end:
        subs = node.get_subscriptions_info_by_topic(topic)
        seen = any(s.node_name == node_name for s in subs)
        if seen and pub.get_subscription_count() >= len(subs):
            break
        idle()
    return pub.get_subscription_count() if seen else 0


def _send_until_acked(node: TeleopNode, ex: SingleThreadedExecutor, joints: list[str], targets: np.ndarray,
                      rate: float, timeout: float) -> float | None:
    """Send ``targets`` at ``rate`` until every matched subscription acknowledged one; the seconds it
    took, or None at ``timeout``."""
    return rosutil.publish_until_acked(node.pub, lambda: node.send(joints, targets), 1.0 / rate, timeout,
                                       lambda: ex.spin_once(timeout_sec=0.0))


def _run_script(node: TeleopNode, ex: SingleThreadedExecutor, script: TeleopScript, start: np.ndarray,
                rate: float, timeout: float) -> bool:
    """Play ``script`` from ``start``; False (nothing sent) if no bridge listens on the teleop topic.

    Its clock starts once the bridge's subscription matched and acknowledged the script's first
    point (sent again until then): on a loaded machine discovery can take seconds, and it is not
    symmetric. It waits for the bridge's own subscription, not the first subscriber. Our writer
    can see the bridge's reader well before that reader knows our writer (1.9 s once in CI), and
    the reader drops what it gets before then, which cut the operator's hold short."""
    if _wait_for_node(node, node.pub, contract.TOPIC_TELEOP, contract.BRIDGE_COMMAND_NODE, timeout,
                      lambda: ex.spin_once(timeout_sec=0.05)) == 0:
        print(f"neon-ros teleop: g1_bridge's subscription on {contract.TOPIC_TELEOP} not seen within "
              f"{timeout:.1f} s (is g1_bridge running, same ROS_DOMAIN_ID?); nothing sent", file=sys.stderr, flush=True)
        return False
    plan = script.plan(start)
    waited = _send_until_acked(node, ex, plan.joints, plan.at(0.0), rate, timeout)
    print(f"teleop: first point acknowledged after {waited:.2f} s" if waited is not None else
          f"teleop: first point NOT acknowledged within {timeout:.1f} s; going on", flush=True)
    print(f"teleop: driving {', '.join(plan.joints)} for {plan.duration:.2f} s", flush=True)
    for name, a, b in zip(plan.joints, plan.at(0.0), plan.at(plan.duration), strict=True):
        print(f"teleop: {name} from {start[g1.JOINT_INDEX[name]]:+.3f} rad, target {name}={b:+.3f} "
              f"(first {a:+.3f})", flush=True)
    t0 = time.monotonic()
    k = 0
    while True:
        t = time.monotonic() - t0
        if t > plan.duration:
            break
        node.send(plan.joints, plan.at(t))
        k += 1
        _spin_for(ex, max(0.0, t0 + k / rate - time.monotonic()))
    node.release(plan.joints)
    _spin_for(ex, 0.1)
    print(f"teleop: done ({node.sent} messages); released, control returns to the policy", flush=True)
    return True


def _run_keyboard(node: TeleopNode, ex: SingleThreadedExecutor, sender: EstopSender, start: np.ndarray,
                  args) -> None:
    state = KeyboardState(start, args.step)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    print("teleop keyboard: n/p joint, +/- move, ]/[ step, space release, e E-STOP, q quit", flush=True)
    try:
        tty.setcbreak(fd)
        period = 1.0 / args.rate
        while not state.quit:
            ready, _, _ = select.select([sys.stdin], [], [], period)
            if ready:
                line = state.key(sys.stdin.read(1))  # '' at end of input: quit (and release)
                print("\r" + line.ljust(100), end="", flush=True)
                if state.estop:
                    print(flush=True)  # off the status line
                    _send_estop(sender, KEY_ESTOP_TIMEOUT_S)
                    state.estop = False
            if state.release:
                node.release(state.release)
                state.release = []
            cmd = state.command()
            if cmd is not None:
                node.send(*cmd)
            ex.spin_once(timeout_sec=0.0)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        print("\nteleop: released; control returns to the policy", flush=True)


def run_teleop(args: argparse.Namespace, script: TeleopScript | None) -> int:
    rclpy.init()
    node = TeleopNode()
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    sender = EstopSender()
    try:
        if args.estop:
            return _send_estop(sender, ESTOP_TIMEOUT_S)
        start = _wait_pose(node, ex, args.state_timeout)
        if start is None:
            print(f"neon-ros teleop: no /joint_states within {args.state_timeout} s "
                  "(is g1_bridge running, same ROS_DOMAIN_ID?)", file=sys.stderr)
            return 1
        if script is not None:
            return 0 if _run_script(node, ex, script, start, args.rate, args.state_timeout) else 1
        else:
            _run_keyboard(node, ex, sender, start, args)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        sender.close()
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
