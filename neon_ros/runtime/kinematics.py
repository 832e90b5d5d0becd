"""G1 hand kinematics from the G1 MuJoCo model: forward kinematics and damped-least-squares IK.

Poses are 4x4 transforms of the palm sites (``g1.HAND_SITES``) relative to the pelvis
(the base is fixed at the origin, so pelvis frame = world frame). IK moves only one
arm's 7 joints, stays inside the G1 joint limits, and is used where a source supervises
only end-effector motion: a predicted displacement T_rel in the gripper's own current
frame becomes the target T_now @ T_rel, then arm joint targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from neon_ros import g1
from neon_ros.policy import actions
from neon_ros.policy.embodiment import ARMS
from neon_ros.sim.assets import g1_mjcf_path


@dataclass
class IKResult:
    q: np.ndarray  # (29,) joint positions with the arm solved, within limits
    position_error: float  # m, at the last iterate
    rotation_error: float  # rad, at the last iterate
    iterations: int
    converged: bool


@dataclass(frozen=True)
class IKConfig:
    """Damped least squares: dq = J^T (J J^T + lambda^2 I)^-1 e, iterated."""

    damping: float = 0.05  # lambda: trades accuracy for stability near singularities
    damping_fade: float = 0.05  # weighted error (m) below which lambda^2 shrinks in proportion to the error
    max_iterations: int = 200
    max_step: float = 0.2  # rad, largest joint change per iteration
    position_tolerance: float = 1e-4  # m
    rotation_tolerance: float = 1e-3  # rad
    rotation_weight: float = 0.5  # m per rad: how much orientation error counts (0 = position-only IK)

    def __post_init__(self) -> None:
        if not self.damping > 0 or not self.damping_fade > 0 or not self.max_step > 0 or self.max_iterations < 1:
            raise ValueError("IKConfig: damping, damping_fade and max_step must be > 0 and max_iterations >= 1")
        if not self.position_tolerance > 0 or not self.rotation_tolerance > 0 or not self.rotation_weight >= 0:
            raise ValueError("IKConfig: tolerances must be > 0 and rotation_weight >= 0")


class G1Kinematics:
    """Hand FK/IK on the real G1 model (MuJoCo), base fixed at the origin."""

    def __init__(self, mjcf_path=None, ik: IKConfig | None = None, arm_scale: float = 1.0):
        """``arm_scale``: both arms this many times as long (``g1.stretch_arms``; 1 = the G1)."""
        spec = mujoco.MjSpec.from_file(str(mjcf_path or g1_mjcf_path()))
        g1.stretch_arms(spec, arm_scale)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.ik_config = ik or IKConfig()
        jids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in g1.JOINT_NAMES]
        if min(jids) < 0:
            raise ValueError("the MJCF lacks some G1 joints of neon_ros.g1.JOINT_NAMES")
        self.qpos_adr = np.array([self.model.jnt_qposadr[j] for j in jids])
        self.dof_adr = np.array([self.model.jnt_dofadr[j] for j in jids])
        self.sites = {arm: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, g1.HAND_SITES[arm]) for arm in ARMS}
        self.base_qpos = np.zeros(7)
        self.base_qpos[3] = 1.0  # free joint at the origin, identity quaternion: pelvis = world

    def _set(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (g1.NUM_JOINTS,) or not np.isfinite(q).all():
            raise ValueError(f"G1Kinematics: q must be {g1.NUM_JOINTS} finite joint positions, got shape {q.shape}")
        self.data.qpos[:7] = self.base_qpos
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def _site_pose(self, arm: str) -> np.ndarray:
        sid = self.sites[arm]
        return actions.make_transform(self.data.site_xmat[sid].reshape(3, 3).copy(), self.data.site_xpos[sid].copy())

    def hand_pose(self, q: np.ndarray, arm: str) -> np.ndarray:
        """(4, 4) pose of one palm site relative to the pelvis."""
        self._set(q)
        return self._site_pose(arm)

    def body_pose(self, q: np.ndarray, body: str) -> np.ndarray:
        """(4, 4) pose of an MJCF body relative to the pelvis."""
        self._set(q)
        b = self.model.body(body)
        return actions.make_transform(self.data.xmat[b.id].reshape(3, 3).copy(), self.data.xpos[b.id].copy())

    def hand_poses(self, q: np.ndarray) -> np.ndarray:
        """(2, 4, 4) palm poses (left, right) relative to the pelvis."""
        self._set(q)
        return np.stack([self._site_pose(arm) for arm in ARMS])

    def arm_jacobian(self, q: np.ndarray, arm: str) -> np.ndarray:
        """(6, 7) [linear; angular] Jacobian of the palm site w.r.t. the arm's joints (pelvis frame)."""
        self._set(q)
        mujoco.mj_comPos(self.model, self.data)
        jacp = np.zeros((3, self.model.nv))
        jacr = np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, self.data, jacp, jacr, self.sites[arm])
        cols = self.dof_adr[list(g1.ARM_INDICES[arm])]
        return np.vstack([jacp[:, cols], jacr[:, cols]])

    @staticmethod
    def pose_error(current: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position error (3,) and rotation error as a rotation vector (3,), both in the pelvis frame."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, (target[:3, :3] @ current[:3, :3].T).ravel())
        rotvec = np.zeros(3)
        mujoco.mju_quat2Vel(rotvec, quat, 1.0)
        return target[:3, 3] - current[:3, 3], rotvec

    def solve_ik(self, q_start: np.ndarray, arm: str, target: np.ndarray, config: IKConfig | None = None) -> IKResult:
        """Arm joints that put the palm of ``arm`` at ``target`` (4, 4, pelvis frame), from q_start
        (``config``: this solve's IKConfig, default the instance's)."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4, 4) or not np.isfinite(target).all():
            raise ValueError("solve_ik: target must be a finite 4x4 transform")
        cfg = config or self.ik_config
        idx = list(g1.ARM_INDICES[arm])
        lo, hi = g1.LOWER_LIMITS[idx], g1.UPPER_LIMITS[idx]
        q = np.clip(np.asarray(q_start, dtype=np.float64).copy(), g1.LOWER_LIMITS, g1.UPPER_LIMITS)
        w = np.array([1.0] * 3 + [cfg.rotation_weight] * 3)
        e_pos, e_rot = np.full(3, np.inf), np.full(3, np.inf)
        for it in range(1, cfg.max_iterations + 1):
            jac = self.arm_jacobian(q, arm)
            e_pos, e_rot = self.pose_error(self._site_pose(arm), target)
            if self._within(cfg, e_pos, e_rot):
                return IKResult(q, float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot)), it - 1, True)
            jw = w[:, None] * jac
            err = w * np.concatenate([e_pos, e_rot])
            # Damping fades as the error shrinks (Levenberg-Marquardt style): stable far away, exact near the goal.
            lam2 = cfg.damping**2 * min(1.0, float(np.linalg.norm(err)) / cfg.damping_fade)
            dq = jw.T @ np.linalg.solve(jw @ jw.T + lam2 * np.eye(6), err)
            dq *= min(1.0, cfg.max_step / max(np.abs(dq).max(), 1e-12))
            q[idx] = np.clip(q[idx] + dq, lo, hi)
        e_pos, e_rot = self.pose_error(self.hand_pose(q, arm), target)
        return IKResult(q, float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot)), cfg.max_iterations,
                        self._within(cfg, e_pos, e_rot))

    @staticmethod
    def _within(cfg: IKConfig, e_pos: np.ndarray, e_rot: np.ndarray) -> bool:
        """Converged: position within tolerance, and orientation too unless rotation_weight is 0."""
        return bool(np.linalg.norm(e_pos) < cfg.position_tolerance
                    and (cfg.rotation_weight == 0 or np.linalg.norm(e_rot) < cfg.rotation_tolerance))

    def displacement_targets(self, q: np.ndarray, ee: np.ndarray, arms=(True, True)) -> np.ndarray:
        """Predicted end-effector displacements -> G1 joint targets (K, 29).

        ``ee`` is (K, 2, 9) pose9 or (K, 2, 4, 4) transforms, each T_rel in the gripper's frame at
        q. Step k targets T_now @ T_rel[k]; IK is warm-started from step k-1; joints of arms not
        selected in ``arms`` (and legs, waist) stay at q. Targets are within the G1 limits.
        """
        ee = np.asarray(ee, dtype=np.float64)
        t_rel = actions.transform_from_pose9(ee) if ee.shape[-1] == 9 else ee
        if t_rel.ndim != 4 or t_rel.shape[1:] != (len(ARMS), 4, 4):
            raise ValueError(f"displacement_targets: ee must be (K, 2, 9) or (K, 2, 4, 4), got {ee.shape}")
        q = np.asarray(q, dtype=np.float64)
        t_now = self.hand_poses(q)
        out = np.repeat(np.clip(q, g1.LOWER_LIMITS, g1.UPPER_LIMITS)[None], t_rel.shape[0], axis=0)
        for a, arm in enumerate(ARMS):
            if not arms[a]:
                continue
            idx = list(g1.ARM_INDICES[arm])
            q_prev = out[0].copy()
            for k in range(t_rel.shape[0]):
                res = self.solve_ik(q_prev, arm, actions.apply_relative(t_now[a], t_rel[k, a]))
                out[k, idx] = res.q[idx]
                q_prev = res.q
        return out
