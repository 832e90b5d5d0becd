"""Prints what the voice nodes publish, one JSON line per message, until told to stop.

    python -m test.peers.voice_echo --seconds 60 --instructions 3 [--audio] [--diagnostics NAME [--until KEY]]

Lines: {"topic": ..., "t": monotonic s, ...}; "READY" once subscribed; exits after
--instructions instruction messages (and as many audio messages with --audio; 0 = never)
once every --until KEY has been non-empty in a NAME diagnostics status, or after --seconds.
"""

import argparse
import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, String

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from neon_ros.voice.audio_msg import msg_to_audio
from test.peers import shut_down, spin_until


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--instructions", type=int, default=0)
    ap.add_argument("--audio", action="store_true")
    ap.add_argument("--diagnostics", default="")
    ap.add_argument("--match", default="", help="KEY=VALUE a diagnostics status must carry (another test's "
                    "node on a colliding random domain is ignored)")
    ap.add_argument("--until", action="append", default=[], metavar="KEY",
                    help="also wait for a diagnostics status of NAME with a non-empty KEY (repeatable)")
    a = ap.parse_args()
    rclpy.init()
    node = Node("voice_echo")
    key, _, want = a.match.partition("=")
    count = [0]
    audio_count = [0]
    seen: set[str] = set()  # --until keys seen non-empty

    def on_instruction(m: String) -> None:
        count[0] += 1
        emit(topic="instruction", t=time.monotonic(), text=m.data)

    def on_audio(m: Float32MultiArray) -> None:
        x = msg_to_audio(m)
        audio_count[0] += 1
        emit(topic="audio", t=time.monotonic(), samples=int(x.size), peak=float(abs(x).max()) if x.size else 0.0)

    def on_diag(m: DiagnosticArray) -> None:
        for st in m.status:
            values = msgs.diagnostic_values(st)
            if st.name == a.diagnostics and (not a.match or values.get(key) == want):
                seen.update(k for k in a.until if values.get(k))
                emit(topic="diagnostics", t=time.monotonic(), level=int.from_bytes(st.level, "little")
                     if isinstance(st.level, bytes) else int(st.level), message=st.message,
                     values=values)

    node.create_subscription(String, contract.TOPIC_INSTRUCTION, on_instruction, rosutil.LATCHED_QOS)
    if a.audio:
        node.create_subscription(Float32MultiArray, contract.TOPIC_UTTERANCE_AUDIO, on_audio, rosutil.LATCHED_QOS)
    if a.diagnostics:
        node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    print("READY", flush=True)

    def done() -> bool:
        return (bool(a.instructions) and count[0] >= a.instructions and (not a.audio or audio_count[0] >= a.instructions)
                and seen.issuperset(a.until))

    spin_until(ex, a.seconds, done)
    shut_down(ex, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
