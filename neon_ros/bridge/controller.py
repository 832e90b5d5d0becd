"""The per-2 ms decision of the bridge: which target, which gains, or no torque at all.

States (``Controller.state``):
- ``disabled``: no torque from the bridge, and nothing written: before a lowcmd bridge is
  enabled Unitree's motion service may own the motors, and any LowCmd_ (even "every motor
  mode 0") would fight it. In ``lowcmd`` mode a bridge disabled after it powered the motors
  first sends OFF_BURST cycles of every motor in mode 0 with kp = kd = tau = 0 (the robot
  keeps the last command it got: that must be "off", not a stiff target). In ``arm_sdk``
  mode the blend weight ramps to 0 while the last target is held (``hand back``), then the
  bridge stops publishing (Unitree's controller owns the arms again).
- ``active``: a target goes through ``TargetLimiter`` (limits + rate limit). Entering it
  (``enable``) needs a fresh LowState: the target starts at the measured pose and kp ramps
  from 0 over ``enable_ramp``; an enable while active changes nothing. Sources, in priority
  order: ``teleop`` (a message within teleop_timeout, or a trajectory not yet played to its
  end; the first point is reached at its time_from_start, interpolated from the current
  target, like ros2_control's joint_trajectory_controller) > ``teleop_hold`` / ``handback``
  (after teleop stops, see below) > ``policy`` (a chunk newer than command_timeout) >
  ``hold`` (the last safe command, frozen; a joint whose target it cannot reach within its
  torque limit holds its measured pose). Before the first command after enabling the bridge
  holds the measured pose indefinitely (``hold``); once driven, no command for damp_timeout
  latches damping.
- ``damping``: latched until ``enable``. ``lowcmd``: kp = 0, kd = damping_kd on every joint.
  ``arm_sdk``: the upper body is handed back to Unitree's motion service, which keeps the
  waist stiff and the robot balanced: the weight ramps to 0 over enable_ramp while the last
  target is held with the active gains, then nothing is sent (kp = 0 through a weight near
  1 would leave the waist limp under the torso).
  Causes: e-stop (applied on the next cycle), the damp service, the damp timeout, a stale
  or missing LowState while active, a fault of the loop (``fault: ...`` in the status).

Teleop loss (``teleop_loss``): ``hold`` (default, a deadman) keeps teleop's joints at
teleop's last target when its messages stop, for as long as the other watchdogs allow; the
policy gets them back only after an explicit release (``release_teleop``: an empty teleop
message, sent by `neon-ros teleop` when it ends), then through a fade over handback_time.
A lost teleop sender is not a release: whoever drove the arm decided where it is. With
``handback`` the fade to the policy starts as soon as teleop goes quiet.

E-stop is a latched level: ``estop(True)`` damps (or, disabled, forbids powering up) and
latches; ``estop(False)`` releases the level but not the latch. ``enable`` is refused while
the level is asserted; after a release an explicit enable resets the latch (``autostart``
never does: it passes ``reset=False``). A latch a previous bridge persisted
(``restore_estop_latch``, see ``bridge.latch``) counts as the latch of a released e-stop.

Torque: kp * |q_cmd - q_measured| (or |tau_est| from LowState) above g1.TORQUE_LIMITS for
longer than torque_grace limits the commanded target to the band where kp * error is within
the joint's limit (counted, and named in the status as ``torque_limited``).

Commands in ``arm_sdk`` mode cover waist + arms only; leg entries are never commanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, g1
from neon_ros.bridge.command import MODES, Command, Measured, commanded_mask, damping_command
from neon_ros.bridge.safety import NS, SafetyConfig, TargetLimiter, Trajectory
from neon_ros.bridge.schedule import ChunkSchedule, sample

TELEOP_LOSS = ("hold", "handback")
MAX_CATCHUP = 5  # cycles of motion one late step may make up (10 ms at 500 Hz)
OFF_BURST = 25  # lowcmd: "off" cycles sent after a powered bridge is disabled (50 ms at 500 Hz), then silence


@dataclass
class ControllerConfig:
    """Timing and gains of the bridge controller (seconds unless stated).

    mode: ``lowcmd`` (all 29 joints) or ``arm_sdk`` (waist + arms, blend weight).
    command_timeout: no fresh chunk/teleop for this long -> hold the last safe target.
    damp_timeout: still nothing for this long -> damping (latched).
    teleop_timeout: teleop counts as fresh this long after its last message.
    teleop_loss: after teleop stops: ``hold`` its last target until released, or ``handback``.
    handback_time: fade from teleop's last target back to the policy.
    torque_grace: kp * following error (or tau_est) may exceed the torque limit this long.
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
    teleop_loss: str = "hold"
    handback_time: float = 1.0
    torque_grace: float = 0.2
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
        if self.teleop_loss not in TELEOP_LOSS:
            raise ValueError(f"teleop_loss must be one of {TELEOP_LOSS}, got {self.teleop_loss!r}")
        if not 0.0 <= self.torque_grace <= 2.0:
            raise ValueError(f"torque_grace must be in [0, 2] s, got {self.torque_grace}")
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
        return commanded_mask(self.mode)


class Controller:
    """Not thread-safe: the node serialises calls with one lock. Every ``now_ns`` is monotonic."""

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
        self._teleop_from: np.ndarray | None = None  # the target when the teleop trajectory arrived
        self._teleop_released = False
        self._over_since = np.full(g1.NUM_JOINTS, -1, dtype=np.int64)  # ns a joint went over its limit
        self.torque_limited = np.zeros(g1.NUM_JOINTS, dtype=bool)
        self.estop_asserted = False
        self.estop_latched = False
        self.fault = ""
        self._prev_q: np.ndarray | None = None
        self._last_step_ns = 0
        self._off_cycles = 0  # lowcmd: "off" commands still to send after a disable
        self._estop_cycle: int | None = None
        self.estop_latency_cycles: int | None = None
        self.estop_latency_ms: float | None = None
        self._estop_ns = 0
        self.counts = {"enable": 0, "enable_refused": 0, "estop": 0, "damp": 0, "faults": 0,
                       "torque_limited_cycles": 0}

    # --- inputs (from the node's callbacks) -------------------------------------------
    def push(self, traj: Trajectory, now_ns: int) -> None:
        """A validated chunk or teleop trajectory."""
        if traj.kind == "chunk":
            self.policy.push(traj, now_ns)
        else:
            self.teleop, self._teleop_released = traj, False
            self._teleop_from = self.limiter.prev.copy() if self.state == "active" else None
        self._last_cmd_ns = max(self._last_cmd_ns, traj.received_ns)

    def release_teleop(self) -> None:
        """Teleop hands its joints back to the policy (through the hand-back fade)."""
        self._teleop_released = True

    def estop(self, asserted: bool, now_ns: int) -> None:
        """The e-stop level: True damps and latches; False releases the level, not the latch."""
        if asserted:
            self.estop_asserted = self.estop_latched = True
            self.damp("estop", now_ns)
        else:
            self.estop_asserted = False

    def restore_estop_latch(self) -> None:
        """An e-stop latched before this controller existed (persisted by a previous bridge): like a
        released e-stop, it forbids autostart until an explicit enable resets it."""
        self.estop_latched = True

    def take_over(self, q: np.ndarray, weight: float, reason: str) -> None:
        """Continue from another bridge's last command, damping: its targets ``q`` (non-finite
        entries: the standing pose) and arm_sdk blend ``weight``. ``step`` then returns this
        mode's damping, as it would have (bridge_watchdog, when the bridge falls silent)."""
        q = np.asarray(q, dtype=np.float64)
        self.limiter.reset(np.where(np.isfinite(q), q, g1.STANDING_POSE))
        self.weight = float(np.clip(weight, 0.0, 1.0)) if self.cfg.mode == "arm_sdk" else 0.0
        self.state, self.source, self.damp_reason = "damping", "none", reason

    def set_fault(self, reason: str) -> None:
        """A fault of the loop: damping latched until an explicit enable; reported as ``fault: ...``."""
        self.counts["faults"] += 1
        self.fault = reason
        self.damp(f"fault: {reason}")

    def fresh(self, meas: Measured | None, now_ns: int) -> bool:
        return (meas is not None and now_ns - meas.received_ns <= self.cfg.lowstate_timeout * NS
                and bool(np.all(np.isfinite(meas.q))) and bool(np.all(np.isfinite(meas.dq))))

    def enable(self, on: bool, meas: Measured | None, now_ns: int, reset: bool = True) -> tuple[bool, str]:
        """Enable (from the measured pose; clears a damping latch) or disable.

        reset: an explicit enable, which may clear a released e-stop latch or a fault
        (autostart passes False). Refused while the e-stop is asserted; a no-op while active.
        """
        if not on:
            if self.state != "disabled":  # lowcmd: the robot's last command must be "off"
                self._off_cycles = OFF_BURST
            self.state, self.source, self.damp_reason = "disabled", "none", ""
            return True, "disabled"
        if self.state == "active":
            return True, "already active (nothing changed)"
        if self.estop_asserted:
            self.counts["enable_refused"] += 1
            return False, "refused: e-stop asserted (release it with data: false, then enable)"
        if not reset and (self.estop_latched or self.fault):
            self.counts["enable_refused"] += 1
            return False, "refused: e-stop latched or fault; needs an explicit enable"
        if not self.fresh(meas, now_ns):
            self.counts["enable_refused"] += 1
            return False, "refused: no fresh LowState from the robot"
        self.counts["enable"] += 1
        self.estop_latched, self.fault = False, ""
        self._over_since[:] = -1
        self.limiter.reset(meas.q)
        self._hold_q = self.limiter.prev.copy()
        self._prev_q = self._hold_q.copy()
        self.teleop, self._teleop_last, self._teleop_from = None, None, None
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
            elif self._driven and now_ns - self._last_command_ns() > cfg.damp_timeout * NS:
                self.damp("command_timeout")
        if self._estop_cycle is not None:  # e-stop arrived since the last step: measured here
            self.estop_latency_cycles = self.cycle - self._estop_cycle
            self.estop_latency_ms = (now_ns - self._estop_ns) / 1e6 if self._estop_ns else None
            self._estop_cycle = None
        if self.state == "damping":
            return self._damping_command(meas)
        if self.state == "disabled":
            return self._disabled_command(meas)
        self.weight = min(1.0, self.weight + dt / cfg.enable_ramp) if cfg.enable_ramp > 0 else 1.0
        target = self._target(now_ns, meas)
        q = self.limiter.step(target, dt)
        ramp = min(1.0, (now_ns - self.enable_ns) / (cfg.enable_ramp * NS)) if cfg.enable_ramp > 0 else 1.0
        kp = np.where(self.mask, cfg.kp * max(ramp, 0.0), 0.0)
        kd = np.where(self.mask, cfg.kd, 0.0)
        q = self._limit_torque(q, meas, now_ns, dt)
        dq = (q - self._prev_q) / dt if dt > 0 else np.zeros(g1.NUM_JOINTS)
        self._prev_q = q
        return self._command(q, np.where(self.mask, dq, 0.0), kp, kd, True)

    def _limit_torque(self, q: np.ndarray, meas: Measured, now_ns: int, dt: float) -> np.ndarray:
        """Keep kp * (q - q_measured) within each joint's torque limit, never faster than the rate limit.

        kp is the full gain (also during the enable ramp: the band does not shrink under a target).
        A joint over its limit (kp * error, or |tau_est|) never moves further from its measured
        pose; one over it for longer than torque_grace (pushed or sagging away from its target)
        is pulled back toward the band where kp * error is within the limit, at the velocity
        limit. The limiter continues from the result.
        """
        prev, kp = self._prev_q, self.cfg.kp
        tau = np.zeros(g1.NUM_JOINTS) if meas.tau is None else np.where(np.isfinite(meas.tau), np.abs(meas.tau), 0.0)
        limit = g1.TORQUE_LIMITS
        frozen = self.mask & (np.maximum(kp * np.abs(q - meas.q), tau) > limit) & (
            np.abs(q - meas.q) > np.abs(prev - meas.q))
        q = np.where(frozen, prev, q)
        over = self.mask & (np.maximum(kp * np.abs(q - meas.q), tau) > limit)
        self._over_since = np.where(over, np.where(self._over_since < 0, now_ns, self._over_since), -1)
        pulled = over & (now_ns - self._over_since >= int(self.cfg.torque_grace * NS))
        self.torque_limited = frozen | pulled
        if not self.torque_limited.any():
            return q
        self.counts["torque_limited_cycles"] += 1
        band = limit / np.maximum(kp, 1e-9)
        edge = meas.q + np.clip(prev - meas.q, -band, band)
        step = self.cfg.safety.velocity_limits * dt
        q = self.cfg.safety.clamp(np.where(pulled, prev + np.clip(edge - prev, -step, step), q))
        self.limiter.prev = q.copy()
        return q

    def _target(self, now_ns: int, meas: Measured) -> np.ndarray:
        cfg = self.cfg
        policy = self.policy.target(now_ns) if self.policy.age_s(now_ns) <= cfg.command_timeout else None
        tele = self.teleop
        teleop_fresh = tele is not None and not self._teleop_released and (
            now_ns - tele.received_ns <= cfg.teleop_timeout * NS or now_ns <= tele.end_ns)
        if teleop_fresh:
            base = policy if policy is not None else self._base_hold()
            target = np.where(tele.mask, sample(tele, now_ns, self._teleop_from), base)
            self._teleop_last, self._teleop_quiet_ns = target, 0
            return self._set_source("teleop", target)
        if self._teleop_last is not None:
            if cfg.teleop_loss == "hold" and not self._teleop_released:  # deadman: hold until released
                base = policy if policy is not None else self._teleop_last
                return self._set_source("teleop_hold", np.where(tele.mask, self._teleop_last, base))
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
        if self.source != "hold":  # a joint at its torque limit cannot reach its target: hold where it is
            unreachable = self.torque_limited | (self._over_since >= 0)
            self._hold_q = np.where(unreachable, self.cfg.safety.clamp(meas.q), self.limiter.prev)
        return self._set_source("hold", self._hold_q)

    def _last_command_ns(self) -> int:
        """The last command's arrival, or the end of a teleop trajectory still being played."""
        playing = self.teleop is not None and not self._teleop_released
        return max(self._last_cmd_ns, self.teleop.end_ns if playing else 0)

    def _base_hold(self) -> np.ndarray:
        return self._teleop_last if self._teleop_last is not None else self.limiter.prev

    def _set_source(self, source: str, target: np.ndarray) -> np.ndarray:
        if source in ("policy", "teleop"):
            self._driven = True
        self.source = source
        return target

    def _damping_command(self, meas: Measured | None) -> Command:
        if self.cfg.mode == "arm_sdk":  # damping = the motion service's stiff hold, not kp = 0
            return self._hand_back(meas)
        q = self.limiter.prev.copy() if self.limiter.prev is not None else self.cfg.safety.clamp(g1.STANDING_POSE)
        return damping_command(self.cfg.mode, q, self.cfg.damping_kd, self.weight)

    def _disabled_command(self, meas: Measured | None) -> Command:
        if self.cfg.mode == "arm_sdk":
            return self._hand_back(meas)
        cmd = self._off_command(meas)
        cmd.publish = self._off_cycles > 0  # lowcmd: "off" just after a disable, then nothing
        self._off_cycles = max(0, self._off_cycles - 1)
        return cmd

    def _hand_back(self, meas: Measured | None) -> Command:
        """arm_sdk: the blend weight ramps to 0 while the last target is held with the active gains
        (Unitree's motion service takes the upper body back, stiff), then nothing is sent."""
        cfg = self.cfg
        if self.weight <= 0.0:
            return self._off_command(meas)
        self.weight = max(0.0, self.weight - cfg.dt / cfg.enable_ramp) if cfg.enable_ramp > 0 else 0.0
        zeros = np.zeros(g1.NUM_JOINTS)
        return self._command(self.limiter.prev.copy(), zeros, np.where(self.mask, cfg.kp, 0.0),
                             np.where(self.mask, cfg.kd, 0.0), True)

    def _off_command(self, meas: Measured | None) -> Command:
        """Every motor off (mode 0, no gains), at the measured pose; not published (``publish`` False)."""
        cfg = self.cfg
        zeros = np.zeros(g1.NUM_JOINTS)
        self.weight = 0.0
        if meas is not None and np.all(np.isfinite(meas.q)):
            q = cfg.safety.clamp(meas.q)
        else:
            q = cfg.safety.clamp(g1.STANDING_POSE)
        cmd = self._command(q, zeros, zeros.copy(), zeros.copy(), False)
        cmd.publish = False
        return cmd

    def _command(self, q, dq, kp, kd, on: bool) -> Command:
        if self.cfg.mode == "arm_sdk":
            q = np.where(self.mask, q, 0.0)
        motors_on = self.mask.copy() if on else np.zeros(g1.NUM_JOINTS, dtype=bool)
        weight = self.weight if self.cfg.mode == "arm_sdk" else 0.0
        return Command(q=q, dq=dq, kp=kp, kd=kd, tau=np.zeros(g1.NUM_JOINTS), motors_on=motors_on,
                       weight=float(weight), publish=True, state=self.state, source=self.source,
                       torque_limited=self.torque_limited.copy() if self.state == "active" else
                       np.zeros(g1.NUM_JOINTS, dtype=bool))

    def status(self, now_ns: int) -> dict:
        """Values for /diagnostics."""
        estop = "asserted" if self.estop_asserted else "latched" if self.estop_latched else "clear"
        limited = [g1.JOINT_NAMES[i] for i in np.flatnonzero(self.torque_limited)] if self.state == "active" else []
        return {"state": self.state, "source": self.source, "damp_reason": self.damp_reason,
                "estop_state": estop, "fault": self.fault, "torque_limited": ",".join(limited),
                "mode": self.cfg.mode, "cycle": self.cycle, "arm_sdk_weight": round(self.weight, 3),
                "chunk_age_s": round(min(self.policy.age_s(now_ns), 1e6), 3),
                "estop_latency_cycles": self.estop_latency_cycles,
                "estop_latency_ms": None if self.estop_latency_ms is None else round(self.estop_latency_ms, 3),
                **self.counts}
