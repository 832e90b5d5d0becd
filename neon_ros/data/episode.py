"""From one episode's time series to training samples, the same way for every source.

An adapter reads its format into an :class:`EpisodeData` (state/action arrays on their own
time base, plus a frame iterator), and :func:`episode_samples` turns it into
:class:`~neon_ros.policy.schema.Sample` s: anchors every ``stride`` seconds, the last second
of video before each anchor (kept in a small ring buffer, so video is decoded once, in
order, never held whole), and the 16 future control steps converted to the relative
representation (joint deltas, ``T_now^-1 T_future`` per hand).
Image-sequence sources decode their files with :func:`load_image` / :func:`image_frames`.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neon_ros.contract import CHUNK_STEPS, CONTROL_DT
from neon_ros.data.robots import g1_hand_poses
from neon_ros.g1 import NUM_JOINTS
from neon_ros.policy.schema import (
    EE_FRAMES,
    PROPRIO_DIM,
    CorruptEpisodeError,
    Sample,
    empty_masks,
    empty_targets,
)


@dataclass
class EpisodeData:
    """One episode on its own time base ``times`` (N,) in seconds, increasing.

    g1_q: (N, 29) G1 joint positions (SDK order) -> joint deltas are supervised;
        ``joint_valid`` (29,) limits that to the joints the source really measured.
    g1_q_target: (N, 29) commanded joint positions, when recorded: the joint-delta labels
        are then ``command(t + k dt) - q(t)`` (what to send to the motors, which lead the
        measured motion by the PD tracking lag) instead of the measured future.
    g1_chunk: (N, S, 29) the whole chunk a scripted expert would send from each row's state
        (its policy is a function of the state): the labels are then that chunk minus q(t),
        taken from the row at (or just before) the anchor, and the hand labels its FK.
    ee_pose: (N, 2, 4, 4) hand poses in any fixed frame (base or world: the relative
        representation does not care); ``ee_valid`` (2,) says which hands are real.
    grip: (N, 2) closure 0..1 with ``grip_valid`` (2,).
    loco: (N, 3) base velocity command.
    robot_q: (N, n) the source robot's own joints for proprioception when it is not a G1.
    instruction: the episode's instruction, or a callable time -> instruction.
    frames: iterable of (time, (H, W, 3) uint8) in time order (decoded lazily).
    """

    source: str
    episode: str
    embodiment: str
    times: np.ndarray
    instruction: str | Callable[[float], str]
    frames: Iterable[tuple[float, np.ndarray]]
    g1_q: np.ndarray | None = None
    g1_q_target: np.ndarray | None = None
    g1_chunk: np.ndarray | None = None
    joint_valid: np.ndarray | None = None
    ee_pose: np.ndarray | None = None
    ee_valid: tuple[bool, bool] = (True, True)
    grip: np.ndarray | None = None
    grip_valid: tuple[bool, bool] = (True, True)
    loco: np.ndarray | None = None
    robot_q: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        n = len(self.times)
        if n < 2 or np.any(np.diff(self.times) <= 0):
            raise ValueError(f"{self.source}/{self.episode}: times must be >= 2 increasing stamps")
        for name in ("g1_q", "g1_q_target", "g1_chunk", "ee_pose", "grip", "loco", "robot_q"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=np.float64)
                if len(arr) != n:
                    raise ValueError(f"{self.source}/{self.episode}: {name} has {len(arr)} rows, times {n}")
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"{self.source}/{self.episode}: {name} has non-finite values")
                setattr(self, name, arr)
        if self.g1_q is not None and self.g1_q.shape[1] != NUM_JOINTS:
            raise ValueError(f"{self.source}/{self.episode}: g1_q must have {NUM_JOINTS} columns")
        if self.g1_chunk is not None and (self.g1_q is None or self.g1_chunk.shape[1:] != (CHUNK_STEPS, NUM_JOINTS)):
            raise ValueError(f"{self.source}/{self.episode}: g1_chunk must be (N, {CHUNK_STEPS}, {NUM_JOINTS}) "
                             "next to g1_q")
        if self.robot_q is not None and self.robot_q.shape[1] > NUM_JOINTS:
            raise ValueError(f"{self.source}/{self.episode}: robot_q has more than {NUM_JOINTS} joints")


def interp_rows(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` (N, ...) at ``query`` times, clamped to the ends."""
    q = np.clip(query, times[0], times[-1])
    hi = np.clip(np.searchsorted(times, q, side="right"), 1, len(times) - 1)
    lo = hi - 1
    w = ((q - times[lo]) / (times[hi] - times[lo])).reshape((-1,) + (1,) * (values.ndim - 1))
    return values[lo] * (1.0 - w) + values[hi] * w


def nearest_rows(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(times, query), 1, len(times) - 1)
    idx = np.where(np.abs(times[idx - 1] - query) <= np.abs(times[idx] - query), idx - 1, idx)
    return values[idx]


def interp_poses(times: np.ndarray, poses: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Poses (N, ..., 4, 4) at ``query``: translation interpolated, rotation of the nearest row."""
    out = nearest_rows(times, poses, np.clip(query, times[0], times[-1])).copy()
    out[..., :3, 3] = interp_rows(times, poses[..., :3, 3], query)
    return out


def chunk_targets(ep: EpisodeData, t: float, ee_frame: str = "hand") -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """Targets, masks, proprio and proprio mask for an anchor at time ``t``. ``ee_frame`` "base":
    hand labels are the future poses in the frame the episode records them in (absolute actions,
    for comparing with the relative representation; the head then needs the same at run time)."""
    from neon_ros.policy import actions

    targets, masks = empty_targets(), empty_masks()
    row = None
    if ep.g1_chunk is not None:  # the expert's chunks belong to recorded states: snap to the row at or before t
        row = int(np.clip(np.searchsorted(ep.times, t + 1e-9, side="right") - 1, 0, len(ep.times) - 1))
        t = float(ep.times[row])
    future = t + CONTROL_DT * np.arange(CHUNK_STEPS)  # point k is k * 50 ms ahead (DESIGN.md s3)
    now = np.array([t])
    proprio = np.zeros(PROPRIO_DIM, np.float32)
    pmask = np.zeros(PROPRIO_DIM, np.float32)
    joints = ep.g1_q if ep.g1_q is not None else ep.robot_q
    if joints is not None:
        n = joints.shape[1]
        q_now = interp_rows(ep.times, joints, now)[0]
        # Velocity: central difference over one control step, a noise-robust estimate.
        dq = (interp_rows(ep.times, joints, now + CONTROL_DT / 2)[0]
              - interp_rows(ep.times, joints, now - CONTROL_DT / 2)[0]) / CONTROL_DT
        proprio[:n], proprio[NUM_JOINTS:NUM_JOINTS + n] = q_now, dq
        pmask[:n] = pmask[NUM_JOINTS:NUM_JOINTS + n] = 1.0
    chunk = None
    if ep.g1_q is not None:
        q_now = interp_rows(ep.times, ep.g1_q, now)[0]
        if row is not None:
            chunk = ep.g1_chunk[row]  # the expert's chunk from that very state
        else:
            cmd = ep.g1_q if ep.g1_q_target is None else ep.g1_q_target
            chunk = interp_rows(ep.times, cmd, future)
        targets["joint_delta"][:] = actions.joint_deltas(q_now, chunk)
        masks["joint_delta"][:] = 1.0 if ep.joint_valid is None else np.asarray(ep.joint_valid, np.float32)
    if ep.ee_pose is not None:
        p_now = interp_poses(ep.times, ep.ee_pose, now)[0]  # (2, 4, 4)
        if row is not None:
            p_now, p_fut = g1_hand_poses(q_now[None])[0], g1_hand_poses(chunk)  # FK of the labelled chunk
        else:
            p_fut = interp_poses(ep.times, ep.ee_pose, future)  # (S, 2, 4, 4)
        if ee_frame == "base":
            targets["ee"][:] = actions.pose9_from_transform(p_fut)  # T_future per hand, absolute
        else:
            targets["ee"][:] = actions.relative_pose9(p_now[None], p_fut)  # T_now^-1 T_future per hand
        masks["ee"][:] = np.asarray(ep.ee_valid, np.float32)
    if ep.grip is not None:
        targets["grip"][:] = np.clip(interp_rows(ep.times, ep.grip, future), 0.0, 1.0)
        masks["grip"][:] = np.asarray(ep.grip_valid, np.float32)
    if ep.loco is not None:
        targets["loco"][:] = interp_rows(ep.times, ep.loco, future)
        masks["loco"][:] = 1.0
    return targets, masks, proprio, pmask


def select_clip(buffer: deque, t: float, clip_frames: int, clip_seconds: float) -> np.ndarray:
    """``clip_frames`` frames evenly spaced over ``[t - clip_seconds, t]`` from the buffer."""
    stamps = np.array([s for s, _ in buffer])
    want = t - clip_seconds + clip_seconds * np.arange(1, clip_frames + 1) / clip_frames
    idx = np.clip(np.searchsorted(stamps, want + 1e-6, side="right") - 1, 0, len(stamps) - 1)
    return np.stack([buffer[i][1] for i in idx])


def episode_samples(ep: EpisodeData, stride: float = 0.25, clip_frames: int = 8,
                    clip_seconds: float = 1.0, max_side: int = 256, clip_lag: float = 0.0,
                    clip_lag_max: float = 0.0, ee_frame: str = "hand") -> Iterator[Sample]:
    """Samples at anchors every ``stride`` s from the first stamp to one control step before
    the last, streaming the video once (past the end, targets hold the last state). Each
    anchor's clip ends ``clip_lag`` s before it (features are that old when the robot uses them);
    with ``clip_lag_max``, a lag drawn uniformly from [clip_lag, clip_lag_max] per anchor (the
    same for the same episode every time). Before the first frame, a clip repeats it. ``ee_frame``:
    see ``chunk_targets``."""
    if stride <= 0 or clip_frames < 1 or ee_frame not in EE_FRAMES:
        raise ValueError(f"stride must be > 0, clip_frames >= 1 and ee_frame one of {EE_FRAMES}")
    anchors = np.arange(ep.times[0], ep.times[-1] - CONTROL_DT + 1e-9, stride)
    lags = np.full(len(anchors), clip_lag)
    if clip_lag_max > clip_lag:
        seed = int.from_bytes(hashlib.blake2b(f"{ep.source}/{ep.episode}".encode(), digest_size=8).digest(), "little")
        lags = np.random.default_rng(seed).uniform(clip_lag, clip_lag_max, len(anchors))
    keep = max(clip_lag, clip_lag_max) + clip_seconds + 0.2  # s of video the oldest clip reaches back
    buffer: deque = deque()
    a = 0
    for stamp, frame in ep.frames:
        frame = downscale(frame, max_side)
        buffer.append((stamp, frame))
        while buffer and buffer[0][0] < stamp - keep:
            buffer.popleft()
        while a < len(anchors) and anchors[a] <= stamp + 1e-6:
            clip = select_clip(buffer, anchors[a] - lags[a], clip_frames, clip_seconds)
            yield _make_sample(ep, anchors[a], clip, ee_frame)
            a += 1
    if a == 0 and len(anchors):
        raise ValueError(f"{ep.source}/{ep.episode}: no video frames")


def _make_sample(ep: EpisodeData, t: float, clip: np.ndarray, ee_frame: str) -> Sample:
    targets, masks, proprio, pmask = chunk_targets(ep, t, ee_frame)
    instruction = ep.instruction(t) if callable(ep.instruction) else ep.instruction
    frame_no = int(round((t - ep.times[0]) * 1000))
    return Sample(sample_id=f"{ep.source}/{ep.episode}/{frame_no:08d}", source=ep.source,
                  embodiment=ep.embodiment, instruction=instruction, frames=clip, proprio=proprio,
                  proprio_mask=pmask, targets=targets, masks=masks, episode=ep.episode)


def downscale(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Integer-stride downscale so the longer side is <= ``max_side`` (cheap, no resampling lib)."""
    frame = np.asarray(frame)
    step = int(np.ceil(max(frame.shape[:2]) / max_side)) if max_side > 0 else 1
    return np.ascontiguousarray(frame[::step, ::step]) if step > 1 else frame


def load_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 from an 8-bit colour/grey PNG/JPEG or a 16-bit depth PNG (mm -> grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I", "F"):
                depth = np.asarray(img, dtype=np.float64)
                valid = depth[depth > 0]
                top = float(np.percentile(valid, 99)) if valid.size else 1.0
                grey = np.clip(255.0 * (1.0 - depth / max(top, 1.0)), 0, 255) * (depth > 0)
                return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise CorruptEpisodeError(path, f"unreadable image ({exc})") from exc


def image_frames(files: list[Path], fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(i / fps, image i) for image files in order, decoded lazily."""
    for i, f in enumerate(files):
        yield i / fps, load_image(f)
