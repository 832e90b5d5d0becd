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

        self._mj = mujoco
        self.model = mujoco.MjModel.from_xml_path(str(g1_mjcf_path()))
        self.data = mujoco.MjData(self.model)
        joints = [self.model.joint(name) for name in g1.JOINT_NAMES]
        self.qpos = np.array([int(j.qposadr[0]) for j in joints])
        self.dof = np.array([int(j.dofadr[0]) for j in joints])
        self._bias = np.zeros(self.model.nv)

    def torques(self, q: np.ndarray) -> np.ndarray:
        """Only the stages the bias force needs: kinematics, com-based inertias and motion
        subspaces, velocities (zero), then recursive Newton-Euler without acceleration. The same
        ``qfrc_bias`` as mj_forward, which also ran collision detection and the constraint solver
        (16 -> 6 us per call here, and the bridge calls it every 2 ms cycle)."""
        mj, m, d = self._mj, self.model, self.data
        d.qpos[self.qpos] = q
        d.qvel[:] = 0.0
        mj.mj_kinematics(m, d)
        mj.mj_comPos(m, d)
        mj.mj_comVel(m, d)
        mj.mj_rne(m, d, 0, self._bias)
        return np.clip(self._bias[self.dof], -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)


def with_gravity(cmd, model: GravityModel, q: np.ndarray):
    """``cmd`` (a controller Command) with the gravity torque of the measured pose ``q`` added on the
    joints that are on and position-controlled (kp > 0); damping or disabled joints get none
    (a limp arm must not be pushed). The sum stays inside the torque limits."""
    active = np.asarray(cmd.motors_on, bool) & (np.asarray(cmd.kp) > 0)
    tau = np.clip(cmd.tau + np.where(active, model.torques(q), 0.0), -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)
    return dataclasses.replace(cmd, tau=tau)
