"""Relative-action math (DESIGN.md section 4), numpy and torch, no rclpy.

Arm motion is the end-effector displacement in the gripper's own current frame,
``T_rel = T_now^-1 @ T_future`` (4x4 homogeneous transforms). Left-multiplying every
pose by one rigid transform W (moving the world origin or the robot base) leaves
``T_rel`` unchanged: ``(W T_now)^-1 (W T_future) = T_now^-1 T_future``. A displacement is
stored as a 9-vector "pose9" = translation (3) + 6D rotation (6): the first two columns of
the rotation matrix (Zhou et al., "On the Continuity of Rotation Representations in
Neural Networks", CVPR 2019), mapped back to a rotation by Gram-Schmidt.
Joint actions are deltas from the current positions; targets are ``q + delta``.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-9

# ----------------------------------------------------------------------------- numpy


def rot6d_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 6): first column then second column."""
    rot = np.asarray(rot, dtype=np.float64)
    return np.concatenate([rot[..., :, 0], rot[..., :, 1]], axis=-1)


def matrix_from_rot6d(d6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) rotation by Gram-Schmidt (any non-degenerate 6-vector works)."""
    d6 = np.asarray(d6, dtype=np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), EPS)
    a2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2 / np.maximum(np.linalg.norm(a2, axis=-1, keepdims=True), EPS)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def make_transform(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation and (..., 3) translation -> (..., 4, 4) homogeneous transform."""
    rot = np.asarray(rot, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    shape = np.broadcast_shapes(rot.shape[:-2], trans.shape[:-1])
    out = np.zeros(shape + (4, 4))
    out[..., :3, :3] = rot
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1.0
    return out


def invert_transform(tf: np.ndarray) -> np.ndarray:
    """Rigid inverse of (..., 4, 4): [R^T, -R^T t]."""
    tf = np.asarray(tf, dtype=np.float64)
    rot_t = np.swapaxes(tf[..., :3, :3], -1, -2)
    return make_transform(rot_t, -np.einsum("...ij,...j->...i", rot_t, tf[..., :3, 3]))


def relative_transform(t_now: np.ndarray, t_future: np.ndarray) -> np.ndarray:
    """T_rel = T_now^-1 @ T_future: the future pose in the current gripper frame."""
    return invert_transform(t_now) @ np.asarray(t_future, dtype=np.float64)


def apply_relative(t_now: np.ndarray, t_rel: np.ndarray) -> np.ndarray:
    """Inverse of relative_transform: T_future = T_now @ T_rel."""
    return np.asarray(t_now, dtype=np.float64) @ np.asarray(t_rel, dtype=np.float64)


def pose9_from_transform(tf: np.ndarray) -> np.ndarray:
    """(..., 4, 4) -> (..., 9): translation + 6D rotation."""
    tf = np.asarray(tf, dtype=np.float64)
    return np.concatenate([tf[..., :3, 3], rot6d_from_matrix(tf[..., :3, :3])], axis=-1)


def transform_from_pose9(p9: np.ndarray) -> np.ndarray:
    """(..., 9) -> (..., 4, 4)."""
    p9 = np.asarray(p9, dtype=np.float64)
    return make_transform(matrix_from_rot6d(p9[..., 3:9]), p9[..., :3])


def relative_pose9(t_now: np.ndarray, t_future: np.ndarray) -> np.ndarray:
    """Training label for arm motion: (..., 4, 4) now and (..., K, 4, 4) future -> (..., K, 9).

    ``t_now`` broadcasts over the future axis when given as (..., 1, 4, 4) or (..., 4, 4)
    with a matching leading shape; each future pose is expressed in the current frame.
    """
    t_now = np.asarray(t_now, dtype=np.float64)
    t_future = np.asarray(t_future, dtype=np.float64)
    if t_now.ndim == t_future.ndim - 1:
        t_now = t_now[..., None, :, :]
    return pose9_from_transform(relative_transform(t_now, t_future))


def joint_deltas(q_now: np.ndarray, q_future: np.ndarray) -> np.ndarray:
    """(..., J) and (..., K, J) or (..., J) -> deltas q_future - q_now (broadcast over steps)."""
    q_now = np.asarray(q_now, dtype=np.float64)
    q_future = np.asarray(q_future, dtype=np.float64)
    if q_future.ndim == q_now.ndim + 1:
        q_now = q_now[..., None, :]
    return q_future - q_now


def joint_targets(q_now: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Absolute joint targets q_now + deltas (the inverse of joint_deltas)."""
    q_now = np.asarray(q_now, dtype=np.float64)
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim == q_now.ndim + 1:
        q_now = q_now[..., None, :]
    return q_now + deltas


def rotation_angle(rot: np.ndarray) -> np.ndarray:
    """Angle (rad) of (..., 3, 3) rotations, numerically safe."""
    rot = np.asarray(rot, dtype=np.float64)
    cos = (np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


# ----------------------------------------------------------------------------- normalisation

POOLED = "*"  # the pseudo-embodiment whose statistics pool every source


class RunningStats:
    """Streaming per-element mean/variance with masks (Chan et al. parallel merge, float64)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(int(s) for s in shape)
        self.count = np.zeros(self.shape)
        self.mean = np.zeros(self.shape)
        self.m2 = np.zeros(self.shape)

    def update(self, x, mask=None) -> None:
        """Add samples x (N, *shape); mask broadcastable to x, 0 = not observed."""
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
        if x.shape[1:] != self.shape:
            raise ValueError(f"statistics of shape {self.shape} got samples of shape {x.shape[1:]}")
        w = np.ones_like(x) if mask is None else np.broadcast_to(np.asarray(mask, dtype=np.float64), x.shape)
        w = np.where(np.isfinite(x), w, 0.0)  # never let a bad sample poison the statistics
        x = np.where(w > 0, x, 0.0)
        n_b = w.sum(0)
        mean_b = (w * x).sum(0) / np.maximum(n_b, 1.0)
        m2_b = (w * (x - mean_b) ** 2).sum(0)
        n = self.count + n_b
        delta = mean_b - self.mean
        safe_n = np.maximum(n, 1.0)
        self.mean = self.mean + delta * n_b / safe_n
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / safe_n
        self.count = n

    def mean_std(self, std_floor: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std per element; unobserved elements get mean 0, std 1."""
        seen = self.count > 0
        std = np.sqrt(self.m2 / np.maximum(self.count, 1.0))
        return np.where(seen, self.mean, 0.0), np.where(seen, np.maximum(std, std_floor), 1.0)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "count": self.count.ravel().tolist(),
                "mean": self.mean.ravel().tolist(), "m2": self.m2.ravel().tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> RunningStats:
        out = cls(tuple(d["shape"]))
        for field in ("count", "mean", "m2"):
            arr = np.asarray(d[field], dtype=np.float64)
            if arr.size != out.count.size:
                raise ValueError(f"statistics {field}: {arr.size} values for shape {out.shape}")
            setattr(out, field, arr.reshape(out.shape))
        return out


class NormStats:
    """Per-embodiment normalisation statistics for each key ("proprio" and the action components).

    Keys are free-form names; the head uses "proprio" (58,), "joint_delta" (16, 29),
    "ee" (16, 2, 9), "grip" (16, 2), "loco" (16, 3). Every update also feeds the pooled
    statistics (``POOLED``), used for an embodiment that never observed a key.
    Saved inside the head checkpoint's JSON (``to_dict``/``from_dict``).
    """

    def __init__(self, std_floor: float = 1e-3):
        if not std_floor > 0:
            raise ValueError(f"std_floor must be > 0, got {std_floor}")
        self.std_floor = float(std_floor)
        self.entries: dict[tuple[str, str], RunningStats] = {}

    def update(self, key: str, x, embodiment: str, mask=None) -> None:
        """Add samples x (N, *shape) of one embodiment (by name) for ``key``."""
        if embodiment == POOLED:
            raise ValueError(f"{POOLED!r} is the pooled pseudo-embodiment; update a real one")
        shape = tuple(np.shape(x)[1:])
        for emb in (embodiment, POOLED):
            stats = self.entries.setdefault((emb, key), RunningStats(shape))
            stats.update(x, mask)

    def keys(self) -> set[str]:
        return {k for _, k in self.entries}

    def mean_std(self, key: str, embodiment: str) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of ``key`` for an embodiment; elements it never observed take the pooled values
        (and mean 0, std 1 where no source observed them)."""
        pooled = self.entries.get((POOLED, key))
        if pooled is None:
            raise KeyError(f"no normalisation statistics for {key!r} (have: {sorted(self.keys()) or 'none'})")
        mean, std = pooled.mean_std(self.std_floor)
        own = self.entries.get((embodiment, key))
        if own is not None:
            own_mean, own_std = own.mean_std(self.std_floor)
            seen = own.count > 0
            mean, std = np.where(seen, own_mean, mean), np.where(seen, own_std, std)
        return mean, std

    def normalize(self, key: str, x, embodiment: str):
        """(x - mean) / std; numpy in -> numpy out, torch in -> torch out."""
        mean, std = self.mean_std(key, embodiment)
        if isinstance(x, torch.Tensor):
            return (x - torch.as_tensor(mean, dtype=x.dtype)) / torch.as_tensor(std, dtype=x.dtype)
        return (np.asarray(x, dtype=np.float64) - mean) / std

    def denormalize(self, key: str, x, embodiment: str):
        """x * std + mean; numpy in -> numpy out, torch in -> torch out."""
        mean, std = self.mean_std(key, embodiment)
        if isinstance(x, torch.Tensor):
            return x * torch.as_tensor(std, dtype=x.dtype) + torch.as_tensor(mean, dtype=x.dtype)
        return np.asarray(x, dtype=np.float64) * std + mean

    def table(self, key: str, embodiment_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std stacked by embodiment id, (E, *shape) float32: index with a (B,) id tensor."""
        pairs = [self.mean_std(key, name) for name in embodiment_names]
        return (torch.as_tensor(np.stack([m for m, _ in pairs]), dtype=torch.float32),
                torch.as_tensor(np.stack([s for _, s in pairs]), dtype=torch.float32))

    def to_dict(self) -> dict:
        return {"std_floor": self.std_floor,
                "entries": {f"{emb}/{key}": s.to_dict() for (emb, key), s in sorted(self.entries.items())}}

    @classmethod
    def from_dict(cls, d: dict) -> NormStats:
        out = cls(float(d.get("std_floor", 1e-3)))
        for name, entry in d.get("entries", {}).items():
            emb, _, key = name.partition("/")
            out.entries[(emb, key)] = RunningStats.from_dict(entry)
        return out
