"""A fixed-size ring of the newest camera frames, read out as clips (oldest first)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clip:
    """T frames (T, H, W, 3) uint8, oldest first, and the newest frame's capture stamp."""

    frames: np.ndarray
    stamp_ns: int


class FrameRing:
    """Keeps the newest ``capacity`` frames of one fixed shape.

    Frames must arrive in stamp order: an older-or-equal stamp than the newest one is
    refused (a replayed or reordered frame) and counted in ``out_of_order``. A frame
    that leaves the ring without ever having been part of a clip handed out by
    ``new_clip`` is counted in ``dropped`` (clips are taken too rarely for the camera).
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int, int]):
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        if len(frame_shape) != 3 or frame_shape[2] != 3 or min(frame_shape) < 1:
            raise ValueError(f"frame shape must be (H, W, 3) with H, W >= 1, got {frame_shape}")
        self.capacity = int(capacity)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self._buf = np.zeros((self.capacity, *self.frame_shape), dtype=np.uint8)
        self._stamps = np.zeros(self.capacity, dtype=np.int64)
        self._used = np.ones(self.capacity, dtype=bool)
        self._next = 0  # slot the next frame goes to
        self.count = 0  # frames currently held (<= capacity)
        self.pushed = 0  # frames accepted since start
        self.out_of_order = 0
        self.dropped = 0
        self._last_clip_stamp: int | None = None

    @property
    def full(self) -> bool:
        return self.count == self.capacity

    @property
    def newest_stamp(self) -> int | None:
        if self.count == 0:
            return None
        return int(self._stamps[(self._next - 1) % self.capacity])

    def push(self, frame: np.ndarray, stamp_ns: int) -> bool:
        """Add one (H, W, 3) uint8 frame; False (and counted) if its stamp goes backwards."""
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not fit ring {self.frame_shape} uint8")
        newest = self.newest_stamp
        if newest is not None and stamp_ns <= newest:
            self.out_of_order += 1
            return False
        if self.full and not self._used[self._next]:
            self.dropped += 1
        self._buf[self._next] = frame
        self._used[self._next] = False
        self._stamps[self._next] = stamp_ns
        self._next = (self._next + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)
        self.pushed += 1
        return True

    def clip(self) -> Clip | None:
        """The full clip (a copy, oldest first), or None until ``capacity`` frames are held."""
        if not self.full:
            return None
        order = (np.arange(self.capacity) + self._next) % self.capacity
        return Clip(frames=self._buf[order].copy(), stamp_ns=int(self._stamps[order[-1]]))

    def new_clip(self) -> Clip | None:
        """Like ``clip`` but None if no frame arrived since the last clip handed out."""
        c = self.clip()
        if c is None or c.stamp_ns == self._last_clip_stamp:
            return None
        self._last_clip_stamp = c.stamp_ns
        self._used[:] = True
        return c

    def clear(self) -> None:
        self._next = 0
        self.count = 0
        self._used[:] = True
        self._last_clip_stamp = None
