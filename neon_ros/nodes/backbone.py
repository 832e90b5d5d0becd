"""backbone: newest /neon/clip + latched /neon/instruction -> /neon/features (32FC1, 1 x D).

The forward pass runs in a worker thread, so a slow backbone never blocks the executor:
the subscription only stores the newest clip (an unprocessed older one is dropped and
counted as skipped), the worker always encodes the freshest clip. Features carry the
clip's camera stamp and frame_id = backbone id, so the head can refuse stale input.

A backbone that hears (preset ``has_audio``: Qwen2.5-Omni, TRIBE v2) also subscribes to
/neon/utterance_audio (latched, from speech_in with publish_audio) and encodes each clip
with the utterance it belongs to: the rule (overlap or within ``audio_hold`` s after the
utterance ended; an instruction ties to its utterance) is ``neon_ros/runtime/hearing.py``.
Other backbones do not subscribe to it.

``runtime: tensorrt`` runs the preset's vision tower as a TensorRT engine (exported and built
once, cached; NVIDIA machines only), the rest of the backbone in torch:
``neon_ros/backbones/tower_trt.py``. Where TensorRT or CUDA is missing the node refuses to start
and says so.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, String

from neon_ros import contract
from neon_ros.backbones import load_backbone
from neon_ros.backbones.base import AUDIO_SAMPLE_RATE
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable, scheduling_params
from neon_ros.runtime.encoder import ClipEncoder
from neon_ros.runtime.hearing import UtteranceTracker, clip_span
from neon_ros.runtime.timing import RateMeter, Window, flatten
from neon_ros.voice.audio_msg import msg_end_ns, msg_to_audio

PARAMETERS: ParamTable = {
    "preset": Param("cpu_default", "backbone preset (DESIGN.md section 5; neon_ros.backbones.list_presets())"),
    "tiny": Param(False, "tiny random config of the preset's architecture (tests; no weights)"),
    "weights_dir": Param("", "local weights folder ('' = the preset's / $NEON_MODELS)"),
    "runtime": Param("torch", "vision tower runtime: torch | onnxruntime (the tower exported to ONNX once per preset "
                     "and run by onnxruntime on the CPU; cpu_default ~3x faster than torch) | tensorrt (the tower "
                     "as a TensorRT engine, built once per preset and GPU; NVIDIA machines with TensorRT and CUDA "
                     "torch); the rest of the backbone stays in torch"),
    "threads": Param(0, "compute threads: torch intra-op, and onnxruntime's with runtime onnxruntime (0 = the "
                     "library's default)", (0, 64)),
    "incremental": Param(True, "reuse per-frame embeddings across clips where the backbone allows"),
    "max_rate": Param(0.0, "cap on features per second (0 = as fast as clips come)", (0.0, 100.0)),
    "audio_hold": Param(3.0, "s after an utterance ended during which clips still hear its audio "
                        "(backbones with an audio path; neon_ros/runtime/hearing.py)", (0.0, 60.0)),
    "diagnostics_period": Param(1.0, "s between /diagnostics messages", (0.1, 60.0)),
    **scheduling_params(),
}


class BackboneNode(Node):
    def __init__(self) -> None:
        super().__init__("backbone")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.scheduling = rosutil.apply_scheduling(p)  # before the node starts threads: they inherit it
        preset, tiny, weights_dir, threads = p["preset"], p["tiny"], p["weights_dir"], p["threads"]
        self.runtime = runtime = p["runtime"]
        from neon_ros.backbones import tower_trt  # torch + the exporter: only once the node starts

        tower_trt.check_runtime(runtime)  # before loading anything: unknown, or no TensorRT/CUDA here
        self.incremental, self.max_rate, diag_period = p["incremental"], p["max_rate"], p["diagnostics_period"]
        overrides: dict = {"tiny": True} if tiny else {}
        if weights_dir:
            overrides["weights_dir"] = weights_dir
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        self.backbone = load_backbone(preset, **overrides)
        if runtime == "tensorrt":
            engine = tower_trt.use_tensorrt(self.backbone)
            self.get_logger().info(f"vision tower runs on TensorRT: {engine.path}")
        elif runtime == "onnxruntime":
            ort_engine = tower_trt.use_onnxruntime(self.backbone, threads=threads)
            self.get_logger().info(f"vision tower runs on onnxruntime ({threads or 'default'} threads): "
                                   f"{ort_engine.path}")
        self.encoder = ClipEncoder(self.backbone, incremental=self.incremental)
        loaded = time.perf_counter() - t0
        warm = self.encoder.warm_up()  # before any subscription: the first real clip is not the slow one
        self.get_logger().info(f"loaded {self.backbone!r} in {loaded:.1f} s, warmed up in {warm:.2f} s "
                               f"(runtime={runtime}, incremental={self.encoder.incremental})")

        self.cond = threading.Condition()
        self.pending: Image | None = None
        self.instruction = ""
        self.hearing = UtteranceTracker(p["audio_hold"])
        self.clip_seconds = self.backbone.config.clip_seconds
        self.stop = threading.Event()
        self.skipped = 0
        self.malformed = 0
        self.audio_malformed = 0
        self.errors = 0
        self.last_error = ""
        self._faults_seen = 0
        self.clips_in = RateMeter()
        self.features_out = RateMeter()
        self.encode_s = Window(200)
        self.age_s = Window(200)
        self.in_age_s = Window(200)  # camera stamp -> clip received

        self.pub = self.create_publisher(Image, contract.TOPIC_FEATURES, rosutil.COMMAND_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.create_subscription(Image, contract.TOPIC_CLIP, self.on_clip, rosutil.CLIP_QOS)
        self.create_subscription(String, contract.TOPIC_INSTRUCTION, self.on_instruction, rosutil.LATCHED_QOS)
        if self.encoder.hears:
            self.create_subscription(Float32MultiArray, contract.TOPIC_UTTERANCE_AUDIO, self.on_audio,
                                     rosutil.LATCHED_QOS)
        self.create_timer(diag_period, self.publish_diagnostics)
        self.worker = threading.Thread(target=self.work, name="backbone_worker", daemon=True)
        self.worker.start()

    # --- executor side: only store the newest input ----------------------------------------
    def on_clip(self, msg: Image) -> None:
        self.clips_in.tick()
        self.in_age_s.add((rosutil.now_ns(self) - msgs.stamp_to_ns(msg.header.stamp)) * 1e-9)
        with self.cond:
            if self.pending is not None:
                self.skipped += 1
            self.pending = msg
            self.cond.notify()

    def on_instruction(self, msg: String) -> None:
        now = rosutil.now_ns(self)
        with self.cond:
            self.instruction = msg.data
            self.hearing.on_instruction(now)
        self.get_logger().info(f"instruction: {msg.data!r}")

    def on_audio(self, msg: Float32MultiArray) -> None:
        now = rosutil.now_ns(self)
        try:
            audio, end_ns = msg_to_audio(msg), msg_end_ns(msg)
        except ValueError as exc:
            self._fault("audio_malformed", f"utterance audio refused: {exc}")
            return
        with self.cond:
            self.hearing.on_audio(audio, now, end_ns)
        self.get_logger().info(f"utterance audio: {audio.size / AUDIO_SAMPLE_RATE:.2f} s")

    # --- worker thread -------------------------------------------------------------------------
    def work(self) -> None:
        min_period = 1.0 / self.max_rate if self.max_rate > 0 else 0.0
        last = 0.0
        while not self.stop.is_set():
            with self.cond:
                while self.pending is None and not self.stop.is_set():
                    self.cond.wait(0.2)
                if self.stop.is_set():
                    return
                msg, self.pending = self.pending, None
                instruction = self.instruction
                audio = (self.hearing.take(clip_span(msgs.stamp_to_ns(msg.header.stamp), self.clip_seconds))
                         if self.encoder.hears else None)
            wait = last + min_period - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                return
            last = time.monotonic()
            try:
                self.process(msg, instruction, audio)
            except Exception as exc:  # keep the worker alive; at shutdown the context is gone
                if self.stop.is_set() or not rclpy.ok():
                    return
                self._fault("errors", f"{type(exc).__name__}: {exc}")

    def process(self, msg: Image, instruction: str, audio: np.ndarray | None) -> None:
        t, (h, w) = self.backbone.num_frames, self.backbone.frame_size
        if (msg.height, msg.width) != (t * h, w):
            self._fault("malformed", f"clip is {msg.width}x{msg.height} (WxH); backbone {self.backbone.backbone_id} "
                        f"expects {t} stacked frames of {w}x{h}, i.e. {w}x{t * h}: set camera_buffer's preset "
                        f"(or num_frames/frame_height/frame_width) to match")
            return
        try:
            frames = msgs.image_to_clip(msg, self.backbone.num_frames)
        except msgs.MessageError as exc:
            self._fault("malformed", f"clip refused: {exc}")
            return
        t0 = time.perf_counter()
        try:
            vec = self.encoder.encode(frames, instruction, audio)
        except (ValueError, RuntimeError) as exc:
            self._fault("errors", f"encode failed: {exc}")
            return
        self.encode_s.add(time.perf_counter() - t0)
        if not np.all(np.isfinite(vec)):
            self._fault("errors", "backbone produced non-finite features; nothing published")
            return
        stamp = msgs.stamp_to_ns(msg.header.stamp)
        self.pub.publish(msgs.features_to_image(vec, stamp, self.backbone.backbone_id))
        self.features_out.tick()
        self.age_s.add((rosutil.now_ns(self) - stamp) * 1e-9)

    def _fault(self, counter: str, why: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        self.last_error = why
        self.get_logger().warning(why, throttle_duration_sec=2.0)

    # --- diagnostics / shutdown ---------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        faults = self.malformed + self.errors + self.audio_malformed
        new, self._faults_seen = faults - self._faults_seen, faults
        if new:
            level, message = "warn", f"{new} inputs failed since last report; last: {self.last_error}"
        elif self.features_out.rate() == 0.0:
            level, message = "warn", "no features published in the last seconds (waiting for clips)"
        else:
            level, message = "ok", "features flowing"
        values = {
            "backbone_id": self.backbone.backbone_id,
            "width": self.backbone.width,
            "runtime": self.runtime,
            "clips_in_rate_hz": round(self.clips_in.rate(), 2),
            "features_rate_hz": round(self.features_out.rate(), 2),
            "features_total": self.features_out.total,
            "skipped_clips": self.skipped,
            "malformed": self.malformed,
            "errors": self.errors,
            "last_error": self.last_error,
            "incremental": self.encoder.incremental,
            "frames_encoded": self.encoder.frames_encoded,
            "frames_reused": self.encoder.frames_reused,
            "hears": self.encoder.hears,
            "utterances_in": self.hearing.received,
            "clips_with_audio": self.encoder.clips_with_audio,
            "utterances_expired": self.hearing.expired,
            "utterances_superseded": self.hearing.superseded,
            "audio_malformed": self.audio_malformed,
            **flatten("encode_ms", self.encode_s.summary(1e3)),
            **flatten("clip_age_at_receive_ms", self.in_age_s.summary(1e3)),
            **flatten("age_at_publish_ms", self.age_s.summary(1e3)),
        }
        values = {**values, "scheduling": self.scheduling}
        status = msgs.diagnostic_status("backbone", level, message, values, hardware_id=self.backbone.backbone_id)
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [status]))

    def on_shutdown(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        self.worker.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(BackboneNode, "backbone", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    raise SystemExit(main())
