"""What the bridge's controller hands to the wire each cycle, and what it measures.

``Command`` (one cycle's motor command), ``Measured`` (the latest LowState), the joints a mode
commands, and the damping command, which both the controller and the bridge watchdog send.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neon_ros import g1

MODES = ("lowcmd", "arm_sdk")
STATES = ("disabled", "active", "damping")


def commanded_mask(mode: str) -> np.ndarray:
    """Boolean mask of the joints a bridge mode commands: all 29 (lowcmd), waist + arms (arm_sdk)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    mask = np.zeros(g1.NUM_JOINTS, dtype=bool)
    mask[list(range(g1.NUM_JOINTS)) if mode == "lowcmd" else list(g1.UPPER_BODY_INDICES)] = True
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
    torque_limited: np.ndarray  # joints whose target was pulled toward the measured pose this cycle


@dataclass
class Measured:
    """The latest LowState as arrays, with its arrival time (ns, the bridge's monotonic clock).

    tau: tau_est per joint (None: unknown); stamp_ns: ROS time at arrival (message headers only).
    """

    q: np.ndarray
    dq: np.ndarray
    received_ns: int
    mode_machine: int = 0
    tau: np.ndarray | None = None
    stamp_ns: int = 0


def damping_command(mode: str, q: np.ndarray, damping_kd: float, weight: float = 0.0) -> Command:
    """Damping on the joints ``mode`` commands: kp = 0, kd = damping_kd, no feed-forward.

    ``q`` is only carried along (kp = 0 ignores it); it must lie inside the joint limits since the
    motors are on. In arm_sdk mode the blend ``weight`` is kept: damping goes through it. The
    controller sends this while damping; the bridge watchdog sends it when the bridge falls silent.
    """
    mask = commanded_mask(mode)
    zeros = np.zeros(g1.NUM_JOINTS)
    arm_sdk = mode == "arm_sdk"
    return Command(q=np.where(mask, q, 0.0) if arm_sdk else np.asarray(q, dtype=np.float64).copy(),
                   dq=zeros, kp=zeros.copy(), kd=np.where(mask, float(damping_kd), 0.0), tau=zeros.copy(),
                   motors_on=mask, weight=float(weight) if arm_sdk else 0.0, publish=True, state="damping",
                   source="none", torque_limited=np.zeros(g1.NUM_JOINTS, dtype=bool))
