"""Clip -> features with a per-frame cache where the backbone encodes frames separately.

Consecutive clips share T-1 of their frames. A backbone that offers ``encode_frame``
and ``pool`` (cpu_default) then only needs one new forward pass per clip: frame
embeddings are cached by a hash of the frame's bytes. Other backbones encode the
whole clip each time. The result is the same as ``backbone.encode`` either way.

Audio (the utterance a clip hears, see ``runtime/hearing.py``) goes to backbones that
hear (``has_audio``) with the whole clip; to the others it is not passed at all.
"""

from __future__ import annotations

import collections
import hashlib
import time

import numpy as np


class ClipEncoder:
    """Wraps a Backbone; ``encode(frames, instruction, audio)`` -> (width,) float32."""

    def __init__(self, backbone, incremental: bool = True, cache_frames: int | None = None):
        self.backbone = backbone
        self.incremental = bool(incremental and callable(getattr(backbone, "encode_frame", None))
                                and callable(getattr(backbone, "pool", None)))
        self.hears = bool(getattr(backbone, "has_audio", False))
        self._cap = int(cache_frames or 2 * backbone.num_frames)
        self._cache: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()
        self.frames_encoded = 0
        self.frames_reused = 0
        self.clips_with_audio = 0  # clips encoded together with utterance audio

    def warm_up(self, instruction: str = "warm up") -> float:
        """A whole clip, then one step with a single new frame, on synthetic frames: first-call
        costs (allocations, kernel choices, the text encoder) paid before the first real clip,
        whose features would otherwise come ~1 s late. Cache and counters are left empty;
        returns the seconds it took."""
        t, (h, w) = self.backbone.num_frames, self.backbone.frame_size
        frames = np.random.default_rng(0).integers(0, 256, (t + 1, h, w, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        self.encode(frames[:t], instruction)
        self.encode(frames[1:], instruction)
        self._cache.clear()
        self.frames_encoded = self.frames_reused = 0
        return time.perf_counter() - t0

    @staticmethod
    def _key(frame: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()

    def encode(self, frames: np.ndarray, instruction: str = "", audio: np.ndarray | None = None) -> np.ndarray:
        if audio is not None and self.hears:  # the audio path needs the whole clip in one forward pass
            self.frames_encoded += len(frames)
            self.clips_with_audio += 1
            return self.backbone.encode(frames, instruction, audio)
        if not self.incremental:
            self.frames_encoded += len(frames)
            return self.backbone.encode(frames, instruction)
        keys = [self._key(f) for f in frames]
        new = [i for i, k in enumerate(keys) if k not in self._cache]
        if new:
            batch = getattr(self.backbone, "frame_maps", None)  # one forward pass for all new frames
            if callable(batch) and len(new) > 1:
                embs = list(batch(np.ascontiguousarray(frames[new])))
            else:
                embs = [self.backbone.encode_frame(frames[i]) for i in new]
            for i, emb in zip(new, embs, strict=True):
                self._cache[keys[i]] = emb
            self.frames_encoded += len(new)
        self.frames_reused += len(keys) - len(new)
        maps = []
        for k in keys:
            self._cache.move_to_end(k)
            maps.append(self._cache[k])
        while len(self._cache) > self._cap:
            self._cache.popitem(last=False)
        out = np.asarray(self.backbone.pool(maps, instruction), dtype=np.float32).reshape(-1)
        if out.shape != (self.backbone.width,):
            raise RuntimeError(f"pooled {out.shape} features, backbone declares width {self.backbone.width}")
        return out
