"""Hand poses of the source robots: forward kinematics, or a dataset's recorded poses.

The relative arm action is the hand displacement in its own frame, so any robot whose
joint angles we can turn into a hand pose supervises the G1's end-effector head. The G1
itself uses the MJCF kinematics of :mod:`neon_ros.runtime.kinematics`; the others are
serial chains in modified Denavit-Hartenberg form (Craig's convention):
``T_i = RotX(alpha) TransX(a) RotZ(theta) TransZ(d)``.

Franka Emika Panda: the manufacturer's published DH table (FCI documentation), flange
0.107 m past joint 7. SO-100 (SO-ARM100): a 5-joint chain (pan, lift, elbow, wrist flex,
wrist roll) with link lengths taken from the SO-ARM100 URDF, rounded to the millimetre.
Datasets that record the hand pose as position + quaternion go through ``quat_pose``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DHChain:
    """A serial arm: modified DH rows (a, d, alpha, theta_offset) and a fixed tool transform."""

    name: str
    rows: tuple[tuple[float, float, float, float], ...]
    tool: tuple[float, float, float]  # tool translation along the last frame (m)

    @property
    def dof(self) -> int:
        return len(self.rows)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 tool pose in the robot base frame for joint angles ``q`` (rad)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1] < self.dof:
            raise ValueError(f"{self.name} FK needs {self.dof} joints, got {q.shape[-1]}")
        t = np.eye(4)
        for (a, d, alpha, offset), theta in zip(self.rows, q[: self.dof], strict=True):
            t = t @ _mdh(a, d, alpha, theta + offset)
        tool = np.eye(4)
        tool[:3, 3] = self.tool
        return t @ tool


def _mdh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array([
        [ct, -st, 0.0, a],
        [st * ca, ct * ca, -sa, -d * sa],
        [st * sa, ct * sa, ca, d * ca],
        [0.0, 0.0, 0.0, 1.0],
    ])


HALF_PI = np.pi / 2
FRANKA = DHChain("franka", (
    (0.0, 0.333, 0.0, 0.0),
    (0.0, 0.0, -HALF_PI, 0.0),
    (0.0, 0.316, HALF_PI, 0.0),
    (0.0825, 0.0, HALF_PI, 0.0),
    (-0.0825, 0.384, -HALF_PI, 0.0),
    (0.0, 0.0, HALF_PI, 0.0),
    (0.088, 0.0, HALF_PI, 0.0),
), tool=(0.0, 0.0, 0.107))

SO100 = DHChain("so100", (
    (0.0, 0.0542, 0.0, 0.0),  # shoulder pan (yaw)
    (0.0304, 0.0, -HALF_PI, -HALF_PI),  # shoulder lift
    (0.116, 0.0, 0.0, HALF_PI),  # elbow flex
    (0.135, 0.0, 0.0, 0.0),  # wrist flex
    (0.0, 0.0, -HALF_PI, 0.0),  # wrist roll
), tool=(0.0, 0.0, 0.098))

# Embodiment name -> FK of one joint row (all joints of the robot, any extra are ignored).
ROBOT_FK: dict[str, DHChain] = {"franka": FRANKA, "so100": SO100}

# LeRobot ``robot_type`` strings -> embodiment names.
ROBOT_TYPE_ALIASES: dict[str, str] = {
    "so100": "so100", "so101": "so100", "so100_follower": "so100", "so101_follower": "so100",
    "koch": "so100", "franka": "franka", "panda": "franka", "fr3": "franka",
    "unitree_g1": "g1", "g1": "g1", "unitree_g1_29dof": "g1", "neon_shortarm": "shortarm",
}


def single_arm_fk(embodiment: str) -> Callable[[np.ndarray], np.ndarray]:
    """FK of a single-arm robot; the hand is reported as the RIGHT hand of the head."""
    try:
        chain = ROBOT_FK[embodiment]
    except KeyError:
        raise KeyError(f"no forward kinematics for {embodiment!r}; known: {sorted(ROBOT_FK)}") from None
    return chain.fk


def embodiment_for(robot_type: str | None, override: str | None = None) -> str:
    """The embodiment name for a dataset's robot type (``override`` wins)."""
    if override:
        return override
    key = (robot_type or "").lower()
    if key not in ROBOT_TYPE_ALIASES:
        raise KeyError(f"unknown robot_type {robot_type!r}; set `embodiment:` in the soup entry "
                       f"(known: {sorted(ROBOT_TYPE_ALIASES)})")
    return ROBOT_TYPE_ALIASES[key]


def quat_pose(xyz_quat: np.ndarray) -> np.ndarray:
    """(N, 7) x, y, z, qx, qy, qz, qw -> (N, 4, 4)."""
    p = np.asarray(xyz_quat, dtype=np.float64)
    x, y, z, w = (p[:, 3:7] / np.linalg.norm(p[:, 3:7], axis=1, keepdims=True)).T
    out = np.tile(np.eye(4), (len(p), 1, 1))
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = 2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)
    out[:, 2, 0], out[:, 2, 1], out[:, 2, 2] = 2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)
    out[:, :3, 3] = p[:, :3]
    return out


@functools.lru_cache(maxsize=1)
def g1_kinematics():
    """One G1 MuJoCo kinematics model per process (loading the MJCF takes ~0.1 s)."""
    from neon_ros.runtime.kinematics import G1Kinematics

    return G1Kinematics()


def g1_hand_poses(q: np.ndarray) -> np.ndarray:
    """(N, 29) G1 joints -> (N, 2, 4, 4) palm poses (left, right) in the pelvis frame (MJCF FK)."""
    kin = g1_kinematics()
    return np.stack([kin.hand_poses(row) for row in np.asarray(q, np.float64)])
