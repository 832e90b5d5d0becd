"""Publishes narrations, then prints speech_out diagnostics as JSON lines.

    python -m test.peers.voice_say --say "text" 0.0 --say "other" 2.0 --seconds 5

Each --say TEXT DELAY publishes TEXT on /neon/narration DELAY s after the previous one
(0 = back to back, in the same instant). Waits for a subscriber first.
"""

import argparse
import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from test.peers import shut_down, spin_until


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--say", nargs=2, action="append", default=[], metavar=("TEXT", "DELAY"))
    ap.add_argument("--seconds", type=float, default=5.0, help="diagnostics echo time after the last message")
    ap.add_argument("--name", default="speech_out")
    ap.add_argument("--subscribers", type=int, default=1, help="wait for this many narration subscribers")
    a = ap.parse_args()
    rclpy.init()
    node = Node("voice_say")
    pub = node.create_publisher(String, contract.TOPIC_NARRATION, rosutil.COMMAND_QOS)

    def on_diag(m: DiagnosticArray) -> None:
        for st in m.status:
            if st.name == a.name:
                print(json.dumps({"t": time.monotonic(), "level": int.from_bytes(st.level, "little"),
                                  "message": st.message, "values": msgs.diagnostic_values(st)}), flush=True)

    node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    spin_until(ex, 60.0, lambda: pub.get_subscription_count() >= a.subscribers)
    for text, delay in a.say:
        spin_until(ex, float(delay), step=0.02)
        pub.publish(String(data=text))
        print(json.dumps({"t": time.monotonic(), "said": text}), flush=True)
    spin_until(ex, a.seconds)
    shut_down(ex, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
