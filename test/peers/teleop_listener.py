"""A stand-in for g1_bridge's ends of `neon-ros teleop`: /joint_states from the start, the teleop
subscription only after --listen-after s (slow discovery on a loaded machine).

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
    args = ap.parse_args()
    rclpy.init()
    node = Node("teleop_listener")
    pub = node.create_publisher(JointState, contract.TOPIC_JOINT_STATES, rosutil.STATE_QOS)
    q = np.zeros(g1.NUM_JOINTS)
    node.create_timer(0.02, lambda: pub.publish(msgs.joint_state(time.time_ns(), q)))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    arrivals: list[float] = []
    released = []
    estops: list[bool] = []
    node.create_subscription(Bool, contract.TOPIC_ESTOP, lambda m: estops.append(bool(m.data)), rosutil.LATCHED_QOS)

    def on_teleop(msg: JointTrajectory) -> None:
        (arrivals if msg.points else released).append(time.monotonic() - listening_since)

    spin_until(ex, min(args.listen_after, args.total), step=0.02)
    if args.listen_after < args.total:
        listening_since = time.monotonic()
        node.create_subscription(JointTrajectory, contract.TOPIC_TELEOP, on_teleop, rosutil.COMMAND_QOS)
        spin_until(ex, args.total - args.listen_after, step=0.02)
    print(json.dumps({"arrivals": arrivals, "released": released, "estops": estops}), flush=True)
    shut_down(ex, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
