"""Waits for one JointTrajectory, checks it against the talker's, prints RESULT and exits."""

import sys

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil
from test.peers import shut_down
from test.peers.traj_talker import known_chunk


def main() -> int:
    rclpy.init()
    node = Node("traj_listener")
    got: list[JointTrajectory] = []
    node.create_subscription(JointTrajectory, contract.TOPIC_ACTION_CHUNK, got.append, rosutil.COMMAND_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    while not got:
        ex.spin_once(timeout_sec=0.5)
    names, pos, times = msgs.trajectory_to_arrays(got[0])
    ok = (names == list(g1.JOINT_NAMES) and pos.shape == (16, 29)
          and np.allclose(pos, known_chunk()) and np.allclose(times, np.arange(16) * contract.CONTROL_DT))
    print("RESULT", "ok" if ok else f"mismatch {pos.shape}", flush=True)
    shut_down(ex, node)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
