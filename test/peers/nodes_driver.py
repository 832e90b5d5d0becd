"""Test peer for the perception/inference nodes: drives their inputs, records their outputs.

Publishes (each optional) a synthetic moving camera image, scripted features, joint
states and an instruction; prints one ``EVENT {json}`` line per received output message
(clip, features, chunk, loco, grip, diagnostics, narration, markers) and per published camera or
feature message, then ``DONE`` after --duration seconds.

Feature script: comma-separated ``kind:seconds`` with kind in fresh, stale, nan, wide,
wrongid, badenc (not 32FC1), none (publish nothing), e.g. ``fresh:2,stale:2,fresh:2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil
from neon_ros.runtime.image import rgb_to_image_fields
from test.peers import shut_down, spin_until


def moving_frame(k: int, h: int, w: int) -> np.ndarray:
    """A bright square sliding over a gradient: consecutive frames differ."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    np.full_like(xx, (k * 7) % 256)], axis=-1).astype(np.uint8)
    s = max(2, min(h, w) // 5)
    x0 = (k * 3) % max(w - s, 1)
    y0 = (k * 2) % max(h - s, 1)
    img[y0:y0 + s, x0:x0 + s] = (255, 255, 255)
    return img


def emit(kind: str, **data) -> None:
    print("EVENT " + json.dumps({"kind": kind, "t": time.monotonic(), **data}), flush=True)



def chunk_times_ok(times: np.ndarray, stamp_ns: int, received_ns: int) -> bool:
    """Points 50 ms apart, point 0 meant for the head's control step (chunk time base ``now``):
    at or after the camera stamp, and not after the chunk arrived here."""
    age_at_receipt = (received_ns - stamp_ns) / 1e9
    return bool(np.allclose(np.diff(times), contract.CONTROL_DT) and -1e-6 <= times[0] <= age_at_receipt + 1e-3)

class Driver(Node):
    def __init__(self, a: argparse.Namespace):
        super().__init__("nodes_driver")
        self.a = a
        self.k = 0
        self.t0: float | None = None  # set once discovery is done; the feature script starts then
        self.script = []
        end = 0.0
        for part in filter(None, a.features.split(",")):
            kind, secs = part.split(":")
            end += float(secs)
            self.script.append((end, kind))
        if a.camera:
            self.cam_pub = self.create_publisher(Image, contract.TOPIC_CAMERA, rosutil.SENSOR_QOS)
            self.create_timer(1.0 / a.camera_rate, self.on_camera)
        if a.bad_clips:
            self.clip_pub = self.create_publisher(Image, contract.TOPIC_CLIP, rosutil.CLIP_QOS)
            self.create_timer(0.2, self.on_bad_clip)
        if self.script:
            self.feat_pub = self.create_publisher(Image, contract.TOPIC_FEATURES, rosutil.COMMAND_QOS)
            self.create_timer(1.0 / a.feature_rate, self.on_features)
        if a.joints:
            self.js_pub = self.create_publisher(JointState, contract.TOPIC_JOINT_STATES, rosutil.STATE_QOS)
            self.create_timer(0.02, self.on_joints)
        if a.instruction:
            self.instr_pub = self.create_publisher(String, contract.TOPIC_INSTRUCTION, rosutil.LATCHED_QOS)
            self.instr_pub.publish(String(data=a.instruction))
        self.clip_sub = self.create_subscription(Image, contract.TOPIC_CLIP, self.on_clip, rosutil.CLIP_QOS)
        if not self.script:
            self.create_subscription(Image, contract.TOPIC_FEATURES, self.on_feat, rosutil.COMMAND_QOS)
        self.create_subscription(JointTrajectory, contract.TOPIC_ACTION_CHUNK, self.on_chunk, rosutil.COMMAND_QOS)
        self.create_subscription(TwistStamped, contract.TOPIC_LOCO_CMD, self.on_loco, rosutil.COMMAND_QOS)
        self.create_subscription(JointState, contract.TOPIC_GRIP_CMD, self.on_grip, rosutil.COMMAND_QOS)
        self.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, self.on_diag, rosutil.STATE_QOS)
        self.create_subscription(String, contract.TOPIC_NARRATION, self.on_narration, rosutil.COMMAND_QOS)
        self.create_subscription(MarkerArray, contract.TOPIC_MARKERS, self.on_markers, rosutil.COMMAND_QOS)
        self.js_seen = 0
        if a.watch_joints:
            self.create_subscription(JointState, contract.TOPIC_JOINT_STATES, self.on_joint_state, rosutil.SENSOR_QOS)

    # --- inputs ---------------------------------------------------------------------------
    def on_camera(self) -> None:
        if self.t0 is None:  # before discovery is done a frame (best effort) may be lost unseen
            return
        self.send_frame()
        if self.a.camera_pair_gap > 0:  # a late frame and the next one close behind it
            time.sleep(self.a.camera_pair_gap)
            self.send_frame()

    def send_frame(self) -> None:
        a = self.a
        msg = Image()
        stamp = rosutil.now_ns(self)
        msg.header.stamp = msgs.ns_to_stamp(stamp)
        msg.header.frame_id = "test_camera"
        if a.camera == "zero":
            msg.encoding, msg.height, msg.width, msg.step = "rgb8", 0, 0, 0
        elif a.camera == "unknown":
            f = rgb_to_image_fields(moving_frame(self.k, a.height, a.width))
            for key, val in f.items():
                setattr(msg, key, val)
            msg.encoding = "weird42"
        else:
            for key, val in rgb_to_image_fields(moving_frame(self.k, a.height, a.width), a.camera).items():
                setattr(msg, key, val)
        self.k += 1
        self.cam_pub.publish(msg)
        emit("camera", stamp=stamp, encoding=msg.encoding)

    def matched(self) -> bool:
        """True once every input publisher of this run has a subscriber and, with a camera, the clip
        subscription a publisher (discovery done both ways: a lost discovery message is repaired by
        the next heartbeat, 3 s later, and the frames sent meanwhile never made clips)."""
        pubs = [getattr(self, n) for n in ("cam_pub", "feat_pub", "clip_pub") if hasattr(self, n)]
        waits_for_clips = self.a.camera and not self.a.bad_clips
        return (all(p.get_subscription_count() > 0 for p in pubs)
                and (not waits_for_clips or self.clip_sub.get_publisher_count() > 0))

    def on_bad_clip(self) -> None:
        """A well-formed rgb8 clip of the wrong geometry (2 frames of 20x30)."""
        frames = np.stack([moving_frame(self.k + i, 20, 30) for i in range(2)])
        self.k += 1
        self.clip_pub.publish(msgs.clip_to_image(frames, rosutil.now_ns(self)))

    def on_features(self) -> None:
        if self.t0 is None:
            return
        el = time.monotonic() - self.t0
        kind = next((k for end, k in self.script if el < end), None)
        if kind is None or kind == "none":
            return
        a = self.a
        now = rosutil.now_ns(self)
        width = a.width_features * 2 if kind == "wide" else a.width_features
        vec = np.random.default_rng(self.k).standard_normal(width).astype(np.float32)
        self.k += 1
        if kind == "nan":
            vec[3] = np.nan
        stamp = now - int(1.0e9) if kind == "stale" else now
        bid = "some_other_backbone" if kind == "wrongid" else a.backbone_id
        msg = msgs.features_to_image(vec, stamp, bid)
        if kind == "badenc":
            msg.encoding = "rgb8"
        self.feat_pub.publish(msg)
        emit("features_sent", stamp=stamp, mode=kind)

    def on_joints(self) -> None:
        self.js_pub.publish(msgs.joint_state(rosutil.now_ns(self), g1.STANDING_POSE, np.zeros(g1.NUM_JOINTS)))

    # --- outputs --------------------------------------------------------------------------
    def on_clip(self, m: Image) -> None:
        emit("clip", stamp=msgs.stamp_to_ns(m.header.stamp), height=m.height, width=m.width,
             encoding=m.encoding, nbytes=len(m.data))

    def on_feat(self, m: Image) -> None:
        v = msgs.image_to_features(m)
        emit("features", stamp=msgs.stamp_to_ns(m.header.stamp), width=int(v.size),
             frame_id=m.header.frame_id, finite=bool(np.all(np.isfinite(v))), norm=float(np.linalg.norm(v)))

    def on_chunk(self, m: JointTrajectory) -> None:
        names, pos, times = msgs.trajectory_to_arrays(m)
        inside = bool(np.all((pos >= g1.LOWER_LIMITS - 1e-9) & (pos <= g1.UPPER_LIMITS + 1e-9)))
        emit("chunk", stamp=msgs.stamp_to_ns(m.header.stamp), shape=list(pos.shape),
             names_ok=names == list(g1.JOINT_NAMES), finite=bool(np.all(np.isfinite(pos))),
             within_limits=inside, times_ok=chunk_times_ok(times, msgs.stamp_to_ns(m.header.stamp),
                                                           rosutil.now_ns(self)),
             received=rosutil.now_ns(self))

    def on_loco(self, m: TwistStamped) -> None:
        emit("loco", stamp=msgs.stamp_to_ns(m.header.stamp), velocity=msgs.twist_to_loco(m).tolist())

    def on_grip(self, m: JointState) -> None:
        emit("grip", stamp=msgs.stamp_to_ns(m.header.stamp), names=list(m.name), closure=list(m.position))

    def on_diag(self, m: DiagnosticArray) -> None:
        for st in m.status:
            emit("diag", name=st.name, level=int.from_bytes(st.level, "little") if isinstance(st.level, bytes)
                 else int(st.level), message=st.message, values=msgs.diagnostic_values(st))

    def on_joint_state(self, m: JointState) -> None:
        self.js_seen += 1
        if self.js_seen % 10 == 1:  # every 10th message is enough to see motion
            q, _ = msgs.joint_state_to_g1(m)
            emit("joint_state", stamp=msgs.stamp_to_ns(m.header.stamp), q=q.tolist())

    def on_narration(self, m: String) -> None:
        emit("narration", text=m.data)

    def on_markers(self, m: MarkerArray) -> None:
        emit("markers", n=len(m.markers), points=[len(x.points) for x in m.markers])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--camera", default="", help="rgb8 | bgr8 | mono8 | zero | unknown ('' = none)")
    ap.add_argument("--camera-rate", type=float, default=20.0)
    ap.add_argument("--camera-pair-gap", type=float, default=0.0,
                    help="s: each camera tick sends two frames this far apart (0 = one frame)")
    ap.add_argument("--height", type=int, default=48)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--features", default="", help="feature script, e.g. fresh:2,stale:2,fresh:2")
    ap.add_argument("--feature-rate", type=float, default=10.0)
    ap.add_argument("--width-features", type=int, default=64)
    ap.add_argument("--backbone-id", default="test")
    ap.add_argument("--joints", action="store_true", help="publish standing joint states at 50 Hz")
    ap.add_argument("--instruction", default="")
    ap.add_argument("--bad-clips", action="store_true", help="publish clips of a wrong geometry at 5 Hz")
    ap.add_argument("--watch-joints", action="store_true", help="record every 10th /joint_states message")
    a = ap.parse_args()
    rclpy.init()
    node = Driver(a)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        spin_until(ex, 30.0, node.matched, step=0.05)  # discovery: the script starts once the nodes listen
        node.t0 = time.monotonic()
        spin_until(ex, a.duration, step=0.05)
    finally:
        print("DONE", flush=True)
        shut_down(ex, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
