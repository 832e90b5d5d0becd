"""The body bridge's safety layer: the head's base velocity and hand closures, checked and limited.

No rclpy here: ``nodes/body_bridge`` turns /neon/loco_cmd and /neon/grip_cmd into arrays, hands
them to ``BodyController`` and sends what its ``loco_step`` and ``hand_step`` return (Unitree's
loco SetVelocity RPC, Dex3 HandCmd_). Rules:

- a message is accepted or refused whole, with one reason of ``REASONS``: non-finite values, a
  stamp in the future or older than ``max_input_age``, unknown or repeated hand names, wrong
  sizes; a loco command in lowcmd mode (``mode``: the bridge drives the legs itself, Unitree's
  loco service does not run);
- velocities are clamped per axis to ``max_velocity`` (vx, vy m/s, yaw rate rad/s) and change at
  most ``max_acceleration`` per second toward the command; closures are clamped to [0, 1] and
  change at most ``max_grip_rate`` per second; hand positions stay ``hand_margin`` inside the
  Dex3 ranges;
- disabled, e-stopped or with no command for ``command_timeout`` s (monotonic clock): the velocity
  is zero at once (not ramped), and sent until the loco service confirms it; the hands hold the
  closure they reached (e-stopped or stale) or get no command at all (disabled);
- the e-stop is latched as in g1_bridge: ``true`` asserts (and, with ``estop_damp``, asks the loco
  service to damp once), ``false`` only releases the level, and an explicit ``enable`` resets the
  latch; enable is refused while the e-stop is asserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, g1
from neon_ros.bridge.safety import RejectedError

NS = 1_000_000_000
MODES = ("arm_sdk", "lowcmd")
REASONS: tuple[str, ...] = ("malformed", "non_finite", "future_stamp", "stale", "mode")
HANDS: tuple[str, ...] = ("left", "right")  # in contract.GRIP_NAMES / DDS_DEX3_CMD order
LOCO_REFUSED_IN_LOWCMD = ("mode lowcmd: g1_bridge drives the legs itself and Unitree's loco service does not run; "
                          "loco commands need mode arm_sdk")


class CommandRejectedError(RejectedError):
    """A whole loco or grip message refused; ``reason`` is one of ``REASONS``."""

    reasons = REASONS


@dataclass(frozen=True)
class BodyConfig:
    mode: str = "arm_sdk"
    max_velocity: tuple[float, float, float] = (0.3, 0.2, 0.5)  # |vx| m/s, |vy| m/s, |yaw rate| rad/s
    max_acceleration: tuple[float, float, float] = (0.5, 0.5, 1.0)  # per second, same axes
    command_timeout: float = 0.3  # s (monotonic) without a command -> zero velocity / hands hold
    max_input_age: float = 1.0  # s a command's stamp may lie in the past
    future_tolerance: float = 0.05  # s a stamp may lie in the future
    max_grip_rate: float = 1.0  # closure per s (1 = open to closed in one second)
    hand_margin: float = 0.05  # rad kept inside each Dex3 motor range
    estop_damp: bool = False  # e-stop also damps the legs (SetFsmId damp): the robot falls unless on a gantry

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {' | '.join(MODES)}, got {self.mode!r}")
        for name in ("max_velocity", "max_acceleration"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(v < 0):
                raise ValueError(f"{name} must be 3 finite numbers >= 0 (vx, vy, yaw rate), got {getattr(self, name)}")
        for name in ("command_timeout", "max_input_age", "max_grip_rate"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not (0 <= self.future_tolerance < 1.0):
            raise ValueError(f"future_tolerance must be in [0, 1) s, got {self.future_tolerance}")
        span = min(float(np.min(g1.DEX3_UPPER[s] - g1.DEX3_LOWER[s])) for s in HANDS)
        if not (0 <= self.hand_margin < span / 2):
            raise ValueError(f"hand_margin must be in [0, {span / 2:.3f}) rad, got {self.hand_margin}")


def hand_positions(side: str, closure: float, margin: float) -> np.ndarray:
    """Dex3 motor targets of hand ``side`` at ``closure``, inside its ranges by ``margin``."""
    return np.clip(g1.dex3_pose(side, closure), g1.DEX3_LOWER[side] + margin, g1.DEX3_UPPER[side] - margin)


def _check_stamp(stamp_ns: int, now_ns: int, cfg: BodyConfig) -> None:
    if stamp_ns - now_ns > cfg.future_tolerance * NS:
        raise CommandRejectedError("future_stamp", f"stamp {(stamp_ns - now_ns) / NS:.3f} s in the future")
    if now_ns - stamp_ns > cfg.max_input_age * NS:
        raise CommandRejectedError("stale", f"stamp {(now_ns - stamp_ns) / NS:.3f} s old "
                                            f"(max_input_age {cfg.max_input_age} s)")


@dataclass
class BodyController:
    """The state of the body bridge; not thread-safe (the node holds one lock around every call)."""

    cfg: BodyConfig
    enabled: bool = False
    estop_asserted: bool = False
    estop_latched: bool = False
    damp_pending: bool = False  # estop_damp: the loco service must still confirm a damp
    target: np.ndarray = field(default_factory=lambda: np.zeros(3))  # clamped velocity command
    target_ns: int | None = None  # monotonic reception of the newest loco command
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # what loco_step last returned
    stop_confirmed: bool = True  # the loco service answered 0 to the last zero velocity
    grip_target: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))  # NaN: never commanded
    grip_ns: list = field(default_factory=lambda: [None, None])
    closure: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))  # the hands' limited closure
    clamped: int = 0  # loco axes and grip values clamped so far
    last_loco_ns: int | None = None
    last_hand_ns: int | None = None

    # --- inputs ---------------------------------------------------------------------------------
    def loco_command(self, velocity: Sequence[float], stamp_ns: int, now_ns: int, received_ns: int) -> np.ndarray:
        """Take one (vx, vy, yaw rate) command; returns it clamped. Raises CommandRejectedError."""
        if self.cfg.mode != "arm_sdk":
            raise CommandRejectedError("mode", LOCO_REFUSED_IN_LOWCMD)
        v = np.asarray(velocity, dtype=np.float64)
        if v.shape != (3,):
            raise CommandRejectedError("malformed", f"a loco command is (vx, vy, yaw rate), got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise CommandRejectedError("non_finite", f"loco command {v.tolist()}")
        _check_stamp(stamp_ns, now_ns, self.cfg)
        limit = np.asarray(self.cfg.max_velocity)
        clamped = np.clip(v, -limit, limit)
        self.clamped += int(np.count_nonzero(clamped != v))
        self.target, self.target_ns = clamped, received_ns
        return clamped

    def grip_command(self, names: Sequence[str], closure: Sequence[float], stamp_ns: int, now_ns: int,
                     received_ns: int) -> dict[str, float]:
        """Take closures (0 open .. 1 closed) for the named hands (contract.GRIP_NAMES, any subset)."""
        c = np.asarray(closure, dtype=np.float64)
        if not names or c.shape != (len(names),):
            raise CommandRejectedError("malformed", f"{len(names)} hand names for {c.size} closures")
        unknown = [n for n in names if n not in contract.GRIP_NAMES]
        if unknown or len(set(names)) != len(names):
            raise CommandRejectedError("malformed", f"hand names must be distinct of {', '.join(contract.GRIP_NAMES)}, "
                                                    f"got {list(names)}")
        if not np.all(np.isfinite(c)):
            raise CommandRejectedError("non_finite", f"grip command {c.tolist()}")
        _check_stamp(stamp_ns, now_ns, self.cfg)
        clamped = np.clip(c, 0.0, 1.0)
        self.clamped += int(np.count_nonzero(clamped != c))
        out = {}
        for name, value in zip(names, clamped, strict=True):
            i = contract.GRIP_NAMES.index(name)
            self.grip_target[i], self.grip_ns[i] = value, received_ns
            out[name] = float(value)
        return out

    def set_estop(self, asserted: bool) -> None:
        """The e-stop level: true asserts and latches (zero velocity on the next step), false releases."""
        if asserted and not self.estop_asserted:
            self.damp_pending = self.cfg.estop_damp
        self.estop_asserted = bool(asserted)
        self.estop_latched |= self.estop_asserted

    def enable(self, on: bool) -> tuple[bool, str]:
        """Enable (resets a released e-stop latch) or disable."""
        if not on:
            self.enabled = False
            return True, "disabled: zero velocity, no hand commands"
        if self.estop_asserted:
            return False, "refused: the e-stop is asserted (publish false on /neon/estop first)"
        self.enabled, self.estop_latched, self.damp_pending = True, False, False
        # a command from before the enable is not a command to act on now
        self.target, self.target_ns = np.zeros(3), None
        self.grip_ns = [None, None]
        return True, "enabled"

    # --- outputs --------------------------------------------------------------------------------
    def blocked(self) -> str:
        """Why nothing but zero velocity and held hands may go out ('' = nothing blocks)."""
        if self.estop_asserted or self.estop_latched:
            return "e-stop" + (" (latched: enable to reset)" if not self.estop_asserted else "")
        if not self.enabled:
            return "disabled"
        return ""

    def loco_step(self, now_ns: int) -> np.ndarray | None:
        """The velocity to send now (zero when blocked or stale, else rate-limited toward the
        command), or None when nothing needs sending (stopped, and the stop was confirmed)."""
        if self.cfg.mode != "arm_sdk":
            return None
        dt = 0.0 if self.last_loco_ns is None else (now_ns - self.last_loco_ns) / NS
        self.last_loco_ns = now_ns
        stale = self.target_ns is None or now_ns - self.target_ns > self.cfg.command_timeout * NS
        self.stop_confirmed &= not np.any(self.velocity != 0.0)  # moving: a stop must be confirmed anew
        if self.blocked() or stale:
            self.velocity = np.zeros(3)
        else:
            step = np.asarray(self.cfg.max_acceleration) * max(dt, 0.0)
            self.velocity = self.velocity + np.clip(self.target - self.velocity, -step, step)
        if np.any(self.velocity != 0.0):
            self.stop_confirmed = False
        return None if self.stop_confirmed else self.velocity.copy()

    def loco_sent(self, velocity: np.ndarray, code: int) -> None:
        """The loco service's answer to ``velocity``: a zero answered 0 ends the stop's resending."""
        if code == 0 and not np.any(velocity != 0.0):
            self.stop_confirmed = True

    def damp_sent(self, code: int) -> None:
        if code == 0:
            self.damp_pending = False

    def hand_step(self, now_ns: int) -> dict[str, float]:
        """Closure per hand to command now: limited toward the command; held when e-stopped or
        stale; {} when disabled (no hand command at all) or a hand was never commanded."""
        dt = 0.0 if self.last_hand_ns is None else max((now_ns - self.last_hand_ns) / NS, 0.0)
        self.last_hand_ns = now_ns
        if not self.enabled and not (self.estop_asserted or self.estop_latched):
            return {}
        blocked = bool(self.blocked())
        out = {}
        for i, name in enumerate(contract.GRIP_NAMES):
            if np.isnan(self.grip_target[i]):
                continue
            if np.isnan(self.closure[i]):
                if blocked or self.grip_ns[i] is None:
                    continue  # nothing to hold yet
                self.closure[i] = 0.0  # the first command starts from the open hand
            fresh = self.grip_ns[i] is not None and now_ns - self.grip_ns[i] <= self.cfg.command_timeout * NS
            if fresh and not blocked:
                step = self.cfg.max_grip_rate * dt
                self.closure[i] += float(np.clip(self.grip_target[i] - self.closure[i], -step, step))
            out[name] = float(self.closure[i])
        return out

    def status(self, now_ns: int) -> dict[str, object]:
        age = (now_ns - self.target_ns) / NS if self.target_ns is not None else float("inf")
        return {"mode": self.cfg.mode, "enabled": self.enabled, "blocked": self.blocked() or "no",
                "estop_asserted": self.estop_asserted, "estop_latched": self.estop_latched,
                "damp_pending": self.damp_pending, "loco_command_age_s": round(age, 3),
                "velocity": [round(float(v), 4) for v in self.velocity], "stop_confirmed": self.stop_confirmed,
                "closure": [None if np.isnan(c) else round(float(c), 4) for c in self.closure],
                "clamped": self.clamped}
