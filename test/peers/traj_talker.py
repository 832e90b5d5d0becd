"""Publishes a known 16x29 JointTrajectory at 10 Hz until killed (test peer)."""

import numpy as np
import rclpy
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil


def known_chunk() -> np.ndarray:
    k = np.arange(contract.CHUNK_STEPS)[:, None]
    j = np.arange(g1.NUM_JOINTS)[None, :]
    return 0.001 * k * (j + 1)


class Talker(Node):
    def __init__(self):
        super().__init__("traj_talker")
        self.pub = self.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
        self.create_timer(0.1, self.tick)

    def tick(self):
        self.pub.publish(msgs.chunk_to_trajectory(known_chunk(), rosutil.now_ns(self)))


if __name__ == "__main__":
    rosutil.run_node(Talker)
    rclpy.try_shutdown()
