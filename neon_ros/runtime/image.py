"""Camera images -> rgb8 arrays of the backbone's input size, and video sources.

Decoding goes through rosbags-image (OpenCV underneath), which knows every ROS image
encoding; this module only checks the message layout first (zero size, short data,
row padding) so a malformed message gives a clear error instead of a crash.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.image import ImageConversionError, ImageFormatError, image_to_cvimage
from rosbags.image.image import to_cvtype

from neon_ros.errors import NeonError


class FrameError(NeonError, ValueError):
    """A camera message that cannot become a frame; the text says why."""


def _bytes_per_pixel(encoding: str) -> tuple[int, int]:
    """(channels, bytes per channel) of a ROS encoding; FrameError if unknown."""
    try:
        depth, _fmt, _typestr, nchan = to_cvtype(encoding)
    except ImageFormatError:
        raise FrameError(f"unsupported image encoding {encoding!r}") from None
    return int(nchan), max(1, int(depth) // 8)


def image_to_rgb(msg, size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image (any ROS encoding rosbags-image converts) -> (H, W, 3) uint8 rgb.

    The one Image decoder: camera_buffer (rclpy messages) and the g1_rosbag training source
    (rosbags' deserialized messages) both use it; it reads only the fields height, width,
    encoding, step, data and is_bigendian. Row padding (step > width x pixel size) is
    dropped. ``size`` = (height, width) resizes (area interpolation when shrinking). Raises
    FrameError for an unknown encoding, a zero-size image, or data that does not fit
    height x step.
    """
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise FrameError(f"zero-size image {h}x{w}")
    nchan, nbytes = _bytes_per_pixel(msg.encoding)
    row = w * nchan * nbytes
    if step < row:
        raise FrameError(f"step {step} is smaller than one {msg.encoding} row of width {w} ({row} bytes)")
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, bytes) else msg.data, dtype=np.uint8)
    if data.size < h * step:
        raise FrameError(f"image data is {data.size} bytes, expected {h} rows x step {step} = {h * step}")
    packed = data[: h * step].reshape(h, step)[:, :row]
    view = types.SimpleNamespace(height=h, width=w, encoding=msg.encoding,
                                 is_bigendian=int(msg.is_bigendian), data=np.ascontiguousarray(packed).data)
    try:
        img = image_to_cvimage(view, "rgb8")
    except (ImageConversionError, ImageFormatError, cv2.error) as exc:
        raise FrameError(f"cannot convert {msg.encoding!r} to rgb8: {exc}") from None
    img = np.ascontiguousarray(img, dtype=np.uint8)
    return resize_rgb(img, size) if size is not None else img


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (size[0], size[1], 3) uint8; a no-op if already that size."""
    th, tw = int(size[0]), int(size[1])
    if th < 1 or tw < 1:
        raise ValueError(f"target size must be positive, got {size}")
    if img.shape[:2] == (th, tw):
        return img
    shrink = img.shape[0] >= th and img.shape[1] >= tw
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def rgb_to_image_fields(img: np.ndarray, encoding: str = "rgb8") -> dict:
    """(H, W, 3) rgb uint8 -> the fields of a sensor_msgs/Image in ``encoding`` (rgb8, bgr8, mono8)."""
    if encoding == "rgb8":
        out = img
    elif encoding == "bgr8":
        out = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif encoding == "mono8":
        out = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    else:
        raise ValueError(f"cannot encode {encoding!r} (rgb8, bgr8, mono8)")
    out = np.ascontiguousarray(out)
    h, w = out.shape[:2]
    ch = 1 if out.ndim == 2 else out.shape[2]
    return {"height": h, "width": w, "encoding": encoding, "is_bigendian": 0, "step": w * ch,
            "data": out.tobytes()}


# --- video sources (V4L2 devices and files) ---------------------------------------------------

_DEVICE_RE = re.compile(r"^/dev/video(\d+)$")


@dataclass
class VideoSource:
    """A V4L2 device (``/dev/videoN``) or a video file, read frame by frame as rgb arrays.

    ``loop`` restarts a file at its end (a device never ends). ``fps`` is the source's
    nominal rate (files: from the container; devices: what the driver reports, else 30).
    """

    path: str
    loop: bool = True

    def __post_init__(self) -> None:
        m = _DEVICE_RE.match(self.path)
        self.is_device = m is not None
        if not self.is_device and not Path(self.path).is_file():
            raise FileNotFoundError(f"video source {self.path!r} is neither /dev/videoN nor an existing file")
        self._cap = (cv2.VideoCapture(int(m.group(1)), cv2.CAP_V4L2) if m is not None
                     else cv2.VideoCapture(self.path))
        if not self._cap.isOpened():
            raise OSError(f"cannot open video source {self.path!r}")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self.frames_read = 0

    def read(self) -> np.ndarray | None:
        """The next frame as (H, W, 3) uint8 rgb, or None at the end of a non-looping file."""
        ok, frame = self._cap.read()
        if not ok and self.loop and not self.is_device and self.frames_read > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        self.frames_read += 1
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()
