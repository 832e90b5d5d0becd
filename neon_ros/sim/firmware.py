"""What the G1's firmware does with DDS messages, as plain Python (no channels, no rclpy).

- ``LowCmdInbox``: accepts hg LowCmd_ samples the way the robot does: a sample whose CRC
  is wrong is dropped and counted; the newest good one wins. The simulator also refuses
  (and counts) good-CRC samples with non-finite values or negative gains, which would
  make the physics meaningless; a real motor's behaviour there is undefined.
- ``fill_lowstate``: writes the simulated state into an hg LowState_ and sets its CRC.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neon_ros import g1, unitree

# mode_machine the G1 29-DoF reports in LowState_ (the bridge copies it into LowCmd_).
G1_29DOF_MODE_MACHINE = 5


@dataclass(frozen=True)
class MotorCommand:
    """One accepted LowCmd_, as arrays in motor order; enabled = motor_cmd[i].mode != 0."""

    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray
    enabled: np.ndarray
    mode_machine: int
    received: float = field(default_factory=time.monotonic)  # monotonic seconds

    @classmethod
    def damping(cls, kd: np.ndarray = g1.DEFAULT_KD) -> MotorCommand:
        """The robot's damping mode: kp = 0, kd > 0, no feed-forward (what it does before any command)."""
        z = np.zeros(g1.NUM_JOINTS)
        return cls(z, z, z, np.asarray(kd, dtype=np.float64).copy(), z,
                   np.ones(g1.NUM_JOINTS, dtype=bool), G1_29DOF_MODE_MACHINE)


@dataclass
class InboxCounts:
    received: int = 0  # samples seen on rt/lowcmd
    accepted: int = 0  # good CRC and valid values
    bad_crc: int = 0  # dropped: CRC mismatch (as the robot does)
    invalid: int = 0  # dropped: non-finite values or negative gains
    mode_machine_mismatch: int = 0  # accepted, but mode_machine differs from ours (logged, as a hint)


class LowCmdInbox:
    """Thread-safe holder of the newest accepted LowCmd_ (fed by the DDS callback)."""

    def __init__(self, mode_machine: int = G1_29DOF_MODE_MACHINE):
        self.mode_machine = int(mode_machine)
        self.counts = InboxCounts()
        self._lock = threading.Lock()
        self._newest: MotorCommand | None = None
        self._fresh = False

    def offer(self, msg: Any) -> bool:
        """Check and store one hg LowCmd_; True if accepted."""
        ok = unitree.crc_ok(msg)
        arrays = unitree.lowcmd_arrays(msg) if ok else None
        with self._lock:
            self.counts.received += 1
            if not ok:
                self.counts.bad_crc += 1
                return False
            values = np.concatenate([arrays[f] for f in ("q", "dq", "kp", "kd", "tau")])
            if not np.all(np.isfinite(values)) or np.any(arrays["kp"] < 0) or np.any(arrays["kd"] < 0):
                self.counts.invalid += 1
                return False
            if int(msg.mode_machine) != self.mode_machine:
                self.counts.mode_machine_mismatch += 1
            self.counts.accepted += 1
            self._newest = MotorCommand(arrays["q"], arrays["dq"], arrays["kp"], arrays["kd"], arrays["tau"],
                                        arrays["mode"] != 0, int(msg.mode_machine))
            self._fresh = True
            return True

    def take(self) -> MotorCommand | None:
        """The newest accepted command if it arrived since the last take, else None."""
        with self._lock:
            if not self._fresh:
                return None
            self._fresh = False
            return self._newest

    def newest(self) -> MotorCommand | None:
        with self._lock:
            return self._newest

    def snapshot(self) -> InboxCounts:
        with self._lock:
            return InboxCounts(**vars(self.counts))


def fill_lowstate(msg: Any, q: np.ndarray, dq: np.ndarray, tau: np.ndarray, imu: dict[str, np.ndarray],
                  tick: int, mode_machine: int = G1_29DOF_MODE_MACHINE,
                  enabled: np.ndarray | None = None) -> Any:
    """Write 29 motor states and the IMU into an hg LowState_, set tick and CRC."""
    msg.mode_pr = 0
    msg.mode_machine = int(mode_machine)
    msg.tick = int(tick) & 0xFFFFFFFF
    ims = msg.imu_state
    ims.quaternion = [float(v) for v in imu["quaternion"]]
    ims.gyroscope = [float(v) for v in imu["gyroscope"]]
    ims.accelerometer = [float(v) for v in imu["accelerometer"]]
    ims.rpy = [float(v) for v in imu["rpy"]]
    ms = msg.motor_state
    for i in range(g1.NUM_JOINTS):
        m = ms[i]
        m.mode = 1 if enabled is None or enabled[i] else 0
        m.q = float(q[i])
        m.dq = float(dq[i])
        m.tau_est = float(tau[i])
    msg.crc = unitree.crc32(msg)
    return msg


def lowstate_arrays(msg: Any) -> dict[str, np.ndarray]:
    """The 29 motor states and the IMU of an hg LowState_ as arrays (for peers and checks)."""
    ms = msg.motor_state
    out = {f: np.array([getattr(ms[i], f) for i in range(g1.NUM_JOINTS)], dtype=np.float64)
           for f in ("q", "dq", "tau_est")}
    for f in ("quaternion", "gyroscope", "accelerometer", "rpy"):
        out[f] = np.array(getattr(msg.imu_state, f), dtype=np.float64)
    return out
