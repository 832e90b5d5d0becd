"""Head prediction -> the absolute 16 x 29 chunk that goes on /neon/action_chunk.

The head predicts deltas from the current joint positions; ``HeadPrediction.joint_targets``
already holds q + delta. This module is the last check before the chunk leaves the
node: right shape, finite, and inside the G1 position limits (clamped, and counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neon_ros import contract, g1


class ChunkError(ValueError):
    """A prediction that must not become a chunk (wrong shape or non-finite)."""


@dataclass(frozen=True)
class SafeChunk:
    positions: np.ndarray  # (CHUNK_STEPS, NUM_JOINTS) float64, inside the limits
    clamped: int  # entries that were outside the limits and got clamped


def absolute_targets(q: np.ndarray, joint_delta: np.ndarray) -> np.ndarray:
    """(29,) current positions + (K, 29) deltas -> (K, 29) absolute targets."""
    q = np.asarray(q, dtype=np.float64).reshape(1, -1)
    return q + np.asarray(joint_delta, dtype=np.float64)


def safe_chunk(targets: np.ndarray, margin: float = 0.0) -> SafeChunk:
    """Check shape and finiteness, clamp to [lower + margin, upper - margin]."""
    targets = np.asarray(targets, dtype=np.float64)
    want = (contract.CHUNK_STEPS, g1.NUM_JOINTS)
    if targets.shape != want:
        raise ChunkError(f"prediction has shape {targets.shape}, a chunk is {want}")
    if not np.all(np.isfinite(targets)):
        raise ChunkError(f"prediction has {int((~np.isfinite(targets)).sum())} non-finite targets")
    lo = g1.LOWER_LIMITS + margin
    hi = g1.UPPER_LIMITS - margin
    clipped = np.clip(targets, lo, hi)
    return SafeChunk(positions=clipped, clamped=int(np.count_nonzero(clipped != targets)))
