"""Cached features + labels -> normalised training tensors, split by episode.

Joins the feature cache (:mod:`neon_ros.data.cache`) and the label store
(:mod:`neon_ros.data.labels`) on sample id, holds out whole episodes, computes the
per-embodiment normalisation statistics on the training split only, and keeps every
array normalised and ready to index (a batch is one fancy-index per tensor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neon_ros.data.labels import LabelSet, load_labels
from neon_ros.policy import embodiment
from neon_ros.policy.actions import NormStats
from neon_ros.policy.schema import COMPONENTS
from neon_ros.policy.soup import is_held_out

# Mask (N, *mask shape) -> broadcastable to targets (N, steps, ...): where the step axis goes.
_MASK_VIEW = {"joint_delta": lambda m: m[:, None, :], "ee": lambda m: m[:, None, :, None],
              "grip": lambda m: m[:, None, :], "loco": lambda m: m[:, None, :]}


@dataclass
class Split:
    """One split as tensors (targets and proprio already normalised)."""

    ids: np.ndarray
    source: np.ndarray
    features: torch.Tensor  # (N, F) float32
    proprio: torch.Tensor  # (N, 58) normalised, zero where masked
    proprio_mask: torch.Tensor  # (N, 58)
    embodiment: torch.Tensor  # (N,) int64
    targets: dict[str, torch.Tensor]  # normalised
    masks: dict[str, torch.Tensor]
    raw_targets: dict[str, np.ndarray]  # physical units (evaluation)
    partner: torch.Tensor  # (N,) row of the consistency partner, -1 if none

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows) -> dict:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return {"features": self.features[rows], "proprio": self.proprio[rows],
                "proprio_mask": self.proprio_mask[rows], "embodiment": self.embodiment[rows],
                "targets": {k: v[rows] for k, v in self.targets.items()},
                "masks": {k: v[rows] for k, v in self.masks.items()}, "partner": self.partner[rows]}


def compute_stats(labels: LabelSet) -> NormStats:
    stats = NormStats()
    for emb in np.unique(labels.embodiment):
        rows = labels.embodiment == emb
        stats.update("proprio", labels.proprio[rows], str(emb), mask=labels.proprio_mask[rows])
        for c in COMPONENTS:
            stats.update(c, labels.targets[c][rows], str(emb), mask=_MASK_VIEW[c](labels.masks[c][rows]))
    for c in ("proprio", *COMPONENTS):  # every key needs a pooled entry, even if nothing supervised it
        if ("*", c) not in stats.entries or not stats.entries[("*", c)].count.any():
            shape = labels.proprio.shape[1:] if c == "proprio" else labels.targets[c].shape[1:]
            stats.update(c, np.zeros((1, *shape)), "g1")
    return stats


def make_split(labels: LabelSet, features: np.ndarray, stats: NormStats) -> Split:
    n = len(labels)
    emb_ids = np.array([embodiment.get(str(e)).id for e in labels.embodiment], np.int64)
    proprio = np.zeros_like(labels.proprio)
    targets = {c: np.zeros_like(labels.targets[c]) for c in COMPONENTS}
    for emb in np.unique(labels.embodiment):
        rows = labels.embodiment == emb
        proprio[rows] = stats.normalize("proprio", labels.proprio[rows], str(emb)) * labels.proprio_mask[rows]
        for c in COMPONENTS:
            targets[c][rows] = stats.normalize(c, labels.targets[c][rows], str(emb))
    row_of = {sid: i for i, sid in enumerate(labels.ids)}
    partner = np.array([row_of.get(k, -1) if k else -1 for k in labels.pair_key], np.int64)
    return Split(
        ids=labels.ids, source=labels.source, features=torch.from_numpy(np.ascontiguousarray(features, np.float32)),
        proprio=torch.from_numpy(proprio.astype(np.float32)), proprio_mask=torch.from_numpy(labels.proprio_mask),
        embodiment=torch.from_numpy(emb_ids), targets={c: torch.from_numpy(v.astype(np.float32)) for c, v in targets.items()},
        masks={c: torch.from_numpy(labels.masks[c]) for c in COMPONENTS}, raw_targets=dict(labels.targets),
        partner=torch.from_numpy(partner if n else np.zeros(0, np.int64)))


REPORT = "soup_report.json"  # what `neon-ros features` writes next to the cache (tools.features.extract)


def ee_frame_of(data_dir: Path) -> str:
    """The hand-label frame of a `neon-ros features` folder (``SourceConfig.ee_frame``; "hand" when
    its report predates the field or is missing)."""
    path = Path(data_dir) / REPORT
    return str(json.loads(path.read_text()).get("ee_frame", "hand")) if path.exists() else "hand"


def load_training_data(data_dir: Path, backbone_id: str | None, held_out: float,
                       stats: NormStats | None = None
                       ) -> tuple[Split, Split, NormStats, str, int, dict[str, tuple[int, int]]]:
    """(train, held-out, stats, backbone id, feature width, modality slices) from a `neon-ros features`
    folder; the slices ({} for an undivided vector) are the ones the feature cache recorded."""
    from neon_ros.data.cache import MANIFEST, FeatureCache

    data_dir = Path(data_dir)
    if backbone_id:
        cache = FeatureCache.open(data_dir, backbone_id)
    else:
        found = sorted(p.parent for p in data_dir.glob(f"*/{MANIFEST}"))
        if len(found) != 1:
            raise FileNotFoundError(f"{data_dir}: expected one feature cache, found {[p.name for p in found]}; "
                                    "pass --backbone")
        cache = FeatureCache.open_dir(found[0])
    ids, feats = cache.load_all()
    labels = load_labels(data_dir)
    if len(labels) == 0 or len(ids) == 0:
        raise FileNotFoundError(f"{data_dir}: no cached samples (run `neon-ros features` first)")
    row_of = {sid: i for i, sid in enumerate(ids)}
    keep = np.array([sid in row_of for sid in labels.ids])
    labels = labels.take(np.flatnonzero(keep))
    order = np.argsort(labels.ids, kind="stable")  # a canonical order: independent of shard layout
    labels = labels.take(order)
    features = feats[[row_of[sid] for sid in labels.ids]]
    held = np.array([is_held_out(s, e, held_out) for s, e in zip(labels.source, labels.episode, strict=True)])
    if held_out > 0 and not held.any() and len(np.unique(labels.episode)) > 1:
        held = labels.episode == sorted(np.unique(labels.episode))[-1]  # tiny soups: hold out one episode
    train_rows, eval_rows = np.flatnonzero(~held), np.flatnonzero(held)
    if len(train_rows) == 0:
        raise ValueError(f"{data_dir}: every episode is held out; lower held_out")
    stats = stats or compute_stats(labels.take(train_rows))
    return (make_split(labels.take(train_rows), features[train_rows], stats),
            make_split(labels.take(eval_rows), features[eval_rows], stats), stats, cache.backbone_id, cache.width,
            cache.modality_slices)
