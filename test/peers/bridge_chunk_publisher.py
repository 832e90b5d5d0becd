"""Publishes 16x29 action chunks at 20 Hz (stamped now) until killed: the standing pose with
one joint overridden. Test peer of the bridge tests (the one that gets kill -9).

usage: python -m test.peers.bridge_chunk_publisher JOINT TARGET
"""

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil


class ChunkPublisher(Node):
    def __init__(self, joint: str, target: float):
        super().__init__("bridge_chunk_publisher")
        self.pose = g1.STANDING_POSE.copy()
        self.pose[g1.JOINT_INDEX[joint]] = target
        self.pub = self.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
        self.n = 0
        self.create_timer(contract.CONTROL_DT, self.tick)

    def tick(self) -> None:
        chunk = np.tile(self.pose, (contract.CHUNK_STEPS, 1))
        self.pub.publish(msgs.chunk_to_trajectory(chunk, rosutil.now_ns(self)))
        self.n += 1
        if self.n == 1:
            print("PUBLISHING", flush=True)


if __name__ == "__main__":
    name, value = sys.argv[1], float(sys.argv[2])
    rosutil.run_node(lambda: ChunkPublisher(name, value), [])
    rclpy.try_shutdown()
