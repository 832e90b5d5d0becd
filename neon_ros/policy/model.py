"""The Neon action head: one readable file (nanoGPT style).

Pooled frozen-backbone features + proprioception + an embodiment id -> 16 future steps of
joint deltas, per-arm end-effector displacements, gripper closure and a locomotion
command, all in normalised units (``actions.NormStats`` maps them back).

    features (B, F) --[in_proj if F != 2048]--> (B, 2048) --RMSNorm--> Linear --> (B, D)
    proprio (B, 58) * mask, mask                 --> Linear --> (B, D)   } summed: h (B, D)
    embodiment (B,)                              --> Embedding --> (B, D) }
    h = block(h) x layers, block(h) = MLP(RMSNorm(h)) + alpha * h,  MLP = W2 relu(W1 x)^2
    RMSNorm(h) --> one linear readout per component --> c * tanh(x / c) soft-cap

No attention: the whole chunk is read out of one token, which keeps a batch-1 step at
~12 MFLOP (the head runs at 20 Hz on a robot CPU). Input checks (NaN/inf -> ValueError)
live in ``forward``; ``forward_unchecked`` is the traceable graph the exporter uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from neon_ros import contract, g1
from neon_ros.policy import embodiment

COMPONENTS = embodiment.COMPONENTS  # ("joint_delta", "ee", "grip", "loco")
POSE_DIM = 9  # translation (3) + 6D rotation (6) per arm, actions.pose9_from_transform


@dataclass
class HeadConfig:
    """Architecture of the head. Saved as JSON beside the weights; validated on creation."""

    feature_dim: int = contract.HEAD_INPUT_DIM  # pooled backbone width F; != 2048 adds a trainable input projection
    d_model: int = 512  # width D of the residual stream
    layers: int = 2  # residual ReLU^2 MLP blocks
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * d_model
    chunk: int = contract.CHUNK_STEPS  # future steps per prediction (16 x 50 ms)
    joints: int = g1.NUM_JOINTS  # G1 joints whose deltas are predicted (29)
    proprio_dim: int = embodiment.PROPRIO_DIM  # proprio slots: positions then velocities (58)
    arms: int = len(embodiment.ARMS)  # end-effectors (left, right)
    loco_dim: int = 3  # locomotion command (vx, vy, yaw rate)
    num_embodiments: int = field(default_factory=lambda: max(8, embodiment.num_embodiments()))  # embedding rows (spares for new robots)
    output_softcap: float = 8.0  # c of c*tanh(x/c) on every output, in normalised (std) units
    input_clip: float = 1e4  # |inputs| clamped to this before any square (keeps fp32 finite)
    norm_eps: float = 1e-6  # RMSNorm epsilon
    residual_init: float = 1.0  # initial value of the learnable residual scales alpha

    def __post_init__(self) -> None:
        for name in ("feature_dim", "d_model", "layers", "mlp_ratio", "chunk", "joints", "proprio_dim",
                     "arms", "loco_dim", "num_embodiments"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HeadConfig.{name} must be a positive integer, got {value!r}")
        if self.num_embodiments < embodiment.num_embodiments():
            raise ValueError(f"HeadConfig.num_embodiments={self.num_embodiments} is below the "
                             f"{embodiment.num_embodiments()} registered embodiments ({', '.join(embodiment.names())})")
        for name in ("output_softcap", "input_clip", "norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < float(value) < float("inf"):
                raise ValueError(f"HeadConfig.{name} must be a finite number > 0, got {value!r}")
        if not 0 < self.residual_init <= 2:
            raise ValueError(f"HeadConfig.residual_init must be in (0, 2], got {self.residual_init!r}")

    @property
    def input_dim(self) -> int:
        """Width after the input projection (DESIGN.md section 5): always 2048."""
        return contract.HEAD_INPUT_DIM

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of each output component."""
        return {"joint_delta": (self.chunk, self.joints), "ee": (self.chunk, self.arms, POSE_DIM),
                "grip": (self.chunk, self.arms), "loco": (self.chunk, self.loco_dim)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown HeadConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Parameter-free RMSNorm (Zhang & Sennrich 2019; weightless as in modded-nanogpt)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def softcap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """c * tanh(x / c): bounded, smooth, ~identity near 0 (Gemma 2 logit soft-capping)."""
    return cap * torch.tanh(x / cap)


class Block(nn.Module):
    """h' = MLP(RMSNorm(h)) + alpha * h with a ReLU^2 MLP."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.d_model
        self.eps = cfg.norm_eps
        self.fc = nn.Linear(cfg.d_model, hidden)  # (B, D) -> (B, 4D)
        self.proj = nn.Linear(hidden, cfg.d_model)  # (B, 4D) -> (B, D)
        nn.init.zeros_(self.proj.weight)  # zero-init the residual branch's output (modded-nanogpt)
        nn.init.zeros_(self.proj.bias)
        self.alpha = nn.Parameter(torch.tensor(float(cfg.residual_init)))  # learnable residual scale (modded-nanogpt lambdas)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(rms_norm(h, self.eps))  # (B, 4D)
        x = F.relu(x).square()  # ReLU^2 (So et al. 2021 "Primer"; modded-nanogpt)
        return self.proj(x) + self.alpha * h  # (B, D)


class ActionHead(nn.Module):
    """~5.7M parameters at the default config (feature_dim 2048, d_model 512, 2 layers)."""

    def __init__(self, cfg: HeadConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HeadConfig()
        # Per-backbone projection to the 2048-wide head input (DESIGN.md section 5), trainable side.
        self.in_proj = nn.Linear(cfg.feature_dim, cfg.input_dim) if cfg.feature_dim != cfg.input_dim else None
        self.feat = nn.Linear(cfg.input_dim, cfg.d_model)  # (B, 2048) -> (B, D)
        self.proprio = nn.Linear(2 * cfg.proprio_dim, cfg.d_model)  # [proprio * mask, mask] (B, 116) -> (B, D)
        self.embodiment = nn.Embedding(cfg.num_embodiments, cfg.d_model)  # (B,) -> (B, D)
        nn.init.normal_(self.embodiment.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        shapes = cfg.output_shapes()
        self.out = nn.ModuleDict({k: nn.Linear(cfg.d_model, _numel(shapes[k])) for k in COMPONENTS})
        for lin in self.out.values():
            nn.init.normal_(lin.weight, std=0.02 / cfg.d_model**0.5)  # small readout: start near the mean action
            nn.init.zeros_(lin.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_step(self) -> int:
        """Multiply-adds x 2 of one batch-1 forward (linear layers; norms/activations are O(D))."""
        return 2 * sum(m.in_features * m.out_features for m in self.modules() if isinstance(m, nn.Linear))

    def forward(self, features: torch.Tensor, proprio: torch.Tensor, proprio_mask: torch.Tensor,
                embodiment: torch.Tensor) -> dict[str, torch.Tensor]:
        """features (B, F), proprio (B, 58), proprio_mask (B, 58), embodiment (B,) long -> dict.

        Raises ValueError on wrong shapes, non-finite values or unknown embodiment ids.
        """
        self.check_inputs(features, proprio, proprio_mask, embodiment)
        return self.forward_unchecked(features, proprio, proprio_mask, embodiment)

    def forward_unchecked(self, features: torch.Tensor, proprio: torch.Tensor, proprio_mask: torch.Tensor,
                          embodiment: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        f = features.clamp(-cfg.input_clip, cfg.input_clip)  # (B, F) squares stay finite in fp32
        if self.in_proj is not None:
            f = self.in_proj(f)  # (B, 2048)
        p = torch.cat([proprio.clamp(-cfg.input_clip, cfg.input_clip) * proprio_mask, proprio_mask], -1)  # (B, 116)
        h = self.feat(rms_norm(f, cfg.norm_eps)) + self.proprio(p) + self.embodiment(embodiment)  # (B, D)
        for block in self.blocks:
            h = block(h)  # (B, D)
        h = rms_norm(h, cfg.norm_eps)  # final norm (nanoGPT ln_f)
        b = h.shape[0]
        shapes = cfg.output_shapes()
        return {k: softcap(self.out[k](h), cfg.output_softcap).reshape(b, *shapes[k]) for k in COMPONENTS}

    def check_inputs(self, features: torch.Tensor, proprio: torch.Tensor, proprio_mask: torch.Tensor,
                     embodiment: torch.Tensor) -> None:
        cfg = self.cfg
        expected = {"features": (features, cfg.feature_dim), "proprio": (proprio, cfg.proprio_dim),
                    "proprio_mask": (proprio_mask, cfg.proprio_dim)}
        batch = features.shape[0] if features.dim() == 2 else None
        for name, (t, width) in expected.items():
            if t.dim() != 2 or t.shape[1] != width or t.shape[0] != batch:
                raise ValueError(f"ActionHead: {name} must have shape (B, {width}) with the batch of features, "
                                 f"got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"ActionHead: {name} holds {bad} non-finite value(s) (NaN or inf); refusing to "
                                 f"predict from it")
        if embodiment.shape != (batch,) or embodiment.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"ActionHead: embodiment must be an integer tensor of shape ({batch},), "
                             f"got {embodiment.dtype} {tuple(embodiment.shape)}")
        if batch and (embodiment.min() < 0 or embodiment.max() >= cfg.num_embodiments):
            raise ValueError(f"ActionHead: embodiment ids must be in [0, {cfg.num_embodiments}), "
                             f"got {embodiment.tolist()}")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _expand_mask(mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A loss mask (B,) or (B, per-step dims...) -> broadcastable to target (B, chunk, ...)."""
    if mask.dim() >= 2:  # per-sample, per-element (no step axis): insert it
        mask = mask.unsqueeze(1)
    while mask.dim() < target.dim():
        mask = mask.unsqueeze(-1)
    return mask.to(target.dtype).expand_as(target)


def loss(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
         weights: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Masked mean squared error per component, in normalised units, plus their weighted sum.

    ``target[k]`` has the shape of ``pred[k]``; components missing from ``target`` are
    skipped. ``masks[k]`` is 1 where supervised: shape (B,) for a whole sample, or the
    per-step element shape without the step axis: joint_delta (B, 29), ee (B, 2) per arm,
    grip (B, 2), loco (B,) (see ``Embodiment.component_masks``); a missing mask = all 1.
    Returns {component: loss, ..., "total": weighted sum}; a component with no supervised
    element contributes 0 (with a gradient path, so a batch never fails).
    """
    weights = weights or {}
    out: dict[str, torch.Tensor] = {}
    total = None
    for key, tgt in target.items():
        if key not in pred:
            raise KeyError(f"loss: target component {key!r} is not a head output ({', '.join(pred)})")
        p = pred[key]
        if tgt.shape != p.shape:
            raise ValueError(f"loss: target {key} has shape {tuple(tgt.shape)}, prediction {tuple(p.shape)}")
        m = _expand_mask(masks[key], p) if key in masks else torch.ones_like(p)
        m = m * torch.isfinite(tgt)  # unlabelled (NaN) target elements are unsupervised
        err = torch.where(m > 0, p - torch.nan_to_num(tgt), torch.zeros_like(p))
        out[key] = (m * err.square()).sum() / m.sum().clamp_min(1.0)
        term = weights.get(key, 1.0) * out[key]
        total = term if total is None else total + term
    out["total"] = total if total is not None else sum(v.sum() * 0.0 for v in pred.values())
    return out
