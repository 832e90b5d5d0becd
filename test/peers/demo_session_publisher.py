"""Publishes a synthetic teleop session at fixed rates, then prints what it sent.

30 fps 224x224 rgb8 camera images, 500 Hz /joint_states (a smooth arm motion), 20 Hz
16x29 action chunks and the latched /neon/instruction (one per segment), for
--seconds. Sends are scheduled on the wall clock, so counts are exact: the recorder test
compares them with what lands in the bag. Waits until every publisher has a subscriber.

    python -m test.peers.demo_session_publisher --seconds 20 --instructions "pick the cup|wave"
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil

DEEP = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2000, reliability=ReliabilityPolicy.RELIABLE)
RATES = {contract.TOPIC_CAMERA: 30.0, contract.TOPIC_JOINT_STATES: 500.0, contract.TOPIC_ACTION_CHUNK: 20.0}


def arm_pose(t: float) -> np.ndarray:
    q = g1.STANDING_POSE.copy()
    for i in g1.ARM_INDICES["right"][:4]:
        q[i] += 0.3 * np.sin(0.5 * t + i)
    return np.clip(q, g1.LOWER_LIMITS, g1.UPPER_LIMITS)


def image(stamp_ns: int, k: int, size: int) -> Image:
    msg = Image()
    msg.header.stamp = msgs.ns_to_stamp(stamp_ns)
    msg.header.frame_id = "head_camera"
    msg.height = msg.width = size
    msg.encoding = "rgb8"
    msg.step = 3 * size
    frame = np.full((size, size, 3), k % 256, dtype=np.uint8)
    frame[:, :, 1] = np.arange(size, dtype=np.uint8)[None, :]
    msg.data = frame.tobytes()
    return msg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--instructions", default="pick up the red cup",
                    help="'|'-separated; the session is split evenly between them")
    ap.add_argument("--wait-subscribers", type=float, default=30.0)
    args = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("demo_session_publisher")
    pubs = {
        contract.TOPIC_CAMERA: node.create_publisher(Image, contract.TOPIC_CAMERA, DEEP),
        contract.TOPIC_JOINT_STATES: node.create_publisher(JointState, contract.TOPIC_JOINT_STATES, DEEP),
        contract.TOPIC_ACTION_CHUNK: node.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, DEEP),
        contract.TOPIC_INSTRUCTION: node.create_publisher(String, contract.TOPIC_INSTRUCTION,
                                                          rosutil.LATCHED_QOS),
    }
    deadline = time.monotonic() + args.wait_subscribers
    while any(p.get_subscription_count() < 1 for p in pubs.values()):
        if time.monotonic() > deadline:
            print("NO SUBSCRIBERS", {t: p.get_subscription_count() for t, p in pubs.items()}, flush=True)
            return 1
        time.sleep(0.05)
    print("SUBSCRIBED", flush=True)
    time.sleep(0.5)  # let the matched readers settle before the burst

    instructions = [s.strip() for s in args.instructions.split("|") if s.strip()]
    sent = dict.fromkeys(pubs, 0)
    t0 = time.monotonic()
    next_instruction = 0
    while True:
        t = time.monotonic() - t0
        if t >= args.seconds:
            break
        stamp = rosutil.now_ns(node)
        seg = min(int(t / args.seconds * len(instructions)), len(instructions) - 1)
        if seg >= next_instruction:
            pubs[contract.TOPIC_INSTRUCTION].publish(String(data=instructions[seg]))
            sent[contract.TOPIC_INSTRUCTION] += 1
            next_instruction = seg + 1
        for topic, rate in RATES.items():
            due = min(int(t * rate) + 1, int(args.seconds * rate))
            while sent[topic] < due:
                k = sent[topic]
                if topic == contract.TOPIC_CAMERA:
                    pubs[topic].publish(image(stamp, k, args.size))
                elif topic == contract.TOPIC_JOINT_STATES:
                    tk = k / rate
                    pubs[topic].publish(msgs.joint_state(stamp, arm_pose(tk), np.zeros(g1.NUM_JOINTS)))
                else:
                    tk = k / rate
                    chunk = np.stack([arm_pose(tk + j * contract.CONTROL_DT) for j in range(contract.CHUNK_STEPS)])
                    pubs[topic].publish(msgs.chunk_to_trajectory(chunk, stamp))
                sent[topic] += 1
        time.sleep(0.001)
    print("SENT " + json.dumps(sent), flush=True)
    time.sleep(2.0)  # keep the writers alive while reliable resends drain
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
