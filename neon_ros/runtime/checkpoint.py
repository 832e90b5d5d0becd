"""Head checkpoints: safetensors weights + a JSON file (config, backbone, statistics, step).

A checkpoint is two files with one stem: ``STEM.safetensors`` and ``STEM.json``; a
directory means ``DIR/head.*``. ``load`` rebuilds the model from the JSON config and checks
every weight's shape, naming the config field that disagrees with the weights. The JSON
records the sha256 of the weights file; ``load`` refuses weights that do not match it (a
checkpoint from before the hash was recorded loads with an UnverifiedCheckpointWarning).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from neon_ros.errors import NeonError
from neon_ros.policy.actions import NormStats
from neon_ros.policy.model import POSE_DIM, ActionHead, HeadConfig

FORMAT = "neon-action-head"
VERSION = 1
DEFAULT_STEM = "head"


class CheckpointError(NeonError, ValueError):
    """A checkpoint is missing, unreadable or disagrees with itself; the message says how."""


class UnverifiedCheckpointWarning(NeonError, UserWarning):  # noqa: N818 (a warning category)
    """A checkpoint JSON records no weights hash (written before hashes were recorded): loaded unchecked."""


@dataclass
class Checkpoint:
    """Everything a head checkpoint holds."""

    config: HeadConfig
    state_dict: dict[str, torch.Tensor]
    backbone_id: str  # the backbone preset/id whose features the head was trained on
    stats: NormStats  # normalisation statistics (proprio and every action component)
    step: int = 0  # training step at which it was saved
    extra: dict = field(default_factory=dict)  # free-form training metadata (JSON-serialisable)
    path: Path | None = None  # the JSON file it was loaded from
    weights_sha256: str = ""

    def build_model(self) -> ActionHead:
        """A fresh ActionHead with these weights, in eval mode."""
        model = ActionHead(self.config)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()


def resolve(path: str | os.PathLike) -> tuple[Path, Path]:
    """(json path, weights path) for a directory, a stem, or either file."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        p = p / DEFAULT_STEM
    elif p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".json"), p.with_name(p.name + ".safetensors")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(path: str | os.PathLike, model: ActionHead, *, backbone_id: str, stats: NormStats, step: int = 0,
         extra: dict | None = None) -> Path:
    """Write STEM.safetensors + STEM.json (a directory gets head.*); returns the JSON path."""
    if not backbone_id:
        raise ValueError("save: backbone_id must name the backbone whose features trained the head")
    json_path, weights_path = resolve(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = weights_path.with_name(weights_path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "config": json.dumps(model.cfg.to_dict())})
    os.chmod(tmp, 0o644)
    os.replace(tmp, weights_path)
    meta = {
        "format": FORMAT, "version": VERSION, "weights": weights_path.name, "weights_sha256": _sha256(weights_path),
        "config": model.cfg.to_dict(), "backbone_id": backbone_id, "step": int(step),
        "norm_stats": stats.to_dict(), "extra": extra or {},
    }
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, json_path)
    return json_path


def _implied_fields(state: dict[str, torch.Tensor], cfg: HeadConfig) -> dict[str, int]:
    """Config values the weight shapes imply (where the needed tensors exist)."""
    out: dict[str, int] = {}

    def shape(key: str) -> tuple[int, ...] | None:
        return tuple(state[key].shape) if key in state else None

    if (s := shape("in_proj.weight")) is not None:
        out["feature_dim"] = s[1]
    elif (s := shape("feat.weight")) is not None:
        out["feature_dim"] = s[1]
    if (s := shape("feat.weight") or shape("fusion.out.weight")) is not None:
        out["d_model"] = s[0]
    if (s := shape("proprio.weight")) is not None:
        out["proprio_dim"] = s[1] // 2
    if (s := shape("embodiment.weight")) is not None:
        out["num_embodiments"] = s[0]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    out["layers"] = len(blocks)
    if (s := shape("blocks.0.fc.weight")) is not None and s[1]:
        out["mlp_ratio"] = s[0] // s[1]
    rows = {k: shape(f"out.{k}.weight") for k in ("joint_delta", "ee", "grip", "loco")}
    if all(r is not None for r in rows.values()):
        n = {k: r[0] for k, r in rows.items()}
        base = {"chunk": cfg.chunk, "joints": cfg.joints, "arms": cfg.arms, "loco_dim": cfg.loco_dim}
        # Which single readout field explains every readout shape? (chunk is shared by all four.)
        divisors = {"chunk": (n["grip"], cfg.arms), "arms": (n["grip"], cfg.chunk),
                    "joints": (n["joint_delta"], cfg.chunk), "loco_dim": (n["loco"], cfg.chunk)}
        for name, (num, den) in divisors.items():
            if num % den:
                continue
            v = dict(base, **{name: num // den})
            if (v["chunk"] * v["joints"], v["chunk"] * v["arms"] * POSE_DIM, v["chunk"] * v["arms"],
                    v["chunk"] * v["loco_dim"]) == (n["joint_delta"], n["ee"], n["grip"], n["loco"]):
                out[name] = v[name]
                break
    return out


def check_state(state: dict[str, torch.Tensor], cfg: HeadConfig, where: str) -> None:
    """Raise CheckpointError naming the config field (or weight) that disagrees with cfg."""
    expected = {k: tuple(v.shape) for k, v in ActionHead(cfg).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    bad = [k for k in expected if k in got and got[k] != expected[k]]
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if not (bad or missing or unexpected):
        return
    implied = _implied_fields(state, cfg)
    fields = [f for f, v in implied.items() if getattr(cfg, f) != v]
    if fields:
        f0 = fields[0]
        detail = f"; e.g. weight {bad[0]!r} has shape {got[bad[0]]}, the config expects {expected[bad[0]]}" if bad else ""
        also = f" (also: {', '.join(fields[1:])})" if len(fields) > 1 else ""
        raise CheckpointError(f"{where}: HeadConfig field {f0!r} disagrees with the weights: config says "
                              f"{getattr(cfg, f0)}, the weights imply {implied[f0]}{also}{detail}")
    if bad:
        raise CheckpointError(f"{where}: weight {bad[0]!r} has shape {got[bad[0]]}, the config expects "
                              f"{expected[bad[0]]}")
    if missing:
        raise CheckpointError(f"{where}: weights lack {len(missing)} tensor(s) the config needs, e.g. {missing[0]!r}")
    raise CheckpointError(f"{where}: weights hold {len(unexpected)} tensor(s) the config has no place for, "
                          f"e.g. {unexpected[0]!r}")


def load(path: str | os.PathLike, *, expect_feature_dim: int | None = None,
         expect_backbone_id: str | None = None) -> Checkpoint:
    """Read and check a checkpoint (directory, stem, .json or .safetensors)."""
    json_path, weights_path = resolve(path)
    if not json_path.exists():
        raise CheckpointError(f"no head checkpoint at {path}: {json_path} does not exist")
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{json_path} is not valid JSON: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{json_path} is not a Neon head checkpoint (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"{json_path} has format version {meta['version']}; this code reads <= {VERSION}")
    for key in ("config", "backbone_id", "norm_stats"):
        if key not in meta:
            raise CheckpointError(f"{json_path} lacks the {key!r} entry")
    weights_path = json_path.parent / meta.get("weights", weights_path.name)  # relative to the JSON file
    if not weights_path.exists():
        raise CheckpointError(f"{json_path} names weights {weights_path} that do not exist")
    try:
        cfg = HeadConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{json_path}: bad config: {e}") from None
    data = weights_path.read_bytes()  # hashed and parsed from the same bytes
    sha = hashlib.sha256(data).hexdigest()
    recorded = str(meta.get("weights_sha256", ""))
    if not recorded:
        warnings.warn(f"{json_path} records no weights_sha256 (saved by an older version): {weights_path} is "
                      "loaded unverified; save the checkpoint again to record its hash",
                      UnverifiedCheckpointWarning, stacklevel=2)
    elif recorded != sha:
        raise CheckpointError(f"{weights_path} is not the file its checkpoint {json_path} was saved with: its sha256 "
                              f"is {sha}, the checkpoint records {recorded}; the weights were changed or corrupted "
                              "after saving: copy both files of the checkpoint again, or retrain")
    try:
        state = load_bytes(data)
    except SafetensorError as e:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file: {e}") from None
    check_state(state, cfg, str(json_path))
    if expect_feature_dim is not None and cfg.feature_dim != expect_feature_dim:
        raise CheckpointError(f"{json_path}: HeadConfig field 'feature_dim' is {cfg.feature_dim} (backbone "
                              f"{meta['backbone_id']!r}) but the features are {expect_feature_dim} wide")
    if expect_backbone_id is not None and meta["backbone_id"] != expect_backbone_id:
        raise CheckpointError(f"{json_path}: the head was trained on backbone {meta['backbone_id']!r}, "
                              f"not {expect_backbone_id!r}")
    return Checkpoint(cfg, state, str(meta["backbone_id"]), NormStats.from_dict(meta["norm_stats"]),
                      int(meta.get("step", 0)), dict(meta.get("extra", {})), json_path,
                      sha)
