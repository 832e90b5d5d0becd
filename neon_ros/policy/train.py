"""Head-only training on cached features: AdamW, warm-up + cosine, masked per-component losses.

Exact resume: batch ``b`` is a pure function of (seed, b) (:class:`SoupSampler`), the
learning rate a pure function of the step, and the checkpoint ``train_state.pt`` holds
the weights, the optimizer moments, the torch RNG and the step; it is written atomically
(temporary file + ``os.replace``) and holds only tensors and plain values, so resuming loads
it with ``torch.load(weights_only=True)``: a planted or altered file cannot run code. A run killed with -9 and resumed ends with the same
weights as an uninterrupted one (same thread count). The CSV logs are cut back to the
resumed step so every row appears once.

DDP: under ``torchrun`` (WORLD_SIZE > 1) every rank takes its slice of the same global
batch, gradients are averaged over gloo/nccl, rank 0 writes checkpoints and logs.

Held-out evaluation (:func:`open_loop_errors`): open-loop action error per component in
physical units over supervised elements only: joint deltas in rad (mean absolute error),
hand translation in m and hand rotation in rad (geodesic angle) of the relative
end-effector motion, grip closure (0..1), locomotion (mean absolute error). The hold-still
baseline predicts no motion: zero deltas, identity displacement, the current closure,
zero velocity. ``ratio`` = head error / baseline error (lower is better).
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import re
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from neon_ros import g1
from neon_ros.backbones.tribe import modality_dropout
from neon_ros.data.training import Split, ee_frame_of, load_training_data
from neon_ros.errors import NeonError
from neon_ros.policy import actions, embodiment
from neon_ros.policy import model as head_model
from neon_ros.policy.schema import COMPONENTS, IDENTITY_6D
from neon_ros.policy.soup import SoupSampler
from neon_ros.runtime import checkpoint

LOG_FIELDS = ["step", "samples", "lr", "loss", *COMPONENTS, "consistency", "samples_per_s"]
EVAL_FIELDS = ["step", "component", "head_error", "hold_still_error", "ratio", "unit", "samples"]
MODALITY_DROPOUT_STREAM = 1 << 32  # per-step seed offset: modality dropout draws apart from joint noise


def _doc(text: str, default=MISSING, *, option: bool = True, **kw):
    """A TrainConfig field described by ``text``; ``option``: also a `neon-ros train` flag."""
    return field(default=default, metadata={"help": text, "option": option}, **kw)


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in the checkpoint; `neon-ros train` options)."""

    data: Path = _doc("folder written by `neon-ros features`")
    out: Path = _doc("run folder (checkpoint, logs, resume state)")
    steps: int = _doc("optimizer steps", 2000)
    batch_size: int = _doc("global batch (split over DDP ranks)", 256)
    lr: float = _doc("peak learning rate", 1e-3)
    warmup: int = _doc("linear warm-up steps", 100)
    min_lr_ratio: float = _doc("cosine floor as a fraction of lr", 0.05, option=False)
    weight_decay: float = _doc("AdamW decoupled weight decay of the Linear weight matrices", 0.01)
    grad_clip: float = _doc("max global gradient norm (0 = off)", 1.0, option=False)
    aux_weight: float = _doc("weight of the consistency loss on paired samples (stereo views, spoken/written)", 0.1)
    feature_dropout: float = _doc("element dropout on the cached features during training (regulariser)", 0.1)
    modality_dropout: float = _doc("probability of zeroing each modality slice of a training sample's features, "
                                   "never all at once (features with modality slices, e.g. TRIBE v2; 0 = off)", 0.15)
    joint_noise: float = _doc("rad: noise on half the G1 samples' arm joint inputs, their joint labels kept "
                              "aimed at the same targets (0 = off)", 0.0)
    seed: int = _doc("sampler + init seed (a --soup sets it unless given)", 0)
    held_out: float = _doc("episode fraction held out (a --soup sets it unless given)", 0.15)
    weights: dict[str, float] = _doc("source -> mixing weight, 1 if absent (set by --soup)", option=False,
                                     default_factory=dict)
    backbone: str | None = _doc("feature cache id when --data holds several", None)
    d_model: int = _doc("head width (HeadConfig.d_model)", 512)
    layers: int = _doc("head blocks", 2)
    checkpoint_every: int = _doc("steps between checkpoints", 200)
    eval_every: int = _doc("steps between held-out evaluations (0 = only at the end)", 500)
    log_every: int = _doc("steps between CSV rows", 10)
    threads: int = _doc("torch threads (0 = torch default); fix it for bit-exact resume", 0)
    progress: bool = _doc("progress bar", True)

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.steps < 1 or self.batch_size < 1 or self.warmup < 0 or self.checkpoint_every < 1:
            raise ValueError("TrainConfig: steps, batch_size, checkpoint_every >= 1 and warmup >= 0")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or self.weight_decay < 0 or self.aux_weight < 0:
            raise ValueError("TrainConfig: lr > 0, min_lr_ratio in [0, 1], weight_decay >= 0, aux_weight >= 0")
        if not 0 <= self.feature_dropout < 1:
            raise ValueError(f"TrainConfig: feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if not 0 <= self.modality_dropout < 1:
            raise ValueError(f"TrainConfig: modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if not 0 <= self.joint_noise <= 0.5:
            raise ValueError(f"TrainConfig: joint_noise must be in [0, 0.5] rad, got {self.joint_noise}")
        if not 0 <= self.held_out < 1:
            raise ValueError(f"TrainConfig: held_out must be in [0, 1), got {self.held_out}")


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_ratio * lr`` at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on the weight matrices of Linear layers only.

    Biases, the embodiment embedding and the residual scales are not decayed.
    """
    matrices = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    params = list(model.parameters())
    return [{"params": [p for p in params if id(p) in matrices], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in matrices], "weight_decay": 0.0}]


def _dist() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_loss(model, batch: dict, aux_weight: float, train: Split) -> tuple[torch.Tensor, dict]:
    pred = model(batch["features"], batch["proprio"], batch["proprio_mask"], batch["embodiment"])
    parts = head_model.loss(pred, batch["targets"], batch["masks"])
    total = parts["total"]
    has = batch["partner"] >= 0
    cons = torch.zeros(())
    if aux_weight > 0 and bool(has.any()):
        other = train.batch(batch["partner"][has])
        pred_b = model(other["features"], other["proprio"], other["proprio_mask"], other["embodiment"])
        cons = sum(((pred[k][has] - pred_b[k]) ** 2).mean() for k in COMPONENTS) / len(COMPONENTS)
        total = total + aux_weight * cons
    return total, {**{k: float(parts[k].detach()) for k in COMPONENTS}, "consistency": float(cons.detach())}


@dataclass(frozen=True)
class JointNoiseTables:
    """What ``jitter_joints`` needs: the G1's normalisation of proprio, joint deltas and hand
    displacements, its embodiment id, the arm joints and the hand forward kinematics."""

    p_mean: torch.Tensor  # (29,) joint positions
    p_std: torch.Tensor
    d_std: torch.Tensor  # (16, 29)
    ee_mean: np.ndarray | None  # (16, 2, 9); None: hand labels are left as they are
    ee_std: np.ndarray | None
    g1_id: int
    arms: list[int]
    hand_poses: Callable[[np.ndarray], np.ndarray]  # (N, 29) joints -> (N, 2, 4, 4) palms, pelvis frame


def joint_noise_tables(stats, relabel_hands: bool = True) -> JointNoiseTables:
    """``relabel_hands`` False (or no hand labels): displaced rows keep their hand labels as they are."""
    from neon_ros.data.robots import g1_hand_poses  # mujoco: only when joint noise is on

    p_mean, p_std = stats.mean_std("proprio", "g1")
    ee_mean, ee_std = stats.mean_std("ee", "g1") if relabel_hands and "ee" in stats.keys() else (None, None)
    return JointNoiseTables(
        torch.as_tensor(p_mean[:g1.NUM_JOINTS], dtype=torch.float32),
        torch.as_tensor(p_std[:g1.NUM_JOINTS], dtype=torch.float32),
        torch.as_tensor(stats.mean_std("joint_delta", "g1")[1], dtype=torch.float32),
        ee_mean, ee_std, embodiment.get("g1").id,
        list(g1.ARM_INDICES["left"]) + list(g1.ARM_INDICES["right"]), g1_hand_poses)


def hand_labels_from(ee: torch.Tensor, q_from: np.ndarray, q_to: np.ndarray, tables: JointNoiseTables) -> torch.Tensor:
    """Normalised hand displacements ``ee`` (R, 16, 2, 9), relative to the hands at joints ``q_to``
    (R, 29), re-expressed relative to the hands at ``q_from``: T_from^-1 T_to T_rel (the same
    future hand poses seen from where the displaced arm is)."""
    rel = actions.transform_from_pose9(ee.double().numpy() * tables.ee_std + tables.ee_mean)  # (R, 16, 2, 4, 4)
    moved = actions.relative_transform(tables.hand_poses(q_from), tables.hand_poses(q_to))[:, None] @ rel
    return torch.as_tensor((actions.pose9_from_transform(moved) - tables.ee_mean) / tables.ee_std, dtype=ee.dtype)


def jitter_joints(batch: dict, sigma: float, tables: JointNoiseTables, gen: torch.Generator) -> dict:
    """Joint-input noise with consistent labels: half the G1 rows see their arm joints displaced by
    N(0, sigma) rad and are asked for the same absolute targets (joint deltas minus the noise,
    hand displacements re-expressed from the displaced hands), so the head must read where the
    arm is rather than recognise the moment of a demonstration (the input-side twin of DART
    noise, Laskey et al. 2017); both outputs learn to correct, the hand one included (it moves
    the arms when ee_mode is on: left unsupervised here, it learnt to replay the demonstration's
    motion from wherever the arm was, and overshot)."""
    n = batch["proprio"].shape[0]
    rows = ((batch["embodiment"] == tables.g1_id) & (batch["masks"]["joint_delta"].amin(1) > 0)
            & (torch.rand(n, generator=gen) < 0.5))
    if not bool(rows.any()):
        return batch
    eps = torch.zeros(int(rows.sum()), g1.NUM_JOINTS)
    eps[:, tables.arms] = torch.randn(eps.shape[0], len(tables.arms), generator=gen) * sigma  # (R, 29) rad
    proprio, delta = batch["proprio"].clone(), batch["targets"]["joint_delta"].clone()
    q_clean = proprio[rows, :g1.NUM_JOINTS] * tables.p_std + tables.p_mean  # (R, 29) rad
    proprio[rows, :g1.NUM_JOINTS] += eps / tables.p_std  # normalised units
    delta[rows] -= eps[:, None, :] / tables.d_std  # (R, 16, 29): the same absolute targets
    targets = {**batch["targets"], "joint_delta": delta}
    ee_rows = rows & (batch["masks"]["ee"].amax(1) > 0)
    if tables.ee_mean is not None and bool(ee_rows.any()):
        pick = ee_rows[rows]  # of the jittered rows, those with hand labels
        ee = batch["targets"]["ee"].clone()
        ee[ee_rows] = hand_labels_from(ee[ee_rows], (q_clean + eps)[pick].double().numpy(),
                                       q_clean[pick].double().numpy(), tables)
        targets["ee"] = ee
    return {**batch, "proprio": proprio, "targets": targets}


class ResumeStateError(NeonError, ValueError):
    """train_state.pt cannot be resumed from (it holds more than tensors and plain values)."""


def _save_state(path: Path, model, opt, step: int, cfg: TrainConfig) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "config": {k: str(v) for k, v in asdict(cfg).items()}}, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_state(path: Path) -> dict:
    """The resume state at ``path``, unpickled with weights_only (tensors and plain values only)."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False; keep only what was refused
        found = re.search(r"WeightsUnpickler error: (.*?)(?: Please|\n|$)", str(exc))
        refused = found.group(1) if found else str(exc).splitlines()[0]
        raise ResumeStateError(f"cannot resume from {path}: it holds more than tensors and plain values ({refused}), "
                               "so it was not written by `neon-ros train` or was altered since; delete it to train "
                               "from step 0") from exc


def _trim_csv(path: Path, fields: list[str], last_step: int) -> None:
    """Keep the header and rows with step <= last_step (rows after a resumed checkpoint are redone)."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) training; returns the final held-out evaluation."""
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = _dist()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must divide by the {world} DDP ranks")
    train_split, eval_split, stats, backbone_id, width, slices = load_training_data(cfg.data, cfg.backbone,
                                                                                    cfg.held_out)
    # whole-modality dropout where the cache records modality slices (TRIBE v2): modality -> slice
    dropped = {m: slice(a, b) for m, (a, b) in slices.items()} if cfg.modality_dropout > 0 else {}
    ee_frame = ee_frame_of(cfg.data)
    # absolute hand labels need no re-expressing for a displaced arm: its future poses are the same
    noise_tables = joint_noise_tables(stats, relabel_hands=ee_frame == "hand") if cfg.joint_noise > 0 else None
    groups = {s: np.flatnonzero(train_split.source == s) for s in np.unique(train_split.source)}
    sampler = SoupSampler(groups, {s: cfg.weights.get(s, 1.0) for s in groups}, cfg.seed)
    torch.manual_seed(cfg.seed)
    head_cfg = head_model.HeadConfig(feature_dim=width, d_model=cfg.d_model, layers=cfg.layers, modality_slices=slices)
    model = head_model.ActionHead(head_cfg)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    cfg.out.mkdir(parents=True, exist_ok=True)
    state_path = cfg.out / "train_state.pt"
    start = 0
    if resume and state_path.exists():
        state = _load_state(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
    log_path, eval_path = cfg.out / "train_log.csv", cfg.out / "eval_log.csv"
    if rank == 0:
        _trim_csv(log_path, LOG_FIELDS, start)
        _trim_csv(eval_path, EVAL_FIELDS, start)
        fusion = (f" (fusion of {', '.join(slices)}, modality dropout {cfg.modality_dropout:g})" if slices else "")
        print(f"train: {len(train_split)} samples, held-out {len(eval_split)}, backbone {backbone_id}, "
              f"head {model.num_params() / 1e6:.2f}M params{fusion}, steps {start}->{cfg.steps}, {world} DDP ranks")
        print("mixture:\n" + sampler.report(min(50, cfg.steps), cfg.batch_size))
    per_rank = cfg.batch_size // world
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train", unit="step",
               disable=not cfg.progress or rank != 0)
    t_last, n_last = time.perf_counter(), 0
    result: dict = {}
    model.train()
    for step in bar:
        rows = sampler.batch(step, cfg.batch_size)[rank * per_rank:(rank + 1) * per_rank]
        lr = lr_at(cfg, step)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = train_split.batch(rows)
        if dropped:  # the head learns to act on what is left (a missing modality arrives as a zero slice)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + MODALITY_DROPOUT_STREAM)
            batch["features"] = modality_dropout(batch["features"], dropped,
                                                 dict.fromkeys(dropped, cfg.modality_dropout), gen)
        if cfg.feature_dropout > 0:
            batch["features"] = torch.nn.functional.dropout(batch["features"], cfg.feature_dropout)
        if cfg.joint_noise > 0:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # per step: resume stays exact
            batch = jitter_joints(batch, cfg.joint_noise, noise_tables, gen)
        loss, parts = batch_loss(ddp, batch, cfg.aux_weight, train_split)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        n_last += cfg.batch_size
        done = step + 1
        if rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps):
            now = time.perf_counter()
            sps = n_last / max(now - t_last, 1e-9)
            t_last, n_last = now, 0
            bar.set_postfix(loss=f"{loss.item():.4f}", sps=f"{sps:.0f}")
            with open(log_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow(
                    {"step": done, "samples": done * cfg.batch_size, "lr": f"{lr:.6g}", "loss": f"{loss.item():.6g}",
                     **{k: f"{v:.6g}" for k, v in parts.items()}, "samples_per_s": f"{sps:.1f}"})
        if rank == 0 and ((cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps):
            result = evaluate_and_log(model, eval_split, stats, done, eval_path)
            model.train()
        if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            _save_state(state_path, model, opt, done, cfg)
            checkpoint.save(cfg.out / "head", model, backbone_id=backbone_id, stats=stats, step=done,
                            extra={"held_out": result, "soup_sources": sorted(groups), "ee_frame": ee_frame})
    bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return result


def evaluate_and_log(model, split: Split, stats, step: int, path: Path) -> dict:
    if len(split) == 0:
        return {}
    res = open_loop_errors(model, split, stats)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
        for comp, r in res.items():
            w.writerow({"step": step, "component": comp, **r})
    return res


def predict_physical(model, split, stats, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """De-normalised predictions for every row of ``split``."""
    model.eval()
    outs: dict[str, list] = {c: [] for c in COMPONENTS}
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            b = split.batch(np.arange(start, min(start + batch_size, len(split))))
            pred = model(b["features"], b["proprio"], b["proprio_mask"], b["embodiment"])
            for c in COMPONENTS:
                outs[c].append(pred[c].numpy().astype(np.float64))
    phys = {c: np.concatenate(v) for c, v in outs.items()}
    emb = split.embodiment.numpy()
    for e in np.unique(emb):
        rows = emb == e
        name = embodiment.get(int(e)).name
        for c in COMPONENTS:
            phys[c][rows] = stats.denormalize(c, phys[c][rows], name)
    return phys


def _masked_mean(err: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    mask = np.broadcast_to(mask, err.shape)
    n = int(mask.sum())
    return (float((err * mask).sum() / n) if n else float("nan")), n


def open_loop_errors(model, split, stats) -> dict[str, dict]:
    pred = predict_physical(model, split, stats)
    tgt = split.raw_targets
    m = {c: split.masks[c].numpy() for c in COMPONENTS}
    res: dict[str, dict] = {}

    def add(name: str, head_err: np.ndarray, hold_err: np.ndarray, mask: np.ndarray, unit: str) -> None:
        h, n = _masked_mean(head_err, mask)
        b, _ = _masked_mean(hold_err, mask)
        if n:
            res[name] = {"head_error": round(h, 6), "hold_still_error": round(b, 6),
                         "ratio": round(h / b, 4) if b > 0 else float("nan"), "unit": unit, "samples": n}

    add("joint_delta", np.abs(pred["joint_delta"] - tgt["joint_delta"]), np.abs(tgt["joint_delta"]),
        m["joint_delta"][:, None, :], "rad")
    ee_mask = m["ee"][:, None, :]
    add("ee_translation", np.linalg.norm(pred["ee"][..., :3] - tgt["ee"][..., :3], axis=-1),
        np.linalg.norm(tgt["ee"][..., :3], axis=-1), ee_mask, "m")
    r_pred = actions.matrix_from_rot6d(pred["ee"][..., 3:])
    r_true = actions.matrix_from_rot6d(tgt["ee"][..., 3:])
    r_hold = actions.matrix_from_rot6d(np.broadcast_to(IDENTITY_6D, tgt["ee"][..., 3:].shape))
    angle = actions.rotation_angle(np.swapaxes(r_pred, -1, -2) @ r_true)
    add("ee_rotation", angle, actions.rotation_angle(np.swapaxes(r_hold, -1, -2) @ r_true), ee_mask, "rad")
    add("grip", np.abs(np.clip(pred["grip"], 0, 1) - tgt["grip"]), np.abs(tgt["grip"] - tgt["grip"][:, :1]),
        m["grip"][:, None, :], "closure")
    add("loco", np.abs(pred["loco"] - tgt["loco"]), np.abs(tgt["loco"]), m["loco"][:, None, :], "m/s, rad/s")
    return res
