"""The real backbone node hears /neon/utterance_audio: a tiny random Qwen2.5-Omni thinker in its own
process, driven by a peer process (this file run as ``python -m test.test_backbone_audio_node``).

The peer publishes one clip, then an utterance (with its capture time), then the same frames
again inside the utterance's span, then once more after ``audio_hold``: the features of the
same frames differ only while the utterance is heard, and /diagnostics counts it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

HOLD_S = 2.0
SILENT, HEARD, LATER = "silent", "heard", "later"


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_backbone_node_encodes_the_clip_with_its_utterance(tmp_path):
    from support import REPO, python, ros_env

    from test.peers.nodes_events import start_node, wait_ready

    env = ros_env()
    params = {"preset": "qwen2_5_omni_3b", "tiny": True, "threads": 1, "audio_hold": HOLD_S,
              "diagnostics_period": 0.2}
    with start_node("backbone", env, tmp_path, params) as bb:
        wait_ready(bb, "backbone", timeout=150)
        out = subprocess.run(python("-m", "test.test_backbone_audio_node"), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=240)
        assert bb.alive(), bb.output()[-4000:]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + bb.output()[-3000:]
    res = json.loads(next(line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")))
    f = {k: np.asarray(v, np.float32) for k, v in res["features"].items()}
    assert not np.allclose(f[SILENT], f[HEARD])  # the utterance reached the backbone with its clip
    np.testing.assert_array_equal(f[SILENT], f[LATER])  # past the hold: dropped, the clip is silent again
    d = res["diag"]
    assert d["hears"] == "True" and d["utterances_in"] == "1", d
    assert d["clips_with_audio"] == "1" and d["utterances_expired"] == "1" and d["errors"] == "0", d


# --- the peer ------------------------------------------------------------------------------------

def peer() -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray

    from neon_ros import contract
    from neon_ros.backbones.registry import load_config
    from neon_ros.ros import msgs, rosutil
    from neon_ros.runtime.hearing import NS
    from neon_ros.voice.audio_msg import audio_to_msg
    from test.peers import shut_down, spin_until

    cfg = load_config("qwen2_5_omni_3b", tiny=True)
    h, w = cfg.frame_size
    frames = np.random.default_rng(0).integers(0, 256, (cfg.num_frames, h, w, 3), dtype=np.uint8)
    t = np.arange(16000) / 16000.0
    audio = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)

    rclpy.init()
    node = Node("backbone_audio_peer")
    features: dict[int, list[float]] = {}
    diag: dict[str, str] = {}

    def on_features(m: Image) -> None:
        features[msgs.stamp_to_ns(m.header.stamp)] = msgs.image_to_features(m).tolist()

    def on_diag(m: DiagnosticArray) -> None:
        for s in m.status:
            if s.name == "backbone":
                diag.clear()
                diag.update(msgs.diagnostic_values(s))

    clip_pub = node.create_publisher(Image, contract.TOPIC_CLIP, rosutil.CLIP_QOS)
    audio_pub = node.create_publisher(Float32MultiArray, contract.TOPIC_UTTERANCE_AUDIO, rosutil.LATCHED_QOS)
    feat_sub = node.create_subscription(Image, contract.TOPIC_FEATURES, on_features, rosutil.COMMAND_QOS)
    node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)

    def step(what: str, done, seconds: float = 60.0) -> None:
        if not spin_until(ex, seconds, done):
            print(f"FAILED waiting for {what}; diag {diag}", flush=True)
            raise SystemExit(1)

    def encode(stamp: int) -> list[float]:
        clip_pub.publish(msgs.clip_to_image(frames, stamp))
        step(f"features of the clip stamped {stamp}", lambda: stamp in features)
        return features[stamp]

    try:
        step("discovery", lambda: clip_pub.get_subscription_count() > 0 and audio_pub.get_subscription_count() > 0
             and feat_sub.get_publisher_count() > 0)
        out = {SILENT: encode(rosutil.now_ns(node))}
        end = rosutil.now_ns(node)
        audio_pub.publish(audio_to_msg(audio, end_ns=end))
        step("the utterance", lambda: diag.get("utterances_in") == "1")
        out[HEARD] = encode(end + NS // 10)  # the clip spans [end - 0.9 s, end + 0.1 s]: it hears
        out[LATER] = encode(end + round((HOLD_S + cfg.clip_seconds + 1.0) * NS))  # starts 1 s past the hold
        step("the counters", lambda: diag.get("utterances_expired") == "1")
        print("RESULT " + json.dumps({"features": out, "diag": diag}), flush=True)
    finally:
        shut_down(ex, node)
    return 0


if __name__ == "__main__":
    sys.exit(peer())
