"""What the G1's firmware does with DDS messages, as plain Python (no channels, no rclpy).

- ``LowCmdInbox``: accepts hg LowCmd_ samples (rt/lowcmd, or rt/arm_sdk with its blend
  weight) the way the robot does: a sample whose CRC is wrong is dropped and counted; the
  newest good one wins, and stays in force however old it gets (the robot keeps the last
  command, and the last arm_sdk weight). The simulator also refuses (and counts) good-CRC
  samples with non-finite values or negative gains, which would make the physics
  meaningless; a real motor's behaviour there is undefined.
- ``MotionService``: Unitree's motion service (the locomotion/balance controller) and its
  MotionSwitcher state, as the simulator models them; ``blend_arm_sdk``: how it blends
  rt/arm_sdk into the upper body by the weight in motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q.
- ``fill_lowstate``: writes the simulated state into an hg LowState_ and sets its CRC.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neon_ros import g1, hg_wire, unitree

# mode_machine the G1 29-DoF reports in LowState_ (the bridge copies it into LowCmd_).
G1_29DOF_MODE_MACHINE = 5
FIELDS = ("q", "dq", "kp", "kd", "tau")  # the per-motor command fields, as LowCmd_ names them
MOTION_FORM = "0"  # the "form" MotionSwitcher's CheckMode reports next to the mode name
MAX_MODE_NAME = 32  # characters of a motion mode name the simulated MotionSwitcher accepts
_UPPER_BODY = np.isin(np.arange(g1.NUM_JOINTS), g1.UPPER_BODY_INDICES)


@dataclass(frozen=True)
class MotorCommand:
    """One accepted LowCmd_, as arrays in motor order; enabled = motor_cmd[i].mode != 0.

    weight: the rt/arm_sdk blend weight, clip(motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q, 0, 1)
    (0 for rt/lowcmd; in a blended command, the weight it was blended with).
    """

    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray
    enabled: np.ndarray
    mode_machine: int
    weight: float = 0.0
    received: float = field(default_factory=time.monotonic)  # monotonic seconds

    @classmethod
    def damping(cls, kd: np.ndarray = g1.DEFAULT_KD) -> MotorCommand:
        """The robot's damping mode: kp = 0, kd > 0, no feed-forward (what it does before any command)."""
        z = np.zeros(g1.NUM_JOINTS)
        return cls(z, z, z, np.asarray(kd, dtype=np.float64).copy(), z,
                   np.ones(g1.NUM_JOINTS, dtype=bool), G1_29DOF_MODE_MACHINE)

    @classmethod
    def hold(cls, q: np.ndarray = g1.STANDING_POSE, kp: np.ndarray = g1.DEFAULT_KP,
             kd: np.ndarray = g1.DEFAULT_KD) -> MotorCommand:
        """Every motor on, holding ``q`` with gains kp, kd (default: the standing pose, default gains)."""
        z = np.zeros(g1.NUM_JOINTS)
        q, kp, kd = (np.asarray(v, dtype=np.float64).copy() for v in (q, kp, kd))
        return cls(q, z, kp, kd, z, np.ones(g1.NUM_JOINTS, dtype=bool), G1_29DOF_MODE_MACHINE)


@dataclass
class InboxCounts:
    received: int = 0  # samples seen on rt/lowcmd
    accepted: int = 0  # good CRC and valid values
    bad_crc: int = 0  # dropped: CRC mismatch (as the robot does)
    invalid: int = 0  # dropped: non-finite values or negative gains
    mode_machine_mismatch: int = 0  # accepted, but mode_machine differs from ours (logged, as a hint)


class LowCmdInbox:
    """Thread-safe holder of the newest accepted LowCmd_ (fed with each sample's bytes).

    arm_sdk: the samples come from rt/arm_sdk: the blend weight is read (a non-finite one
    makes the sample invalid) and mode_machine is not compared (Unitree's own arm_sdk
    example leaves it 0).
    """

    def __init__(self, mode_machine: int = G1_29DOF_MODE_MACHINE, arm_sdk: bool = False):
        self.mode_machine = int(mode_machine)
        self.arm_sdk = arm_sdk
        self.counts = InboxCounts()
        self._lock = threading.Lock()
        self._newest: MotorCommand | None = None
        self._fresh = False
        self._decode = hg_wire.LowCmdDecoder()

    def offer(self, msg: Any) -> bool:
        """Check and store one hg LowCmd_ (its bytes, or an SDK message); True if accepted."""
        ok, c = self._decode(msg if isinstance(msg, bytes | bytearray) else msg.serialize())
        weight = c["weight"] if self.arm_sdk else 0.0
        with self._lock:
            self.counts.received += 1
            if not ok:
                self.counts.bad_crc += 1
                return False
            values = np.concatenate([c[f] for f in FIELDS] + [[weight]])
            if not np.all(np.isfinite(values)) or np.any(c["kp"] < 0) or np.any(c["kd"] < 0):
                self.counts.invalid += 1
                return False
            if not self.arm_sdk and c["mode_machine"] != self.mode_machine:
                self.counts.mode_machine_mismatch += 1
            self.counts.accepted += 1
            self._newest = MotorCommand(*(c[f] for f in FIELDS), c["mode"] != 0, c["mode_machine"],
                                        weight=float(np.clip(weight, 0.0, 1.0)))
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


def blend_arm_sdk(service: MotorCommand, arm: MotorCommand | None) -> MotorCommand:
    """The motion service's command with an rt/arm_sdk command blended into the upper body.

    Legs keep the service's command. On the waist and arms (g1.UPPER_BODY_INDICES) every field
    is (1 - w) * service + w * arm_sdk, w = ``arm.weight``: weight 0 leaves the upper body to the
    service, weight 1 gives it to arm_sdk, gains included (kp = 0 at weight 1 is a limp waist).
    The service keeps the motors powered (Unitree's arm_sdk example never sets a motor's mode).
    """
    if arm is None or arm.weight == 0.0:
        return service
    w = arm.weight
    mixed = {f: np.where(_UPPER_BODY, (1.0 - w) * getattr(service, f) + w * getattr(arm, f), getattr(service, f))
             for f in FIELDS}
    return MotorCommand(**mixed, enabled=service.enabled.copy(), mode_machine=service.mode_machine, weight=w)


class MotionService:
    """Unitree's motion service as the simulator models it, with its MotionSwitcher state.

    ``mode`` names the active motion mode ("" = released). While one is active the service
    commands all 29 motors with ``command``: the pelvis of the simulated G1 is pinned, so there
    is no balance to keep and it holds the standing pose with the default gains; rt/arm_sdk is
    blended into its upper body (``blend_arm_sdk``), and rt/lowcmd does not reach the motors
    (on a robot the two would fight over them). Released, the motors are rt/lowcmd's (in
    damping until the first one). ``check``, ``select`` and ``release`` are the MotionSwitcher
    calls CheckMode, SelectMode and ReleaseMode; thread-safe.
    """

    def __init__(self, mode: str = "", command: MotorCommand | None = None):
        self.command = command or MotorCommand.hold()
        self._lock = threading.Lock()
        self._mode = ""
        if mode:
            self.select(mode)

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    @property
    def active(self) -> bool:
        return bool(self.mode)

    def check(self) -> dict[str, str]:
        """CheckMode's answer: {"form": ..., "name": the active mode, "" if released}."""
        return {"form": MOTION_FORM, "name": self.mode}

    def select(self, name: str) -> None:
        """Start motion mode ``name`` (ValueError if it is empty, too long or not printable)."""
        if not name or len(name) > MAX_MODE_NAME or not name.isprintable():
            raise ValueError(f"a motion mode name is 1-{MAX_MODE_NAME} printable characters, got {name!r}")
        with self._lock:
            self._mode = name

    def release(self) -> None:
        with self._lock:
            self._mode = ""


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
