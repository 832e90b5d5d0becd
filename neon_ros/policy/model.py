"""The Neon action head: one readable file (nanoGPT style).

Pooled frozen-backbone features + proprioception + an embodiment id -> 16 future steps of
joint deltas, per-arm end-effector displacements, gripper closure and a locomotion
command, all in normalised units (``actions.NormStats`` maps them back).

    features (B, F) --[in_proj if F != 2048]--> (B, 2048) --RMSNorm--> Linear --> (B, D)
    proprio (B, 58) * mask, mask                 --> Linear --> (B, D)   } summed: h (B, D)
    embodiment (B,)                              --> Embedding --> (B, D) }
    h = block(h) x layers, block(h) = MLP(RMSNorm(h)) + alpha * h,  MLP = W2 relu(W1 x)^2
    RMSNorm(h) --> one linear readout per component --> c * tanh(x / c) soft-cap

With ``modality_slices`` (features made of per-modality slices, e.g. TRIBE v2's
[video | audio | text]) a small trainable fusion replaces the first line:

    slice m (B, w_m) --RMSNorm--> Linear --> token m (B, Df)     present_m = slice not all zero
    [fusion token, token 1..M] (B, 1+M, Df) --FusionBlock x fusion_layers--> RMSNorm(x[:, 0]) --> Linear --> (B, D)
    FusionBlock(x) = x + Attn(RMSNorm(x)) attending only to present tokens, then x + MLP(RMSNorm(x))

so a dropped or missing modality (a zero slice) is masked out rather than read as a zero
vector. The main stream has no attention: the whole chunk is read out of one token, which
keeps a batch-1 step at ~12 MFLOP (the head runs at 20 Hz on a robot CPU). Input checks
(NaN/inf -> ValueError) live in ``forward``; ``forward_unchecked`` is the traceable graph
the exporter uses.
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
    # modality name -> [start, stop) of its slice of the features (from the feature cache, e.g. TRIBE v2's
    # [video | audio | text]); at least two, disjoint, inside feature_dim. Empty = no fusion: the features
    # are one vector (in_proj + feat), as in every head trained before the fusion existed.
    modality_slices: dict[str, tuple[int, int]] = field(default_factory=dict)
    fusion_dim: int = 128  # width Df of the modality tokens (only with modality_slices)
    fusion_layers: int = 1  # attention + MLP steps across the modality tokens
    fusion_heads: int = 4  # attention heads; fusion_dim must divide by it

    def __post_init__(self) -> None:
        for name in ("feature_dim", "d_model", "layers", "mlp_ratio", "chunk", "joints", "proprio_dim",
                     "arms", "loco_dim", "num_embodiments", "fusion_dim", "fusion_layers", "fusion_heads"):
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
        if self.fusion_dim % self.fusion_heads:
            raise ValueError(f"HeadConfig.fusion_dim={self.fusion_dim} must divide by fusion_heads={self.fusion_heads}")
        self.modality_slices = _checked_slices(self.modality_slices, self.feature_dim)

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


def _checked_slices(slices: dict, feature_dim: int) -> dict[str, tuple[int, int]]:
    """``modality_slices`` as {name: (start, stop)} ordered by start (JSON gives lists); ValueError if unusable."""
    if not isinstance(slices, dict):
        raise ValueError(f"HeadConfig.modality_slices must map modality names to [start, stop), got {slices!r}")
    out: dict[str, tuple[int, int]] = {}
    for name, bounds in slices.items():
        ok = isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in bounds)
        if not (isinstance(name, str) and name and ok and 0 <= bounds[0] < bounds[1] <= feature_dim):
            raise ValueError(f"HeadConfig.modality_slices: {name!r} -> {bounds!r} must be a non-empty name -> "
                             f"[start, stop) with 0 <= start < stop <= feature_dim ({feature_dim})")
        out[name] = (int(bounds[0]), int(bounds[1]))
    out = dict(sorted(out.items(), key=lambda kv: kv[1]))
    if len(out) == 1:
        raise ValueError(f"HeadConfig.modality_slices names one modality ({next(iter(out))}); a fusion needs at "
                         "least two (leave it empty for one undivided feature vector)")
    spans = list(out.items())
    for (a, (_, stop)), (b, (start, _)) in zip(spans[:-1], spans[1:], strict=True):
        if start < stop:
            raise ValueError(f"HeadConfig.modality_slices: {a!r} and {b!r} overlap")
    return out


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


class FusionBlock(nn.Module):
    """x' = x + Attn(RMSNorm(x)) over the present tokens, then x' + MLP(RMSNorm(x')) (pre-norm transformer)."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        d, hidden = cfg.fusion_dim, cfg.mlp_ratio * cfg.fusion_dim
        self.heads, self.eps = cfg.fusion_heads, cfg.norm_eps
        self.qkv = nn.Linear(d, 3 * d)  # (B, T, Df) -> (B, T, 3Df)
        self.attn_proj = nn.Linear(d, d)  # (B, T, Df) -> (B, T, Df)
        self.fc = nn.Linear(d, hidden)  # (B, T, Df) -> (B, T, 4Df)
        self.proj = nn.Linear(hidden, d)  # (B, T, 4Df) -> (B, T, Df)
        for lin in (self.attn_proj, self.proj):
            nn.init.zeros_(lin.weight)  # zero-init each residual branch's output (modded-nanogpt)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # keep (B, T) bool: the tokens that may be attended to
        q, k, v = self.qkv(rms_norm(x, self.eps)).split(d, -1)  # 3 x (B, T, Df)
        q, k, v = (y.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])  # absent tokens get no weight
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, d))  # (B, T, Df)
        return x + self.proj(F.relu(self.fc(rms_norm(x, self.eps))).square())  # ReLU^2 MLP as in Block


class ModalityFusion(nn.Module):
    """(B, F) features with modality slices -> (B, D): one token per modality, mixed by attention,
    read out at a learned fusion token (the [CLS] token of BERT / ViT); absent modalities are masked."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.slices = cfg.modality_slices  # name -> (start, stop), ordered by start
        self.eps = cfg.norm_eps
        self.embed = nn.ModuleDict({m: nn.Linear(b - a, cfg.fusion_dim) for m, (a, b) in self.slices.items()})
        self.token = nn.Parameter(torch.empty(1, 1, cfg.fusion_dim))  # the fusion token, always present
        nn.init.normal_(self.token, std=0.02)
        self.blocks = nn.ModuleList(FusionBlock(cfg) for _ in range(cfg.fusion_layers))
        self.out = nn.Linear(cfg.fusion_dim, cfg.d_model)  # (B, Df) -> (B, D)

    def flops_per_step(self) -> int:
        """Multiply-adds x 2 of one batch-1 forward: embeddings, T = 1 + M tokens through each block, readout."""
        d, t = self.token.shape[-1], 1 + len(self.slices)
        per_token = sum(m.in_features * m.out_features for blk in self.blocks for m in blk.modules()
                        if isinstance(m, nn.Linear))
        attention = len(self.blocks) * 2 * t * t * d  # scores + weighted sum
        embed = sum(m.in_features * m.out_features for m in self.embed.values())
        return 2 * (embed + t * per_token + attention + self.out.in_features * self.out.out_features)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        parts = [(m, f[:, a:b]) for m, (a, b) in self.slices.items()]  # M x (B, w_m)
        present = torch.stack([p.abs().amax(-1) > 0 for _, p in parts], 1)  # (B, M): a zero slice = absent modality
        tokens = torch.stack([self.embed[m](rms_norm(p, self.eps)) for m, p in parts], 1)  # (B, M, Df)
        x = torch.cat([self.token.expand(f.shape[0], -1, -1), tokens], 1)  # (B, 1+M, Df)
        keep = torch.cat([torch.ones_like(present[:, :1]), present], 1)  # (B, 1+M): nothing present -> token alone
        for block in self.blocks:
            x = block(x, keep)  # (B, 1+M, Df)
        return self.out(rms_norm(x[:, 0], self.eps))  # (B, D)


class ActionHead(nn.Module):
    """~5.7M parameters at the default config (feature_dim 2048, d_model 512, 2 layers); with TRIBE v2
    modality slices the fusion (~0.53M) replaces the 1.05M-parameter feature projection."""

    def __init__(self, cfg: HeadConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HeadConfig()
        if cfg.modality_slices:
            self.fusion = ModalityFusion(cfg)  # (B, F) -> (B, D)
            self.in_proj = self.feat = None
        else:
            self.fusion = None
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
        fusion = set(self.fusion.modules()) if self.fusion is not None else set()
        own = 2 * sum(m.in_features * m.out_features for m in self.modules()
                      if isinstance(m, nn.Linear) and m not in fusion)
        return own + (self.fusion.flops_per_step() if self.fusion is not None else 0)

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
        if self.fusion is not None:
            f = self.fusion(f)  # (B, D)
        else:
            if self.in_proj is not None:
                f = self.in_proj(f)  # (B, 2048)
            f = self.feat(rms_norm(f, cfg.norm_eps))  # (B, D)
        p = torch.cat([proprio.clamp(-cfg.input_clip, cfg.input_clip) * proprio_mask, proprio_mask], -1)  # (B, 116)
        h = f + self.proprio(p) + self.embodiment(embodiment)  # (B, D)
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
