"""The label store: everything a sample needs for training except its features.

``neon-ros features`` writes it beside the feature cache, so training reads two compact
arrays and never touches video again. Layout: ``DIR/labels/shard-NNNNN.npz`` (written
atomically, like the feature shards), each holding N rows of:

    ids, source, episode, embodiment (name), instruction, pair_key   (str arrays)
    proprio, proprio_mask                                            (N, 58) float32
    t_<component>, m_<component>                                     targets and masks

Re-running skips ids already stored, so extraction resumes after a kill.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neon_ros.policy.schema import COMPONENTS, MASK_SHAPES, PROPRIO_DIM, TARGET_SHAPES, Sample

TEXT_FIELDS = ("ids", "source", "episode", "embodiment", "instruction", "pair_key")


class LabelWriter:
    """Buffers sample labels and writes a shard every ``shard_size`` rows (and on close)."""

    def __init__(self, root: str | os.PathLike, shard_size: int = 1024):
        self.dir = Path(root) / "labels"
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".shard-*.tmp*"):
            stale.unlink(missing_ok=True)
        self.shard_size = int(shard_size)
        self.known = set(load_labels(root).ids) if any(self.dir.glob("shard-*.npz")) else set()
        self.rows: list[Sample] = []

    def add(self, s: Sample) -> bool:
        """Queue a sample's labels; False if its id is already stored."""
        if s.sample_id in self.known:
            return False
        self.known.add(s.sample_id)
        self.rows.append(s)
        if len(self.rows) >= self.shard_size:
            self.flush()
        return True

    def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        arrays = {
            "ids": np.array([s.sample_id for s in rows]), "source": np.array([s.source for s in rows]),
            "episode": np.array([s.episode for s in rows]), "embodiment": np.array([s.embodiment for s in rows]),
            "instruction": np.array([s.instruction for s in rows]),
            "pair_key": np.array([s.pair_key or "" for s in rows]),
            "proprio": np.stack([s.proprio for s in rows]).astype(np.float32),
            "proprio_mask": np.stack([s.proprio_mask for s in rows]).astype(np.float32),
        }
        for c in COMPONENTS:
            arrays[f"t_{c}"] = np.stack([s.targets[c] for s in rows]).astype(np.float32)
            arrays[f"m_{c}"] = np.stack([s.masks[c] for s in rows]).astype(np.float32)
        existing = sorted(self.dir.glob("shard-*.npz"))
        nxt = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        path = self.dir / f"shard-{nxt:05d}.npz"
        tmp = self.dir / f".shard-{nxt:05d}.tmp{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    def close(self) -> None:
        self.flush()


@dataclass
class LabelSet:
    """All stored labels as arrays (row i of every field belongs to ``ids[i]``)."""

    ids: np.ndarray
    source: np.ndarray
    episode: np.ndarray
    embodiment: np.ndarray
    instruction: np.ndarray
    pair_key: np.ndarray
    proprio: np.ndarray
    proprio_mask: np.ndarray
    targets: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> LabelSet:
        return LabelSet(*(getattr(self, f)[rows] for f in TEXT_FIELDS), self.proprio[rows], self.proprio_mask[rows],
                        {c: v[rows] for c, v in self.targets.items()}, {c: v[rows] for c, v in self.masks.items()})


def empty_labels() -> LabelSet:
    s = np.zeros(0, dtype="<U1")
    return LabelSet(s, s, s, s, s, s, np.zeros((0, PROPRIO_DIM), np.float32), np.zeros((0, PROPRIO_DIM), np.float32),
                    {c: np.zeros((0, *TARGET_SHAPES[c]), np.float32) for c in COMPONENTS},
                    {c: np.zeros((0, *MASK_SHAPES[c]), np.float32) for c in COMPONENTS})


def load_labels(root: str | os.PathLike) -> LabelSet:
    """Every stored label row under ``root`` (shard order)."""
    shards = sorted((Path(root) / "labels").glob("shard-*.npz"))
    if not shards:
        return empty_labels()
    parts: dict[str, list] = {}
    for path in shards:
        try:
            with np.load(path) as z:
                for k in z.files:
                    parts.setdefault(k, []).append(z[k])
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable label shard ({exc}); delete it and re-run `neon-ros features`") from exc
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return LabelSet(*(cat[f] for f in TEXT_FIELDS), cat["proprio"], cat["proprio_mask"],
                    {c: cat[f"t_{c}"] for c in COMPONENTS}, {c: cat[f"m_{c}"] for c in COMPONENTS})
