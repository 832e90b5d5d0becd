"""Gravity feed-forward for the G1's joints from its MuJoCo model (no rclpy, no torch).

With position control alone (kp 40 on the arms) an outstretched arm sags by ~0.1 rad under
its own weight, so a policy's targets are not where the arm ends up. Adding the joint
torques that hold the measured pose against gravity (MuJoCo's bias force at zero
velocity, ``qfrc_bias``) as ``tau`` removes the sag, as a model-based motor driver does.
At zero velocity the generalised gravity force on each hinge does not depend on whether
the pelvis is free or pinned, so the same model serves the gantry and the floor.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neon_ros import g1
from neon_ros.sim.assets import g1_mjcf_path


class GravityModel:
    """``torques(q)`` -> (29,) N m holding the pose ``q`` (G1 motor order) against gravity."""

    def __init__(self) -> None:
        import mujoco  # only where the feed-forward is used

        self._forward = mujoco.mj_forward
        self.model = mujoco.MjModel.from_xml_path(str(g1_mjcf_path()))
        self.data = mujoco.MjData(self.model)
        joints = [self.model.joint(name) for name in g1.JOINT_NAMES]
        self.qpos = np.array([int(j.qposadr[0]) for j in joints])
        self.dof = np.array([int(j.dofadr[0]) for j in joints])

    def torques(self, q: np.ndarray) -> np.ndarray:
        self.data.qpos[self.qpos] = q
        self.data.qvel[:] = 0.0
        self._forward(self.model, self.data)
        return np.clip(self.data.qfrc_bias[self.dof], -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)


def with_gravity(cmd, model: GravityModel, q: np.ndarray):
    """``cmd`` (a controller Command) with the gravity torque of the measured pose ``q`` added on the
    joints that are on and position-controlled (kp > 0); damping or disabled joints get none
    (a limp arm must not be pushed). The sum stays inside the torque limits."""
    active = np.asarray(cmd.motors_on, bool) & (np.asarray(cmd.kp) > 0)
    tau = np.clip(cmd.tau + np.where(active, model.torques(q), 0.0), -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)
    return dataclasses.replace(cmd, tau=tau)
