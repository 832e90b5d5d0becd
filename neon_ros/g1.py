"""The Unitree G1 (29 DoF) joint table: the one source of truth every module imports.

Order is the SDK motor order (``LowCmd_.motor_cmd[i]``), which is also the order of the
hinge joints in the G1 MJCF. Position limits are the MJCF ``range`` attributes (checked
against the model by test/test_g1.py). Velocity and torque limits are the motor ratings
per actuator type (Unitree motor specs, as tabulated in mjlab's g1_constants.py); the
4-bar waist roll/pitch and ankle joints are driven by two 5020 motors each.
Default gains are those of Unitree's low-level example (DESIGN.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_JOINTS = 29
NUM_MOTORS_HG = 35  # unitree_hg LowCmd_.motor_cmd has 35 slots; the G1 uses the first 29
ARM_SDK_WEIGHT_INDEX = 29  # rt/arm_sdk: motor_cmd[29].q is the 0..1 blend weight


@dataclass(frozen=True)
class MotorType:
    """A G1 actuator family: rated velocity (rad/s), torque (N m), reflected inertia (kg m^2)."""

    name: str
    velocity_limit: float
    torque_limit: float
    rotor_inertia: tuple[float, float, float]
    gear_ratio: tuple[float, float, float]

    @property
    def armature(self) -> float:
        """Reflected inertia of a two-stage planetary gearbox at the joint."""
        r0, r1, r2 = self.rotor_inertia
        _, g1, g2 = self.gear_ratio
        return r0 * (g1 * g2) ** 2 + r1 * g2**2 + r2


M5020 = MotorType("5020", 37.0, 25.0, (0.139e-4, 0.017e-4, 0.169e-4), (1.0, 1 + 46 / 18, 1 + 56 / 16))
M7520_14 = MotorType("7520-14", 32.0, 88.0, (0.489e-4, 0.098e-4, 0.533e-4), (1.0, 4.5, 1 + 48 / 22))
M7520_22 = MotorType("7520-22", 20.0, 139.0, (0.489e-4, 0.109e-4, 0.738e-4), (1.0, 4.5, 5.0))
M4010 = MotorType("4010", 22.0, 5.0, (0.068e-4, 0.0, 0.0), (1.0, 5.0, 5.0))
# Two 5020s through a 4-bar linkage (waist roll/pitch, ankles): twice the torque and inertia.
M5020_PAIR = MotorType("2x5020", 37.0, 50.0, (2 * 0.139e-4, 2 * 0.017e-4, 2 * 0.169e-4), M5020.gear_ratio)


@dataclass(frozen=True)
class Joint:
    """One G1 joint: SDK index, MJCF name, body group, limits and default gains."""

    index: int
    name: str
    group: str  # "left_leg" | "right_leg" | "waist" | "left_arm" | "right_arm"
    lower: float  # rad, MJCF range
    upper: float  # rad, MJCF range
    motor: MotorType
    kp: float  # N m / rad (Unitree low-level example)
    kd: float  # N m s / rad
    standing: float  # rad, default standing pose

    @property
    def velocity_limit(self) -> float:
        return self.motor.velocity_limit

    @property
    def torque_limit(self) -> float:
        return self.motor.torque_limit


def _leg(side: str, base: int, roll_range: tuple[float, float]) -> list[Joint]:
    return [
        Joint(base + 0, f"{side}_hip_pitch_joint", f"{side}_leg", -2.5307, 2.8798, M7520_14, 60, 1, -0.1),
        Joint(base + 1, f"{side}_hip_roll_joint", f"{side}_leg", *roll_range, M7520_22, 60, 1, 0.0),
        Joint(base + 2, f"{side}_hip_yaw_joint", f"{side}_leg", -2.7576, 2.7576, M7520_14, 60, 1, 0.0),
        Joint(base + 3, f"{side}_knee_joint", f"{side}_leg", -0.087267, 2.8798, M7520_22, 100, 2, 0.3),
        Joint(base + 4, f"{side}_ankle_pitch_joint", f"{side}_leg", -0.87267, 0.5236, M5020_PAIR, 40, 1, -0.2),
        Joint(base + 5, f"{side}_ankle_roll_joint", f"{side}_leg", -0.2618, 0.2618, M5020_PAIR, 40, 1, 0.0),
    ]


def _arm(side: str, base: int, roll_range: tuple[float, float], roll_pose: float) -> list[Joint]:
    return [
        Joint(base + 0, f"{side}_shoulder_pitch_joint", f"{side}_arm", -3.0892, 2.6704, M5020, 40, 1, 0.2),
        Joint(base + 1, f"{side}_shoulder_roll_joint", f"{side}_arm", *roll_range, M5020, 40, 1, roll_pose),
        Joint(base + 2, f"{side}_shoulder_yaw_joint", f"{side}_arm", -2.618, 2.618, M5020, 40, 1, 0.0),
        Joint(base + 3, f"{side}_elbow_joint", f"{side}_arm", -1.0472, 2.0944, M5020, 40, 1, 1.28),
        Joint(base + 4, f"{side}_wrist_roll_joint", f"{side}_arm", -1.97222, 1.97222, M5020, 40, 1, 0.0),
        Joint(base + 5, f"{side}_wrist_pitch_joint", f"{side}_arm", -1.61443, 1.61443, M4010, 40, 1, 0.0),
        Joint(base + 6, f"{side}_wrist_yaw_joint", f"{side}_arm", -1.61443, 1.61443, M4010, 40, 1, 0.0),
    ]


JOINTS: tuple[Joint, ...] = tuple(
    _leg("left", 0, (-0.5236, 2.9671))
    + _leg("right", 6, (-2.9671, 0.5236))
    + [
        Joint(12, "waist_yaw_joint", "waist", -2.618, 2.618, M7520_14, 60, 1, 0.0),
        Joint(13, "waist_roll_joint", "waist", -0.52, 0.52, M5020_PAIR, 40, 1, 0.0),
        Joint(14, "waist_pitch_joint", "waist", -0.52, 0.52, M5020_PAIR, 40, 1, 0.0),
    ]
    + _arm("left", 15, (-1.5882, 2.2515), 0.2)
    + _arm("right", 22, (-2.2515, 1.5882), -0.2)
)

JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in JOINTS)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
GROUPS: dict[str, tuple[int, ...]] = {
    g: tuple(j.index for j in JOINTS if j.group == g)
    for g in ("left_leg", "right_leg", "waist", "left_arm", "right_arm")
}
LEG_INDICES: tuple[int, ...] = GROUPS["left_leg"] + GROUPS["right_leg"]
UPPER_BODY_INDICES: tuple[int, ...] = GROUPS["waist"] + GROUPS["left_arm"] + GROUPS["right_arm"]
ARM_INDICES: dict[str, tuple[int, ...]] = {"left": GROUPS["left_arm"], "right": GROUPS["right_arm"]}

LOWER_LIMITS = np.array([j.lower for j in JOINTS], dtype=np.float64)
UPPER_LIMITS = np.array([j.upper for j in JOINTS], dtype=np.float64)
VELOCITY_LIMITS = np.array([j.velocity_limit for j in JOINTS], dtype=np.float64)
TORQUE_LIMITS = np.array([j.torque_limit for j in JOINTS], dtype=np.float64)
ARMATURE = np.array([j.motor.armature for j in JOINTS], dtype=np.float64)
DEFAULT_KP = np.array([j.kp for j in JOINTS], dtype=np.float64)
DEFAULT_KD = np.array([j.kd for j in JOINTS], dtype=np.float64)
STANDING_POSE = np.array([j.standing for j in JOINTS], dtype=np.float64)
PELVIS_STANDING_HEIGHT = 0.783675  # m, pelvis height of the standing pose (mjlab HOME keyframe)

# MJCF sites at the palms: the end-effector frames of the relative arm actions.
HAND_SITES: dict[str, str] = {"left": "left_palm", "right": "right_palm"}
IMU_SITE = "imu_in_pelvis"
# The bodies past each shoulder's roll joint (their offsets make up the arm's length in the MJCF);
# scaling them and the palm site gives an arm of another geometry on the same joints.
ARM_LENGTH_BODIES: dict[str, tuple[str, ...]] = {
    arm: tuple(f"{arm}_{link}_link" for link in ("shoulder_yaw", "elbow", "wrist_roll", "wrist_pitch", "wrist_yaw"))
    for arm in HAND_SITES}


def stretch_arms(spec, scale: float) -> None:
    """Make both arms of a G1 ``mujoco.MjSpec`` ``scale`` times as long: every offset from the
    shoulder roll joint to the palm site (the meshes keep their size), so the palm's position in
    that joint's frame scales by exactly ``scale`` in every pose. A robot of another arm geometry
    on the same joints, for cross-embodiment experiments in simulation."""
    if not 0.5 <= scale <= 2.0:
        raise ValueError(f"arm scale must be in [0.5, 2], got {scale}")
    for arm, bodies in ARM_LENGTH_BODIES.items():
        for name in bodies:
            body = spec.body(name)
            body.pos = [float(v) * scale for v in body.pos]
        site = spec.site(HAND_SITES[arm])
        site.pos = [float(v) * scale for v in site.pos]


def joint(name: str) -> Joint:
    """The joint called ``name``; a KeyError lists the valid names."""
    try:
        return JOINTS[JOINT_INDEX[name]]
    except KeyError:
        raise KeyError(f"unknown G1 joint {name!r}; valid names: {', '.join(JOINT_NAMES)}") from None


# Dex3-1 hands (an option of the G1; none in the simulated model): 7 motors per hand, the
# unitree_hg HandCmd_ motor_cmd[0..6] in motor order (thumb 0-2, then two per finger), position
# ranges in rad as in Unitree's G1 Dex3 example. The open hand is all zeros (inside every range);
# closing bends the thumb's third motor and the fingers towards the range end away from zero
# (DEX3_CLOSED); joints 0-1 (thumb rotation) stay at zero.
DEX3_MOTORS = 7
DEX3_LOWER: dict[str, np.ndarray] = {"left": np.array([-1.05, -0.724, 0.0, -1.57, -1.75, -1.57, -1.75]),
                                     "right": np.array([-1.05, -1.05, -1.75, 0.0, 0.0, 0.0, 0.0])}
DEX3_UPPER: dict[str, np.ndarray] = {"left": np.array([1.05, 1.05, 1.75, 0.0, 0.0, 0.0, 0.0]),
                                     "right": np.array([1.05, 0.742, 0.0, 1.57, 1.75, 1.57, 1.75])}
_BENDS = np.array([False, False, True, True, True, True, True])
DEX3_CLOSED: dict[str, np.ndarray] = {
    side: np.where(_BENDS, np.where(np.abs(DEX3_LOWER[side]) > np.abs(DEX3_UPPER[side]),
                                    DEX3_LOWER[side], DEX3_UPPER[side]), 0.0)
    for side in ("left", "right")}


def dex3_pose(side: str, closure: float) -> np.ndarray:
    """The 7 motor positions of hand ``side`` at ``closure`` (0 open .. 1 closed), unclamped."""
    return float(closure) * DEX3_CLOSED[side]
