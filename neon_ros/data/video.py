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


# Lossless codecs: decoded frames equal the encoded ones bit for bit (simulated data whose
# features must match what the live, never compressed, camera gives).
LOSSLESS = {"libx264rgb": "h264"}
CODEC_OPTIONS = {
    "libsvtav1": {"preset": "12"},  # fastest SVT-AV1 preset: fixtures, not archives
    "libx264rgb": {"qp": "0", "preset": "ultrafast"},  # qp 0 in RGB: lossless
}


def write_video(path: Path, frames: Sequence[np.ndarray] | np.ndarray, fps: float,
                codec: str = "libsvtav1", pix_fmt: str = "yuv420p") -> None:
    """Encode (N, H, W, 3) uint8 frames to ``path`` (AV1 by default, as LeRobot v3 writes;
    ``libx264rgb`` for lossless).

    The encoder runs in a child process on normal scheduling. SVT-AV1 run as root raises its
    caller to SCHED_FIFO 99 and leaves the process changed beyond what any thread's policy
    shows: threads that Fast DDS created later in the same process came up at FIFO 99, and
    every node a demo started after writing its soup inherited real-time priority.
    """
    import subprocess
    import sys
    import tempfile

    from neon_ros.runtime.timing import child_normal_scheduling

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="neon_video_") as tmp:
        raw = Path(tmp) / "frames.npy"
        np.save(raw, frames)
        proc = subprocess.run([sys.executable, "-m", __name__, str(path), str(raw), repr(float(fps)), codec, pix_fmt],
                              capture_output=True, text=True, preexec_fn=child_normal_scheduling)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"encoding {path} with {codec} failed (exit {proc.returncode}): {tail}")


def _encode(path: Path, frames: np.ndarray, fps: float, codec: str, pix_fmt: str) -> None:
    import av

    h, w = frames.shape[1:3]
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.time_base = 1 / rate
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "rgb24" if codec in LOSSLESS else pix_fmt
        stream.options = CODEC_OPTIONS.get(codec, {})
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


if __name__ == "__main__":  # the encoder child of write_video: PATH FRAMES.npy FPS CODEC PIX_FMT
    import sys

    _path, _raw, _fps, _codec, _pix_fmt = sys.argv[1:6]
    _encode(Path(_path), np.load(_raw), float(_fps), _codec, _pix_fmt)
