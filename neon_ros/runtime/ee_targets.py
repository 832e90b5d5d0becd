"""The head's gripper-frame output as arm joint targets: predicted hand displacements -> IK -> chunk.

The head predicts, besides the joint deltas, each hand's displacement ``ee`` (16, 2, 9): for step
k, T_rel[k] = T_anchor^-1 @ T_future[k] in the gripper's frame at the anchor (the current joint
state q; ``policy.actions``, labels in ``data.episode.chunk_targets``). That is the output other
robots' demonstrations teach. Here step k's palm target is FK(q) @ T_rel[k]; the damped
least-squares IK of ``runtime.kinematics`` solves each arm's 7 joints at the knot steps (default:
every step), each started from the joint_delta chunk's posture at that step: the hand goes where
``ee`` says, the arm keeps the posture the joint deltas give it. (Warm-started from the previous
solution instead, the 7-joint arm drifted in its null space, away from every posture the head
was trained on, and the demo head's replace mode reached the cup in 0 of 10 episodes; seeded,
in 9 of 10.) Steps between knots (if fewer) are interpolated in joint space. The arm columns of
the chunk become (1 - weight) x the joint_delta targets + weight x the IK targets (weight 1: replaced); legs and waist keep
joint_delta's. A step whose displacement is not a finite rigid transform keeps the joint_delta
targets for that arm; a knot whose IK ends farther than the acceptance tolerance from its target
(unreachable) does too, and so do the arm's later steps (they lie beyond it; no more solves, which
bounds the cost). Each such (step, arm) is counted. The result goes through
``runtime.head.safe_chunk``, the one clamp, like every chunk.

Cost per chunk (this machine, quiet, median, one arm's targets 2 cm off its joint-delta posture):
every step 10.2 ms, knots=6 4.0 ms, knots=4 3.1 ms. (Warm-started from the previous knot the solves
were cheaper, 4.6 / 1.9 / 1.4 ms, and drifted; with 6 knots the palm stayed within 1.1 mm median,
5 mm worst, of the per-step targets on smooth motion, with 4 knots 2.3 / 13 mm.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, g1
from neon_ros.policy import actions
from neon_ros.policy.embodiment import ARMS
from neon_ros.policy.schema import EE_FRAMES
from neon_ros.runtime.head import safe_chunk
from neon_ros.runtime.kinematics import G1Kinematics, IKConfig, IKResult


@dataclass(frozen=True)
class EEConfig:
    """weight: share of the IK targets in the arm joints (1 = replace joint_delta's).
    knots: steps solved by IK, evenly spaced from step 0 to the last (default: all; fewer for a
    slower computer, the rest interpolated).
    ik: the solver's settings; few iterations keep a 20 Hz control step's cost bounded.
    accept_position (m), accept_rotation (rad): an IK result farther from its target falls back.
    frame: what ``ee`` holds: "hand" displacements T_rel (target FK(q) T_rel, relative actions) or
    "base" poses in the pelvis frame (target = the pose itself, a head trained on absolute actions)."""

    weight: float = 1.0
    knots: int = contract.CHUNK_STEPS
    ik: IKConfig = field(default_factory=lambda: IKConfig(max_iterations=20, position_tolerance=1e-3,
                                                          rotation_tolerance=1e-2))
    accept_position: float = 0.01
    accept_rotation: float = 0.1
    frame: str = "hand"

    def __post_init__(self) -> None:
        if self.frame not in EE_FRAMES:
            raise ValueError(f"ee frame must be one of {EE_FRAMES}, got {self.frame!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"ee weight must be in [0, 1], got {self.weight}")
        if not 2 <= self.knots <= contract.CHUNK_STEPS:
            raise ValueError(f"ee knots must be in [2, {contract.CHUNK_STEPS}], got {self.knots}")
        if not self.accept_position > 0 or not self.accept_rotation > 0:
            raise ValueError("ee accept_position and accept_rotation must be > 0")


@dataclass
class EEChunk:
    targets: np.ndarray  # (16, 29) absolute targets after safe_chunk
    clamped: int  # entries safe_chunk clamped
    fallbacks: int  # (step, arm) pairs that kept the joint_delta targets
    ik_ok: np.ndarray  # (16, 2) bool: arm joints of that step came from IK


class EETargets:
    """Hand displacements (16, 2, 9) -> arm joint targets by IK, mixed into the joint_delta chunk."""

    def __init__(self, kinematics: G1Kinematics, config: EEConfig | None = None):
        self.kinematics = kinematics
        self.config = config or EEConfig()
        self.knots = np.unique(np.linspace(0, contract.CHUNK_STEPS - 1, self.config.knots).round().astype(int))

    def _accepted(self, res: IKResult) -> bool:
        cfg = self.config
        return bool(np.isfinite(res.q).all() and res.position_error <= cfg.accept_position
                    and (cfg.ik.rotation_weight == 0 or res.rotation_error <= cfg.accept_rotation))

    def ik_targets(self, q: np.ndarray, ee: np.ndarray, postures: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """q (29,), ee (16, 2, 9) -> joint targets (16, 29) with the arms solved (other joints = q)
        and ok (16, 2): that step's arm came from IK (False: displacement invalid or IK failed).
        ``postures`` (16, 29): where each step's solve starts (default: q)."""
        q = np.asarray(q, dtype=np.float64)
        ee = np.asarray(ee, dtype=np.float64)
        steps = contract.CHUNK_STEPS
        if ee.shape != (steps, len(ARMS), 9):
            raise ValueError(f"ee must be ({steps}, {len(ARMS)}, 9) pose9 displacements, got {ee.shape}")
        t_rel = actions.transform_from_pose9(ee)  # (16, 2, 4, 4); NaN where ee is
        rot = t_rel[..., :3, :3]
        finite = np.isfinite(t_rel).all(axis=(-2, -1))  # (16, 2)
        # A degenerate 6D rotation (e.g. zeros) gives no rotation matrix: det 0 instead of 1.
        valid = finite & (np.abs(np.linalg.det(np.where(finite[..., None, None], rot, 0.0)) - 1.0) < 1e-6)
        t_now = self.kinematics.hand_poses(q)  # (2, 4, 4) palms at the anchor
        out = np.repeat(q[None], steps, axis=0)  # (16, 29)
        postures = out if postures is None else np.clip(postures, g1.LOWER_LIMITS, g1.UPPER_LIMITS)
        ok = np.zeros((steps, len(ARMS)), dtype=bool)
        for a, arm in enumerate(ARMS):
            idx = list(g1.ARM_INDICES[arm])
            solved: dict[int, np.ndarray] = {}  # knot step -> arm joints (7,) of an accepted solve
            for k in self.knots:
                if not valid[k, a]:
                    continue
                target = t_rel[k, a] if self.config.frame == "base" else actions.apply_relative(t_now[a], t_rel[k, a])
                res = self.kinematics.solve_ik(postures[k], arm, target, self.config.ik)
                if not self._accepted(res):
                    break  # later knots lie beyond this one: this arm keeps joint_delta's from here on
                solved[int(k)] = res.q[idx]
            for k, arm_q in solved.items():
                out[k, idx] = arm_q
                ok[k, a] = True
            for k0, k1 in zip(self.knots[:-1], self.knots[1:], strict=True):
                if k0 in solved and k1 in solved:  # steps between two accepted knots: joint-space interpolation
                    s = (np.arange(k0 + 1, k1) - k0)[:, None] / (k1 - k0)  # (k1 - k0 - 1, 1)
                    out[k0 + 1:k1, idx] = (1.0 - s) * solved[k0] + s * solved[k1]
                    ok[k0 + 1:k1, a] = True
        return out, ok & valid

    def chunk(self, q: np.ndarray, joint_delta: np.ndarray, ee: np.ndarray, margin: float = 0.0) -> EEChunk:
        """Current positions q (29,), predicted joint_delta (16, 29) and ee (16, 2, 9) -> the chunk."""
        q = np.asarray(q, dtype=np.float64)
        delta = np.array(joint_delta, dtype=np.float64)  # (16, 29), a copy: the arm columns change
        ik, ok = self.ik_targets(q, ee, q + delta)
        w = self.config.weight
        for a, arm in enumerate(ARMS):
            idx = list(g1.ARM_INDICES[arm])
            # (1 - w) (q + delta) + w ik = q + (1 - w) delta + w (ik - q), on the steps IK solved
            mixed = (1.0 - w) * delta[:, idx] + w * (ik[:, idx] - q[idx])
            delta[:, idx] = np.where(ok[:, a, None], mixed, delta[:, idx])
        targets, clamped = safe_chunk(q, delta, margin)
        return EEChunk(targets, clamped, int(np.count_nonzero(~ok)), ok)
