"""The bridge's safety layer: validate every input, clamp and rate-limit every target.

No rclpy here: the node turns ROS messages into arrays and calls ``validate_trajectory``;
the controller passes every target through a ``TargetLimiter`` before it reaches a motor.

Rules (issue 3, point 3):
- a trajectory is accepted or rejected WHOLE; a reject carries one reason of ``REASONS``
  (counted by the node in /diagnostics and logged with a throttle);
- joints are matched by name in any order; unknown or duplicate names reject;
- a chunk must name all 29 joints and have exactly ``chunk_points`` points; a teleop
  trajectory may name a subset and has >= 1 point;
- positions and times must be finite; times non-negative and strictly increasing;
- a stamp more than ``future_tolerance`` ahead of now rejects; a message whose last point
  is more than ``max_input_age`` in the past rejects as stale; a teleop stamp of 0 means
  "now" (the trajectory_msgs convention), a chunk must carry its clip stamp;
- targets are clamped to [lower + margin, upper - margin] and then move at most
  ``max_velocity`` * dt per 2 ms cycle per joint (``velocity_limits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, g1
from neon_ros.errors import NeonError

NS = 1_000_000_000

REASONS: tuple[str, ...] = (
    "malformed",  # structure: a point with the wrong number of positions, or no joint names
    "unknown_joint",
    "duplicate_joint",
    "missing_joint",  # a chunk that does not name all 29 joints
    "point_count",
    "non_finite",
    "bad_time",  # negative or non-increasing time_from_start
    "future_stamp",
    "stale",
)
KINDS = ("chunk", "teleop")
# "Well below" the motor ratings: the safe velocity limit may be at most this fraction of them.
MAX_VELOCITY_FRACTION = 0.25


class RejectedError(NeonError, ValueError):
    """A whole message refused; ``reason`` is one of the subclass's ``reasons`` (counted per reason)."""

    reasons: tuple[str, ...] = ()

    def __init__(self, reason: str, detail: str):
        assert reason in self.reasons, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InputRejectedError(RejectedError):
    """A whole chunk or teleop message refused by the safety layer; ``reason`` is one of ``REASONS``."""

    reasons = REASONS


@dataclass
class SafetyConfig:
    """Limits applied between every input and every motor command.

    limit_margin: rad kept free inside each MJCF joint range.
    max_velocity: rad/s, the fastest any commanded target may move (per joint; capped at
        MAX_VELOCITY_FRACTION of that joint's motor rating in g1.VELOCITY_LIMITS).
    future_tolerance: s a stamp may lie ahead of the bridge clock (clock skew allowance).
    max_input_age: s after its last point a trajectory is stale on arrival.
    chunk_points: points a policy chunk must have (contract.CHUNK_STEPS).
    """

    limit_margin: float = 0.05
    max_velocity: float = 1.5
    future_tolerance: float = 0.05
    max_input_age: float = 0.5
    chunk_points: int = contract.CHUNK_STEPS
    lower: np.ndarray = field(init=False, repr=False)
    upper: np.ndarray = field(init=False, repr=False)
    velocity_limits: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        half_range = float(np.min(g1.UPPER_LIMITS - g1.LOWER_LIMITS)) / 2
        if not 0.0 <= self.limit_margin < half_range:
            raise ValueError(f"limit_margin must be in [0, {half_range:.3f}) rad, got {self.limit_margin}")
        vmax = MAX_VELOCITY_FRACTION * float(np.min(g1.VELOCITY_LIMITS))
        if not 0.0 < self.max_velocity <= vmax:
            raise ValueError(f"max_velocity must be in (0, {vmax:.2f}] rad/s "
                             f"({MAX_VELOCITY_FRACTION:.0%} of the slowest motor), got {self.max_velocity}")
        if not 0.0 <= self.future_tolerance <= 1.0:
            raise ValueError(f"future_tolerance must be in [0, 1] s, got {self.future_tolerance}")
        if not 0.0 < self.max_input_age <= 10.0:
            raise ValueError(f"max_input_age must be in (0, 10] s, got {self.max_input_age}")
        if self.chunk_points < 1:
            raise ValueError(f"chunk_points must be >= 1, got {self.chunk_points}")
        self.lower = g1.LOWER_LIMITS + self.limit_margin
        self.upper = g1.UPPER_LIMITS - self.limit_margin
        self.velocity_limits = np.minimum(self.max_velocity, MAX_VELOCITY_FRACTION * g1.VELOCITY_LIMITS)

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)


@dataclass(frozen=True)
class Trajectory:
    """A validated trajectory in G1 motor order.

    positions (K, 29): absolute targets; joints the message did not name (teleop subsets)
    are NaN and ``mask`` is False there. times (K,): s after stamp_ns. stamp_ns and
    received_ns are on the bridge's monotonic clock (``validate_trajectory`` translates the
    header stamp), so a step of the wall clock after arrival changes nothing.
    """

    kind: str
    stamp_ns: int
    times: np.ndarray
    positions: np.ndarray
    mask: np.ndarray
    received_ns: int

    @property
    def end_ns(self) -> int:
        return self.stamp_ns + int(round(float(self.times[-1]) * NS))


def validate_trajectory(kind: str, names: Sequence[str], positions: np.ndarray, times: np.ndarray,
                        stamp_ns: int, now_ns: int, cfg: SafetyConfig, received_ns: int | None = None) -> Trajectory:
    """Check one message against every rule; return it in G1 order or raise InputRejectedError.

    stamp_ns and now_ns are ROS time (the only use of it: stamp checks); received_ns is the
    bridge's monotonic clock at arrival (default now_ns: one clock), the time base of the result.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    names = list(names)
    positions = np.asarray(positions, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if not names:
        raise InputRejectedError("malformed", "no joint names")
    if positions.ndim != 2 or positions.shape[1] != len(names) or positions.shape[0] != times.shape[0]:
        raise InputRejectedError("malformed", f"positions {positions.shape} for {len(names)} names, {times.size} times")
    unknown = [n for n in names if n not in g1.JOINT_INDEX]
    if unknown:
        raise InputRejectedError("unknown_joint", f"{len(unknown)} unknown joint name(s), e.g. {unknown[0]!r}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputRejectedError("duplicate_joint", f"joint {dup!r} named twice")
    if kind == "chunk":
        if len(names) != g1.NUM_JOINTS:
            missing = [n for n in g1.JOINT_NAMES if n not in names]
            raise InputRejectedError("missing_joint", f"a chunk must name all {g1.NUM_JOINTS} joints; "
                                f"{len(missing)} missing, e.g. {missing[0]!r}")
        if positions.shape[0] != cfg.chunk_points:
            raise InputRejectedError("point_count", f"a chunk has {cfg.chunk_points} points, got {positions.shape[0]}")
    elif positions.shape[0] < 1:
        raise InputRejectedError("point_count", "a teleop trajectory needs at least one point")
    if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(times))):
        raise InputRejectedError("non_finite", "NaN or inf in positions or time_from_start")
    if times[0] < 0 or np.any(np.diff(times) <= 0):
        raise InputRejectedError("bad_time", "time_from_start must be >= 0 and strictly increasing")
    if stamp_ns == 0 and kind == "teleop":
        stamp_ns = now_ns
    if stamp_ns > now_ns + int(cfg.future_tolerance * NS):
        raise InputRejectedError("future_stamp", f"stamp {(stamp_ns - now_ns) / NS:.3f} s in the future")
    end_ns = stamp_ns + int(round(float(times[-1]) * NS))
    if now_ns - end_ns > int(cfg.max_input_age * NS):
        raise InputRejectedError("stale", f"last point {(now_ns - end_ns) / NS:.3f} s in the past")
    order = np.array([g1.JOINT_INDEX[n] for n in names])
    full = np.full((positions.shape[0], g1.NUM_JOINTS), np.nan)
    full[:, order] = positions
    mask = np.zeros(g1.NUM_JOINTS, dtype=bool)
    mask[order] = True
    full.setflags(write=False)
    times.setflags(write=False)
    received_ns = now_ns if received_ns is None else received_ns
    return Trajectory(kind, int(stamp_ns - now_ns + received_ns), times, full, mask, int(received_ns))


class TargetLimiter:
    """Clamp to the joint limits (with margin), then rate-limit from the previous command.

    Invariants of every ``step`` output: finite, inside [cfg.lower, cfg.upper], and within
    ``velocity_limits * dt`` of the previous output. Non-finite target entries hold.
    """

    def __init__(self, cfg: SafetyConfig):
        self.cfg = cfg
        self.prev: np.ndarray | None = None

    def reset(self, q_measured: np.ndarray) -> np.ndarray:
        """Start from the measured pose (clamped into the safe range)."""
        q = np.asarray(q_measured, dtype=np.float64)
        if not np.all(np.isfinite(q)):
            raise ValueError("cannot start the limiter from a non-finite pose")
        self.prev = self.cfg.clamp(q)
        return self.prev.copy()

    def step(self, target: np.ndarray, dt: float) -> np.ndarray:
        if self.prev is None:
            raise RuntimeError("TargetLimiter.step before reset")
        target = np.asarray(target, dtype=np.float64)
        target = np.where(np.isfinite(target), target, self.prev)
        target = self.cfg.clamp(target)
        max_step = self.cfg.velocity_limits * float(dt)
        q = self.cfg.clamp(self.prev + np.clip(target - self.prev, -max_step, max_step))
        self.prev = q
        return q.copy()
