"""camera_buffer: camera images (topic, V4L2 device or video file) -> ring buffer -> /neon/clip.

Every frame is converted to rgb8 and resized to the backbone's input size on arrival,
and the newest T frames go out at once, stacked vertically (oldest first) with the newest
frame's capture stamp: a clip per new frame, at most ``clip_rate`` per second (a frame that
comes less than CAP_SLACK of a 1/clip_rate period after the last clip is held until exactly
that interval has passed, then goes out unless a newer one replaced it). A free-running
timer alone kept each frame waiting up to a whole period (10 Hz: 50 ms on average) before
the backbone saw it; a held frame waiting for such a timer set the p99 (82 ms, demo).
Malformed frames (unknown encoding, zero size, short data) are counted and explained in
/diagnostics; the node keeps running.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable, scheduling_params
from neon_ros.runtime.geometry import resolve_geometry
from neon_ros.runtime.image import FrameError, VideoSource, image_to_rgb, resize_rgb
from neon_ros.runtime.ring import FrameRing
from neon_ros.runtime.timing import RateMeter, Window, flatten

PARAMETERS: ParamTable = {
    "source": Param("topic", "'topic' (subscribe /camera/image_raw), a V4L2 device /dev/videoN, or a video file"),
    "preset": Param("cpu_default", "backbone preset whose input geometry fills num_frames/frame_* left at 0"),
    "tiny": Param(False, "take the geometry of the preset's tiny test configuration"),
    "num_frames": Param(0, "frames per clip T (0 = from preset)", (0, 256)),
    "frame_height": Param(0, "frame height after resize, px (0 = from preset)", (0, 4096)),
    "frame_width": Param(0, "frame width after resize, px (0 = from preset)", (0, 4096)),
    "clip_rate": Param(10.0, "most clips published per second, Hz (one per new frame, at its arrival)", (0.1, 60.0)),
    "loop": Param(True, "restart a video file at its end"),
    "frame_id": Param("head_camera", "frame_id of /neon/clip for file/device sources"),
    "diagnostics_period": Param(1.0, "s between /diagnostics messages", (0.1, 60.0)),
    **scheduling_params(),
}


CAP_SLACK = 0.5  # a camera at clip_rate, with jitter or a late burst of frames, still gets each out at once


class CameraBuffer(Node):
    def __init__(self) -> None:
        super().__init__("camera_buffer")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.scheduling = rosutil.apply_scheduling(p)  # before the node starts threads: they inherit it
        self.params = p
        overrides = {"tiny": True} if p["tiny"] else {}
        self.geometry = resolve_geometry(p["preset"], p["num_frames"], p["frame_height"], p["frame_width"],
                                         **overrides)
        self.size = (self.geometry.height, self.geometry.width)
        self.ring = FrameRing(self.geometry.num_frames, self.geometry.frame_shape)
        self.lock = threading.Lock()
        self.frames_in = RateMeter()
        self.clips_out = RateMeter()
        self.convert_s = Window()
        self.clip_age_s = Window()  # camera stamp -> clip published
        self.malformed = 0
        self.last_error = ""
        self._faults_seen = 0
        self.frame_id = p["frame_id"]
        self._min_clip_interval = CAP_SLACK / p["clip_rate"]
        self._last_clip = -float("inf")
        self._release_timer = None  # one-shot: a held frame goes out when the cap allows

        self.clip_pub = self.create_publisher(Image, contract.TOPIC_CLIP, rosutil.CLIP_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.video: VideoSource | None = None
        if p["source"] == "topic":
            self.create_subscription(Image, contract.TOPIC_CAMERA, self.on_image, rosutil.SENSOR_QOS)
        else:
            self.video = VideoSource(p["source"], loop=p["loop"])
            self.create_timer(1.0 / self.video.fps, self.on_video_tick)
        self.create_timer(p["diagnostics_period"], self.publish_diagnostics)
        g = self.geometry
        self.get_logger().info(f"source={p['source']} clip T={g.num_frames} {g.height}x{g.width} "
                               f"at {p['clip_rate']} Hz")

    # --- input ----------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        t0 = time.perf_counter()
        try:
            frame = image_to_rgb(msg, self.size)
        except FrameError as exc:
            self._malformed(str(exc))
            return
        self.convert_s.add(time.perf_counter() - t0)
        if msg.header.frame_id:
            self.frame_id = msg.header.frame_id
        self._push(frame, msgs.stamp_to_ns(msg.header.stamp))

    def on_video_tick(self) -> None:
        assert self.video is not None
        frame = self.video.read()
        if frame is None:
            self._malformed(f"video source {self.params['source']!r} returned no frame (ended or unplugged)")
            return
        t0 = time.perf_counter()
        frame = resize_rgb(frame, self.size)
        self.convert_s.add(time.perf_counter() - t0)
        self._push(frame, rosutil.now_ns(self))

    def _push(self, frame, stamp_ns: int) -> None:
        with self.lock:
            if not self.ring.push(frame, stamp_ns):
                self.last_error = "frame stamp went backwards (reordered or replayed frame)"
        self.frames_in.tick()
        wait = self._last_clip + self._min_clip_interval - time.monotonic()
        if wait <= 0:
            self.on_clip_tick()
        elif self._release_timer is None or self._release_timer.is_canceled():
            if self._release_timer is not None:
                self.destroy_timer(self._release_timer)
            self._release_timer = self.create_timer(wait, self._release_held)

    def _release_held(self) -> None:
        self._release_timer.cancel()  # one shot (destroyed when the next one is made)
        self.on_clip_tick()

    def _malformed(self, why: str) -> None:
        self.malformed += 1
        self.last_error = why
        self.get_logger().warning(f"malformed frame: {why}", throttle_duration_sec=2.0)

    # --- output -----------------------------------------------------------------------------
    def on_clip_tick(self) -> None:
        """Publish the newest clip if a frame arrived since the last one (a new frame, or a held one)."""
        with self.lock:
            clip = self.ring.new_clip()
        if clip is None:
            return
        self._last_clip = time.monotonic()
        self.clip_pub.publish(msgs.clip_to_image(clip.frames, clip.stamp_ns, self.frame_id))
        self.clips_out.tick()
        self.clip_age_s.add((rosutil.now_ns(self) - clip.stamp_ns) * 1e-9)

    def publish_diagnostics(self) -> None:
        with self.lock:
            held, dropped, ooo = self.ring.count, self.ring.dropped, self.ring.out_of_order
        faults = self.malformed + ooo
        new_faults, self._faults_seen = faults - self._faults_seen, faults
        if new_faults:
            level, message = "warn", f"{new_faults} bad frames since last report; last: {self.last_error}"
        elif held < self.ring.capacity or self.frames_in.rate() == 0.0:
            level, message = "warn", f"waiting for frames ({held}/{self.ring.capacity} held)"
        else:
            level, message = "ok", "clips flowing"
        values = {
            "frames_in_rate_hz": round(self.frames_in.rate(), 2),
            "clips_out_rate_hz": round(self.clips_out.rate(), 2),
            "frames_total": self.frames_in.total,
            "clips_total": self.clips_out.total,
            "frames_held": held,
            "dropped": dropped,
            "malformed": self.malformed,
            "out_of_order": ooo,
            "last_error": self.last_error,
            "clip_shape": f"{self.geometry.num_frames}x{self.geometry.height}x{self.geometry.width}x3",
            **flatten("convert_ms", self.convert_s.summary(1e3)),
            **flatten("clip_age_ms", self.clip_age_s.summary(1e3)),
        }
        values = {**values, "scheduling": self.scheduling}
        status = msgs.diagnostic_status("camera_buffer", level, message, values, hardware_id="camera")
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [status]))

    def on_shutdown(self) -> None:
        if self.video is not None:
            self.video.close()


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(CameraBuffer, "camera_buffer", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    raise SystemExit(main())
