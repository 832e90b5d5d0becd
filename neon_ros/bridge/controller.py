"""The per-2 ms decision of the bridge: which target, which gains, or no torque at all.

States (``Controller.state``):
- ``disabled``: no torque. In ``lowcmd`` mode every motor gets mode 0 and kp = kd = tau = 0
  (the bridge keeps publishing, so the robot sees an explicit "off", not silence). In
  ``arm_sdk`` mode the blend weight ramps to 0 while the last target is held, then the
  bridge stops publishing (Unitree's controller owns the arms again).
- ``active``: a target goes through ``TargetLimiter`` (limits + rate limit). Entering it
  (``enable``) needs a fresh LowState: the target starts at the measured pose and kp ramps
  from 0 over ``enable_ramp``. Sources, in priority order:
  ``teleop`` (fresh within teleop_timeout) > ``handback`` (teleop went quiet: a linear fade
  from teleop's last target to the policy's over handback_time) > ``policy`` (a chunk
  newer than command_timeout) > ``hold`` (the last safe command, frozen). Before the first
  command after enabling the bridge holds the measured pose indefinitely (``hold``); once
  driven, no command for damp_timeout latches damping.
- ``damping``: kp = 0, kd = damping_kd on the commanded joints, latched until ``enable``.
  Causes: e-stop (applied on the next cycle), the damp service, the damp timeout, a stale
  or missing LowState while active, an internal error.

Commands in ``arm_sdk`` mode cover waist + arms only; leg entries are never commanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, g1
from neon_ros.bridge.safety import NS, SafetyConfig, TargetLimiter, Trajectory
from neon_ros.bridge.schedule import ChunkSchedule, sample

MODES = ("lowcmd", "arm_sdk")
MAX_CATCHUP = 5  # cycles of motion one late step may make up (10 ms at 500 Hz)
STATES = ("disabled", "active", "damping")


@dataclass
class ControllerConfig:
    """Timing and gains of the bridge controller (seconds unless stated).

    mode: ``lowcmd`` (all 29 joints) or ``arm_sdk`` (waist + arms, blend weight).
    command_timeout: no fresh chunk/teleop for this long -> hold the last safe target.
    damp_timeout: still nothing for this long -> damping (latched).
    teleop_timeout: teleop counts as fresh this long after its last message.
    handback_time: fade from teleop's last target back to the policy.
    enable_ramp: kp ramps 0 -> full over this time after enable (also the arm_sdk weight ramp).
    chunk_blend: cross-fade time when a new chunk replaces the current one.
    lowstate_timeout: a LowState older than this is stale (no motion is commanded).
    damping_kd: N m s/rad on each commanded joint while damping.
    kp, kd: per-joint gains (default: Unitree's low-level example, g1.DEFAULT_KP/KD).
    dt: cycle period (contract.LOWCMD_DT). Each step moves at most max_velocity times the time
        since the previous step, capped at MAX_CATCHUP * dt (a late cycle catches up a little).
    """

    mode: str = "lowcmd"
    command_timeout: float = 0.5
    damp_timeout: float = 2.0
    teleop_timeout: float = 0.3
    handback_time: float = 1.0
    enable_ramp: float = 1.0
    chunk_blend: float = 0.1
    lowstate_timeout: float = 0.1
    damping_kd: float = 2.0
    kp: np.ndarray = field(default_factory=lambda: g1.DEFAULT_KP.copy())
    kd: np.ndarray = field(default_factory=lambda: g1.DEFAULT_KD.copy())
    dt: float = contract.LOWCMD_DT
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("command_timeout", "teleop_timeout", "lowstate_timeout", "dt"):
            if not 0.0 < getattr(self, name) <= 10.0:
                raise ValueError(f"{name} must be in (0, 10] s, got {getattr(self, name)}")
        if not self.command_timeout < self.damp_timeout <= 60.0:
            raise ValueError(f"damp_timeout must be in (command_timeout={self.command_timeout}, 60] s, "
                             f"got {self.damp_timeout}")
        for name in ("handback_time", "enable_ramp"):
            if not 0.0 <= getattr(self, name) <= 10.0:
                raise ValueError(f"{name} must be in [0, 10] s, got {getattr(self, name)}")
        if not 0.0 < self.damping_kd <= 20.0:
            raise ValueError(f"damping_kd must be in (0, 20] N m s/rad, got {self.damping_kd}")
        self.kp = np.asarray(self.kp, dtype=np.float64)
        self.kd = np.asarray(self.kd, dtype=np.float64)
        for name, v in (("kp", self.kp), ("kd", self.kd)):
            if v.shape != (g1.NUM_JOINTS,) or not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v > 500):
                raise ValueError(f"{name} must be {g1.NUM_JOINTS} finite gains in [0, 500]")

    @property
    def commanded(self) -> np.ndarray:
        """Boolean mask of the joints this mode may command."""
        mask = np.zeros(g1.NUM_JOINTS, dtype=bool)
        mask[list(range(g1.NUM_JOINTS)) if self.mode == "lowcmd" else list(g1.UPPER_BODY_INDICES)] = True
        return mask


@dataclass
class Command:
    """One cycle's motor command in G1 order (arrays of 29). ``motors_on[i]`` False -> mode 0."""

    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray
    motors_on: np.ndarray
    weight: float  # arm_sdk blend weight (0..1); 0 in lowcmd mode
    publish: bool  # False: send nothing this cycle (arm_sdk after ramp-out)
    state: str
    source: str


@dataclass
class Measured:
    """The latest LowState as arrays, with its arrival time (ns, bridge clock)."""

    q: np.ndarray
    dq: np.ndarray
    received_ns: int
    mode_machine: int = 0


class Controller:
    """Not thread-safe: the node serialises calls with one lock."""

    def __init__(self, cfg: ControllerConfig):
        self.cfg = cfg
        self.mask = cfg.commanded
        self.limiter = TargetLimiter(cfg.safety)
        self.policy = ChunkSchedule(cfg.chunk_blend)
        self.teleop: Trajectory | None = None
        self.state = "disabled"
        self.source = "none"
        self.damp_reason = ""
        self.weight = 0.0
        self.cycle = 0
        self.enable_ns = 0
        self._driven = False  # a command was followed since the last enable
        self._last_cmd_ns = 0
        self._hold_q: np.ndarray | None = None
        self._teleop_last: np.ndarray | None = None
        self._teleop_quiet_ns = 0
        self._prev_q: np.ndarray | None = None
        self._last_step_ns = 0
        self._ramp_damped = False
        self._estop_cycle: int | None = None
        self.estop_latency_cycles: int | None = None
        self.estop_latency_ms: float | None = None
        self._estop_ns = 0
        self.counts = {"enable": 0, "enable_refused": 0, "estop": 0, "damp": 0}

    # --- inputs (from the node's callbacks) -------------------------------------------
    def push(self, traj: Trajectory, now_ns: int) -> None:
        """A validated chunk or teleop trajectory."""
        if traj.kind == "chunk":
            self.policy.push(traj, now_ns)
        else:
            self.teleop = traj
        self._last_cmd_ns = max(self._last_cmd_ns, traj.received_ns)

    def fresh(self, meas: Measured | None, now_ns: int) -> bool:
        return (meas is not None and now_ns - meas.received_ns <= self.cfg.lowstate_timeout * NS
                and bool(np.all(np.isfinite(meas.q))) and bool(np.all(np.isfinite(meas.dq))))

    def enable(self, on: bool, meas: Measured | None, now_ns: int) -> tuple[bool, str]:
        """Enable (from the measured pose; clears a damping latch) or disable."""
        if not on:
            # arm_sdk: a ramp-out that starts from damping keeps damping gains (never re-stiffens)
            self._ramp_damped = self._ramp_damped or self.state == "damping"
            self.state, self.source, self.damp_reason = "disabled", "none", ""
            return True, "disabled"
        if not self.fresh(meas, now_ns):
            self.counts["enable_refused"] += 1
            return False, "refused: no fresh LowState from the robot"
        self.counts["enable"] += 1
        self._ramp_damped = False
        self.limiter.reset(meas.q)
        self._hold_q = self.limiter.prev.copy()
        self._prev_q = self._hold_q.copy()
        self.teleop, self._teleop_last = None, None
        self.state, self.source, self.damp_reason = "active", "hold", ""
        self.enable_ns, self._driven = now_ns, False
        self._last_step_ns = 0  # the first step after enabling moves at most one cycle's worth
        return True, "enabled from the measured pose"

    def damp(self, reason: str, now_ns: int = 0) -> None:
        """Latch damping until the next enable (a disabled lowcmd bridge has nothing to damp)."""
        if reason == "estop":
            self.counts["estop"] += 1
            if self._estop_cycle is None and self.state == "active":
                self._estop_cycle, self._estop_ns = self.cycle, now_ns
        if self.state == "active" or (self.state == "disabled" and self.weight > 0.0):
            self.counts["damp"] += 1  # (disabled with weight > 0: an arm_sdk ramp-out still in progress)
            self.state, self.source, self.damp_reason = "damping", "none", reason

    # --- the 2 ms step -------------------------------------------------------------------
    def step(self, now_ns: int, meas: Measured | None) -> Command:
        cfg = self.cfg
        # The rate limit is a velocity: scale it by the time since the last step, so a starved
        # loop does not slow the motion down, but never by more than MAX_CATCHUP cycles.
        elapsed = (now_ns - self._last_step_ns) / NS if self._last_step_ns else cfg.dt
        dt = min(max(elapsed, 0.0), MAX_CATCHUP * cfg.dt)
        self._last_step_ns = now_ns
        self.cycle += 1
        if self.state == "active":
            if not self.fresh(meas, now_ns):
                self.damp("lowstate_stale")
            elif self._driven and now_ns - self._last_cmd_ns > cfg.damp_timeout * NS:
                self.damp("command_timeout")
        if self._estop_cycle is not None:  # e-stop arrived since the last step: measured here
            self.estop_latency_cycles = self.cycle - self._estop_cycle
            self.estop_latency_ms = (now_ns - self._estop_ns) / 1e6 if self._estop_ns else None
            self._estop_cycle = None
        if self.state == "damping":  # the arm_sdk weight stays frozen: damping goes through it
            return self._damping_command()
        if self.state == "disabled":
            return self._disabled_command(meas)
        self.weight = min(1.0, self.weight + dt / cfg.enable_ramp) if cfg.enable_ramp > 0 else 1.0
        target = self._target(now_ns)
        q = self.limiter.step(target, dt)
        dq = (q - self._prev_q) / dt if dt > 0 else np.zeros(g1.NUM_JOINTS)
        self._prev_q = q
        ramp = min(1.0, (now_ns - self.enable_ns) / (cfg.enable_ramp * NS)) if cfg.enable_ramp > 0 else 1.0
        kp = np.where(self.mask, cfg.kp * max(ramp, 0.0), 0.0)
        kd = np.where(self.mask, cfg.kd, 0.0)
        return self._command(q, np.where(self.mask, dq, 0.0), kp, kd, True)

    def _target(self, now_ns: int) -> np.ndarray:
        cfg = self.cfg
        policy = self.policy.target(now_ns) if self.policy.age_s(now_ns) <= cfg.command_timeout else None
        teleop_fresh = self.teleop is not None and (now_ns - self.teleop.received_ns) <= cfg.teleop_timeout * NS
        if teleop_fresh:
            base = policy if policy is not None else self._base_hold()
            tele = sample(self.teleop, now_ns)
            target = np.where(self.teleop.mask, tele, base)
            self._teleop_last, self._teleop_quiet_ns = target, 0
            return self._set_source("teleop", target)
        if self._teleop_last is not None:
            if self._teleop_quiet_ns == 0:
                self._teleop_quiet_ns = now_ns
            a = (now_ns - self._teleop_quiet_ns) / (cfg.handback_time * NS) if cfg.handback_time > 0 else 1.0
            base = policy if policy is not None else self._teleop_last
            if a < 1.0:
                return self._set_source("handback", (1.0 - a) * self._teleop_last + a * base)
            self._teleop_last = None
            if policy is None:
                self._hold_q = self.limiter.prev.copy()
        if policy is not None:
            return self._set_source("policy", np.where(np.isfinite(policy), policy, self.limiter.prev))
        if self.source != "hold":
            self._hold_q = self.limiter.prev.copy()
        return self._set_source("hold", self._hold_q)

    def _base_hold(self) -> np.ndarray:
        return self._teleop_last if self._teleop_last is not None else self.limiter.prev

    def _set_source(self, source: str, target: np.ndarray) -> np.ndarray:
        if source in ("policy", "teleop"):
            self._driven = True
        self.source = source
        return target

    def _damping_command(self) -> Command:
        q = self.limiter.prev.copy() if self.limiter.prev is not None else self.cfg.safety.clamp(g1.STANDING_POSE)
        zeros = np.zeros(g1.NUM_JOINTS)
        kd = np.where(self.mask, self.cfg.damping_kd, 0.0)
        return self._command(q, zeros, zeros.copy(), kd, True)

    def _disabled_command(self, meas: Measured | None) -> Command:
        cfg = self.cfg
        zeros = np.zeros(g1.NUM_JOINTS)
        if cfg.mode == "arm_sdk" and self.weight > 0.0 and self.limiter.prev is not None:
            # Ramp the blend weight out while holding the last target, then go silent.
            self.weight = max(0.0, self.weight - cfg.dt / cfg.enable_ramp) if cfg.enable_ramp > 0 else 0.0
            q = self.limiter.prev.copy()
            if self._ramp_damped:
                return self._command(q, zeros, zeros.copy(), np.where(self.mask, cfg.damping_kd, 0.0), True)
            return self._command(q, zeros, np.where(self.mask, cfg.kp, 0.0), np.where(self.mask, cfg.kd, 0.0), True)
        self.weight = 0.0
        if meas is not None and np.all(np.isfinite(meas.q)):
            q = cfg.safety.clamp(meas.q)
        else:
            q = cfg.safety.clamp(g1.STANDING_POSE)
        cmd = self._command(q, zeros, zeros.copy(), zeros.copy(), False)
        cmd.publish = cfg.mode == "lowcmd"
        return cmd

    def _command(self, q, dq, kp, kd, on: bool) -> Command:
        if self.cfg.mode == "arm_sdk":
            q = np.where(self.mask, q, 0.0)
        motors_on = self.mask.copy() if on else np.zeros(g1.NUM_JOINTS, dtype=bool)
        weight = self.weight if self.cfg.mode == "arm_sdk" else 0.0
        return Command(q=q, dq=dq, kp=kp, kd=kd, tau=np.zeros(g1.NUM_JOINTS), motors_on=motors_on,
                       weight=float(weight), publish=True, state=self.state, source=self.source)

    def status(self, now_ns: int) -> dict:
        """Values for /diagnostics."""
        return {"state": self.state, "source": self.source, "damp_reason": self.damp_reason,
                "mode": self.cfg.mode, "cycle": self.cycle, "arm_sdk_weight": round(self.weight, 3),
                "chunk_age_s": round(min(self.policy.age_s(now_ns), 1e6), 3),
                "estop_latency_cycles": self.estop_latency_cycles,
                "estop_latency_ms": None if self.estop_latency_ms is None else round(self.estop_latency_ms, 3),
                **self.counts}
