"""Which inputs the action head may act on: the staleness and compatibility rules.

The head acts only on features that are fresh (camera stamp no older than
``max_feature_age``), come from the backbone the checkpoint was trained on, have the
width it expects and are finite, and on a joint state that is fresh and finite. Every
refusal has a reason code (counted in /diagnostics) and a sentence saying why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

NS = 1_000_000_000

# Reason codes (keys of GateStats.refused and of the diagnostics values).
NO_FEATURES = "no_features"
STALE = "stale"
FUTURE = "future_stamp"
WRONG_BACKBONE = "wrong_backbone"
WRONG_WIDTH = "wrong_width"
NON_FINITE = "non_finite"
NO_JOINT_STATE = "no_joint_state"
STALE_JOINT_STATE = "stale_joint_state"
BAD_JOINT_STATE = "bad_joint_state"
HEAD_ERROR = "head_error"  # the head itself refused (counted by the control step, not the gate)
REASONS = (NO_FEATURES, STALE, FUTURE, WRONG_BACKBONE, WRONG_WIDTH, NON_FINITE,
           NO_JOINT_STATE, STALE_JOINT_STATE, BAD_JOINT_STATE, HEAD_ERROR)


DEFAULT_MAX_FEATURE_AGE = 0.3  # s, for a backbone that declares no latency (cpu_default: 0.08 + slack)
FEATURE_AGE_SLACK = 0.3  # s on top of a backbone's own latency: frame spacing, transport, a control period


def feature_age_budget(expected_latency_s: float | None) -> float:
    """max_feature_age for a backbone taking ``expected_latency_s`` per clip (its preset's
    declaration): that latency plus FEATURE_AGE_SLACK; DEFAULT_MAX_FEATURE_AGE if undeclared.
    A 1.3 s backbone's features are 1.3-1.6 s old when they arrive: a fixed 0.3 s budget would
    refuse every one of them."""
    if expected_latency_s is None or expected_latency_s <= 0:
        return DEFAULT_MAX_FEATURE_AGE
    return min(float(expected_latency_s) + FEATURE_AGE_SLACK, 10.0)


@dataclass(frozen=True)
class GateConfig:
    """Rules for the head's inputs.

    backbone_id: the backbone the checkpoint was trained on ("" accepts any).
    feature_dim: feature width the checkpoint expects.
    max_feature_age: s; features whose camera stamp is older than this are refused.
    max_joint_state_age: s; a joint state older than this (receive time) is refused.
    max_future: s; a stamp further in the future than this is refused (clock trouble).
    """

    backbone_id: str
    feature_dim: int
    max_feature_age: float = DEFAULT_MAX_FEATURE_AGE
    max_joint_state_age: float = 0.5
    max_future: float = 0.1

    def __post_init__(self) -> None:
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")
        for name in ("max_feature_age", "max_joint_state_age"):
            if not 0.0 < getattr(self, name) <= 10.0:
                raise ValueError(f"{name} must be in (0, 10] s, got {getattr(self, name)}")
        if self.max_future < 0.0:
            raise ValueError(f"max_future must be >= 0, got {self.max_future}")


@dataclass(frozen=True)
class Features:
    """One received feature vector with its camera stamp and backbone id (frame_id)."""

    vector: np.ndarray
    stamp_ns: int
    backbone_id: str


@dataclass(frozen=True)
class JointInput:
    """One received joint state in G1 order, with its receive time."""

    q: np.ndarray
    dq: np.ndarray
    received_ns: int


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # a reason code when refused
    detail: str = ""  # a sentence for /diagnostics
    age_s: float = float("nan")  # feature age at the check


@dataclass
class GateStats:
    accepted: int = 0
    refused: Counter = field(default_factory=Counter)
    last_refusal: str = ""


class InputGate:
    """Applies GateConfig to the newest features and joint state; keeps counts."""

    def __init__(self, config: GateConfig):
        self.config = config
        self.stats = GateStats()

    def refuse(self, verdict: Verdict) -> Verdict:
        """Count a refusal decided after the gate (e.g. by the head)."""
        self.stats.refused[verdict.reason] += 1
        self.stats.last_refusal = verdict.detail
        return verdict

    def check(self, features: Features | None, joints: JointInput | None, now_ns: int) -> Verdict:
        v = self._check(features, joints, now_ns)
        if v.ok:
            self.stats.accepted += 1
            return v
        return self.refuse(v)

    def _check(self, f: Features | None, j: JointInput | None, now_ns: int) -> Verdict:
        c = self.config
        if f is None:
            return Verdict(False, NO_FEATURES, "no features received yet")
        age = (now_ns - f.stamp_ns) / NS
        if c.backbone_id and f.backbone_id != c.backbone_id:
            return Verdict(False, WRONG_BACKBONE, f"features come from backbone {f.backbone_id!r}, "
                           f"the checkpoint was trained on {c.backbone_id!r}", age)
        if f.vector.ndim != 1 or f.vector.size != c.feature_dim:
            return Verdict(False, WRONG_WIDTH, f"features have width {f.vector.size}, "
                           f"the checkpoint expects {c.feature_dim}", age)
        if age > c.max_feature_age:
            return Verdict(False, STALE, f"features are {age * 1e3:.0f} ms old "
                           f"(limit {c.max_feature_age * 1e3:.0f} ms)", age)
        if age < -c.max_future:
            return Verdict(False, FUTURE, f"feature stamp is {-age * 1e3:.0f} ms in the future", age)
        if not np.all(np.isfinite(f.vector)):
            return Verdict(False, NON_FINITE, f"features contain {int((~np.isfinite(f.vector)).sum())} "
                           "non-finite values", age)
        if j is None:
            return Verdict(False, NO_JOINT_STATE, "no joint state received yet", age)
        j_age = (now_ns - j.received_ns) / NS
        if j_age > c.max_joint_state_age:
            return Verdict(False, STALE_JOINT_STATE, f"joint state is {j_age * 1e3:.0f} ms old "
                           f"(limit {c.max_joint_state_age * 1e3:.0f} ms)", age)
        if not (np.all(np.isfinite(j.q)) and np.all(np.isfinite(j.dq))):
            return Verdict(False, BAD_JOINT_STATE, "joint state contains non-finite values", age)
        return Verdict(True, age_s=age)
