"""The rclpy side of `neon-ros teleop` (plain logic: runtime/teleop.py; command line: tools/teleop.py).

One node, ``neon_teleop``: reads the start pose from /joint_states, then publishes
single-point JointTrajectory messages (stamp 0 = "now", only the driven joints) on
/neon/teleop/joint_trajectory at the requested rate, and /neon/estop on request.
"""

from __future__ import annotations

import argparse
import select
import sys
import termios
import time
import tty

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


class TeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("neon_teleop")
        self.pose: np.ndarray | None = None
        self.sent = 0
        self.create_subscription(JointState, contract.TOPIC_JOINT_STATES, self._on_state, rosutil.STATE_QOS)
        self.pub = self.create_publisher(JointTrajectory, contract.TOPIC_TELEOP, rosutil.COMMAND_QOS)
        self.estop_pub = self.create_publisher(Bool, contract.TOPIC_ESTOP, rosutil.COMMAND_QOS)

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

    def estop(self) -> None:
        self.estop_pub.publish(Bool(data=True))


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


def _run_script(node: TeleopNode, ex: SingleThreadedExecutor, script: TeleopScript, start: np.ndarray,
                rate: float) -> None:
    plan = script.plan(start)
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
    print(f"teleop: done ({node.sent} messages); control returns to the policy", flush=True)


def _run_keyboard(node: TeleopNode, ex: SingleThreadedExecutor, start: np.ndarray, args) -> None:
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
                line = state.key(sys.stdin.read(1))
                print("\r" + line.ljust(100), end="", flush=True)
                if state.estop:
                    node.estop()
                    print("\nE-STOP sent", flush=True)
                    state.estop = False
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
    try:
        if args.estop:
            deadline = time.monotonic() + 2.0
            while node.estop_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.05)
            node.estop()
            _spin_for(ex, 0.2)
            print("teleop: E-STOP sent on /neon/estop", flush=True)
            return 0
        start = _wait_pose(node, ex, args.state_timeout)
        if start is None:
            print(f"neon-ros teleop: no /joint_states within {args.state_timeout} s "
                  "(is g1_bridge running, same ROS_DOMAIN_ID?)", file=sys.stderr)
            return 1
        if script is not None:
            _run_script(node, ex, script, start, args.rate)
        else:
            _run_keyboard(node, ex, start, args)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
