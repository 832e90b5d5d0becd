"""A stand-in for g1_bridge's ends of `neon-ros teleop`, on nodes named as the bridge's (its
command and e-stop nodes): /joint_states from the start, the teleop subscription only after
--listen-after s (slow discovery on a loaded machine). --observer: another node subscribes to the
teleop topic from the start (as the demo's observer does), which is not the bridge.

Prints one JSON line: when each teleop message arrived (s after the subscription was created), how
many named points, whether the release (a message without points) came, and the e-stop levels
heard on /neon/estop."""

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil
from test.peers import shut_down, spin_until


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-after", type=float, default=0.0, help="s before the teleop subscription exists")
    ap.add_argument("--total", type=float, default=8.0, help="s to run")
    ap.add_argument("--observer", action="store_true", help="another node on the teleop topic from the start")
    args = ap.parse_args()
    rclpy.init()
    node = Node(contract.BRIDGE_COMMAND_NODE)
    estop_node = Node(contract.BRIDGE_ESTOP_NODE)
    observer = Node("teleop_observer")
    pub = node.create_publisher(JointState, contract.TOPIC_JOINT_STATES, rosutil.STATE_QOS)
    q = np.zeros(g1.NUM_JOINTS)
    node.create_timer(0.02, lambda: pub.publish(msgs.joint_state(time.time_ns(), q)))
    ex = SingleThreadedExecutor()
    for n in (node, estop_node, observer):
        ex.add_node(n)
    arrivals: list[float] = []
    released = []
    estops: list[bool] = []
    estop_node.create_subscription(Bool, contract.TOPIC_ESTOP, lambda m: estops.append(bool(m.data)),
                                   rosutil.LATCHED_QOS)
    if args.observer:
        observer.create_subscription(JointTrajectory, contract.TOPIC_TELEOP, lambda m: None, rosutil.COMMAND_QOS)

    def on_teleop(msg: JointTrajectory) -> None:
        (arrivals if msg.points else released).append(time.monotonic() - listening_since)

    spin_until(ex, min(args.listen_after, args.total), step=0.02)
    if args.listen_after < args.total:
        listening_since = time.monotonic()
        node.create_subscription(JointTrajectory, contract.TOPIC_TELEOP, on_teleop, rosutil.COMMAND_QOS)
        spin_until(ex, args.total - args.listen_after, step=0.02)
    print(json.dumps({"arrivals": arrivals, "released": released, "estops": estops}), flush=True)
    for n in (estop_node, observer):
        ex.remove_node(n)
        n.destroy_node()
    shut_down(ex, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
