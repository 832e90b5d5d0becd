"""Video files through PyAV: stream decoded RGB frames of a time window; write mp4 clips.

Decoding is lazy and in order (one frame in memory at a time here). Any container or
codec error becomes a :class:`CorruptEpisodeError` that names the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from neon_ros.policy.schema import CorruptEpisodeError
from neon_ros.runtime.timing import contained_scheduling


def iter_frames(path: Path, start: float = 0.0, end: float = float("inf")) -> Iterator[tuple[float, np.ndarray]]:
    """(time relative to ``start``, (H, W, 3) uint8) for frames with start <= pts < end."""
    import av

    path = Path(path)
    if not path.is_file():
        raise CorruptEpisodeError(path, "video file missing")
    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptEpisodeError(path, "no video stream")
            stream = container.streams.video[0]
            if start > 0 and stream.time_base is not None:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                if t < start - 1e-4:
                    continue
                if t >= end - 1e-4:
                    break
                count += 1
                yield t - start, frame.to_ndarray(format="rgb24")
    except CorruptEpisodeError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise CorruptEpisodeError(path, f"cannot decode video ({type(exc).__name__}: {exc})") from exc
    if count == 0:
        raise CorruptEpisodeError(path, f"no decodable frames in [{start:.3f}, {end:.3f}) s")


def write_video(path: Path, frames: Sequence[np.ndarray] | np.ndarray, fps: float,
                codec: str = "libsvtav1", pix_fmt: str = "yuv420p") -> None:
    """Encode (N, H, W, 3) uint8 frames to ``path`` (AV1 by default, as LeRobot v3 writes)."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    # SVT-AV1 run as root leaves the encoding thread at SCHED_FIFO 99 (and so every child
    # process started later): contain it.
    with contained_scheduling(), av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.time_base = 1 / Fraction(fps).limit_denominator(1000)
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, pix_fmt
        if codec == "libsvtav1":
            stream.options = {"preset": "12"}  # fastest SVT-AV1 preset: fixtures, not archives
        rate = Fraction(fps).limit_denominator(1000)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: h - h % 2, : w - w % 2]), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def video_info(path: Path) -> tuple[float, int]:
    """(fps, frame count) of a video file."""
    import av

    try:
        with av.open(str(path)) as container:
            s = container.streams.video[0]
            return float(s.average_rate or 0), int(s.frames)
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise CorruptEpisodeError(path, f"cannot open video ({exc})") from exc
