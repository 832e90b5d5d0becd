"""The simulated G1's loco service (a kinematically moving base) and its Dex3 hand command monitor.

``LocoService`` answers what Unitree's loco service (LocoClient, service "sport") answers for
the calls Neon makes: SetVelocity(vx, vy, yaw rate, duration) walks the base at that velocity
for ``duration`` s (then it stops, as on the robot), SetFsmId(1) damps. The simulated pelvis is
pinned (a gantry), so the base moves kinematically: the physics thread integrates the commanded
velocity in the base's own frame into a planar pose (x, y, yaw) and moves the pinned pelvis
there (``G1Sim.set_base_pose``). Velocities only move the base while a motion mode is active and
the service is not damped (released, the legs would be rt/lowcmd's); such calls are answered and
counted as ignored. The RPC threads only store the request; the physics thread picks it up with
one attribute read per step, so the 500 Hz path stays cheap while the base stands still.

The G1 model has no hand joints, so ``HandMonitor`` records the HandCmd_ that arrive on
rt/dex3/left/cmd and rt/dex3/right/cmd (per hand: count, newest targets, gains, mode bytes, and
how many had non-finite values or targets outside the Dex3 ranges); sim_g1 reports it on
/diagnostics. No rclpy here.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from neon_ros import g1

FSM_DAMP = 1  # the loco service's damping FSM id (LocoClient.Damp)


@dataclass
class LocoStats:
    velocity_calls: int = 0
    ignored: int = 0  # velocity calls while no motion mode was active or while damped
    fsm_id: int = -1  # the last FSM id set (-1: none since start)
    command: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the velocity in force
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # base x (m), y (m), yaw (rad) in the world
    distance: float = 0.0  # m the base has travelled


class LocoService:
    """SetVelocity / SetFsmId of the simulated loco service; ``advance`` runs in the physics thread."""

    def __init__(self, motion_active):
        self._motion_active = motion_active  # () -> bool: a motion mode owns the motors
        self._lock = threading.Lock()
        self._pending: tuple[np.ndarray, float] | None = None  # (velocity, duration) for the physics thread
        self._velocity = np.zeros(3)
        self._left = 0.0  # s of simulated time the velocity still holds
        self._damped = False
        self._stats = LocoStats()
        self.moving = False  # read by the physics thread without the lock (a hint; advance takes it)

    # --- RPC handlers (SDK server threads) --------------------------------------------------------
    def set_velocity(self, vx: float, vy: float, yaw_rate: float, duration: float) -> None:
        v = np.array([vx, vy, yaw_rate], dtype=np.float64)
        if not (np.all(np.isfinite(v)) and math.isfinite(duration) and duration >= 0):
            raise ValueError(f"SetVelocity needs finite numbers and duration >= 0, got {v.tolist()}, {duration}")
        with self._lock:
            self._stats.velocity_calls += 1
            if self._damped or not self._motion_active():
                self._stats.ignored += 1
                v, duration = np.zeros(3), 0.0
            self._pending = (v, float(duration))
            self.moving = True

    def set_fsm(self, fsm_id: int) -> None:
        with self._lock:
            self._stats.fsm_id = int(fsm_id)
            self._damped = fsm_id == FSM_DAMP
            if self._damped:
                self._pending = (np.zeros(3), 0.0)
                self.moving = True

    # --- the physics thread ----------------------------------------------------------------------
    def advance(self, dt: float) -> tuple[float, float, float] | None:
        """Integrate ``dt`` s of the commanded velocity; the new base pose, or None if it did not move."""
        with self._lock:
            if self._pending is not None:
                (self._velocity, self._left), self._pending = self._pending, None
            if self._left <= 0.0 or not np.any(self._velocity != 0.0):
                self._velocity, self._left, self.moving = np.zeros(3), 0.0, False
                self._stats.command = (0.0, 0.0, 0.0)
                return None
            step = min(dt, self._left)
            self._left -= step
            vx, vy, wz = self._velocity
            x, y, yaw = self._stats.pose
            mid = yaw + 0.5 * wz * step  # midpoint heading: exact enough for one 2 ms step
            dx, dy = (vx * math.cos(mid) - vy * math.sin(mid)) * step, (vx * math.sin(mid) + vy * math.cos(mid)) * step
            pose = (x + dx, y + dy, math.remainder(yaw + wz * step, 2 * math.pi))
            self._stats.pose, self._stats.command = pose, (float(vx), float(vy), float(wz))
            self._stats.distance += math.hypot(dx, dy)
            return pose

    def stats(self) -> LocoStats:
        with self._lock:
            return LocoStats(**vars(self._stats))


@dataclass
class HandRecord:
    received: int = 0
    invalid: int = 0  # non-finite values, negative gains, or targets outside the Dex3 ranges
    q: list[float] = field(default_factory=list)  # newest targets (rad)
    kp: list[float] = field(default_factory=list)
    kd: list[float] = field(default_factory=list)
    mode: list[int] = field(default_factory=list)


class HandMonitor:
    """The newest Dex3 HandCmd_ per hand (listener threads), for /diagnostics and tests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._hands = {side: HandRecord() for side in ("left", "right")}

    def record(self, side: str, fields: dict[str, np.ndarray]) -> None:
        q, kp, kd = fields["q"], fields["kp"], fields["kd"]
        lo, hi = g1.DEX3_LOWER[side], g1.DEX3_UPPER[side]
        ok = (q.shape == (g1.DEX3_MOTORS,) and all(np.all(np.isfinite(a)) for a in (q, kp, kd))
              and np.all(kp >= 0) and np.all(kd >= 0) and np.all(q >= lo) and np.all(q <= hi))
        with self._lock:
            r = self._hands[side]
            r.received += 1
            r.invalid += int(not ok)
            r.q, r.kp, r.kd = q.tolist(), kp.tolist(), kd.tolist()
            r.mode = [int(m) for m in fields["mode"]]

    def snapshot(self) -> dict[str, HandRecord]:
        with self._lock:
            return {side: HandRecord(**vars(r)) for side, r in self._hands.items()}
