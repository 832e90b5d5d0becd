"""One 50 ms control step of the action head, without rclpy: gate -> head -> chunk.

``HeadStep.step`` takes the newest features and joint state and returns either a chunk
(the runtime's absolute 16 x 29 targets, clamped inside the G1 limits by
``runtime.head.safe_chunk``) or a refusal saying why. The chunk carries the features' camera
stamp (so every node can tell how old what it acts on is) and its point times: point k is
meant for stamp + times[k]. ``time_base="now"`` (default): point 0 is meant for the
control step's time (times[k] = age + k x 50 ms), because the head is trained that way: each
label is the chunk from the joint state at its anchor, while the clip ends ``clip_lag`` s
earlier (the features' age on the robot). ``"camera"``: times[k] = k x 50 ms from the
camera stamp (the bridge skips the points already past), for heads trained with clip and
labels at the same instant. Measured with `neon-ros eval` (features 0.15 s old, the demo
recipe's head, 6 episodes per task): now 72% mean success (reach 100%), camera 50% (reach
17%). Hand paths (FK of the predicted targets) and the narration phase are computed here
too, so the node only moves messages.

``ee_mode`` decides whether the head's gripper-frame output (each hand's predicted displacement
in its own frame, the part other robots' data teaches) moves the arms: "off" (default) the
chunk is the joint deltas' alone; "blend" the arm joints are (1 - ee_weight) x the joint_delta
targets + ee_weight x IK targets of the displaced hands; "replace" they are the IK targets
(``runtime.ee_targets``; a step whose displacement is bad or whose IK fails keeps joint_delta's,
counted in ``ee_fallbacks``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract
from neon_ros.runtime import gate as gate_mod
from neon_ros.runtime import narration


@dataclass
class StepResult:
    verdict: gate_mod.Verdict
    positions: np.ndarray | None = None  # (16, 29) absolute targets, None when refused
    stamp_ns: int = 0  # camera stamp of the features acted on
    times: np.ndarray | None = None  # (16,) s after stamp_ns each point is meant for (the time base)
    clamped: int = 0
    ee_fallbacks: int = 0  # (step, arm) pairs that kept the joint_delta targets (bad displacement or IK failed)
    prediction: object | None = None  # the HeadPrediction
    hand_paths: np.ndarray | None = None  # (16, 2, 3) when computed this step
    phase: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # s per stage


TIME_BASES = ("now", "camera")
EE_MODES = ("off", "blend", "replace")


class HeadStep:
    """Gate + HeadRuntime (+ optional hand FK and phase, + the hands' IK per ``ee_mode``);
    ``clamp_margin`` goes to its clamp. ``kinematics`` (a G1Kinematics) is needed unless ee_mode is off."""

    def __init__(self, runtime, gate_config: gate_mod.GateConfig, kinematics=None,
                 phase_config: narration.PhaseConfig | None = None, clamp_margin: float = 0.0,
                 time_base: str = "now", ee_mode: str = "off", ee_weight: float = 0.5):
        if time_base not in TIME_BASES:
            raise ValueError(f"time_base must be one of {TIME_BASES}, got {time_base!r}")
        if ee_mode not in EE_MODES:
            raise ValueError(f"ee_mode must be one of {EE_MODES}, got {ee_mode!r}")
        if not 0.0 <= ee_weight <= 1.0:
            raise ValueError(f"ee_weight must be in [0, 1], got {ee_weight}")
        if ee_mode != "off" and kinematics is None:
            raise ValueError(f"ee_mode {ee_mode!r} needs kinematics (a G1Kinematics) for the hands' IK")
        self.ee_mode = ee_mode
        self.ee = None
        if ee_mode != "off":
            from neon_ros.runtime.ee_targets import EEConfig, EETargets  # torch + mujoco: only when used

            self.ee = EETargets(kinematics, EEConfig(weight=1.0 if ee_mode == "replace" else ee_weight,
                                                     frame=getattr(runtime, "ee_frame", "hand")))
        self.time_base = time_base
        self.runtime = runtime
        self.gate = gate_mod.InputGate(gate_config)
        self.kinematics = kinematics
        self.phase_config = phase_config or narration.PhaseConfig()
        self.clamp_margin = float(clamp_margin)
        self.head_errors = 0
        self.last_head_error = ""
        self.chunks = 0
        self.clamped_total = 0
        self.ee_fallbacks_total = 0

    def hand_paths(self, targets: np.ndarray) -> np.ndarray | None:
        """(K, 29) joint targets -> (K, 2, 3) palm positions in the pelvis frame (FK), if available."""
        if self.kinematics is None:
            return None
        return np.stack([self.kinematics.hand_poses(q)[:, :3, 3] for q in targets])

    def step(self, features: gate_mod.Features | None, joints: gate_mod.JointInput | None, now_ns: int,
             with_paths: bool = False) -> StepResult:
        t0 = time.perf_counter()
        verdict = self.gate.check(features, joints, now_ns)
        if not verdict.ok:
            return StepResult(verdict, timings={"gate": time.perf_counter() - t0})
        t1 = time.perf_counter()
        try:
            pred = self.runtime.predict(features.vector, joints.q, joints.dq, self.clamp_margin)
            t_head = time.perf_counter()
            positions, clamped, fallbacks = pred.joint_targets, pred.clamped, 0
            if self.ee is not None:
                ee = self.ee.chunk(joints.q, pred.joint_delta, pred.ee, self.clamp_margin)
                positions, clamped, fallbacks = ee.targets, ee.clamped, ee.fallbacks
        except ValueError as exc:  # bad input or a ChunkError
            self.head_errors += 1
            self.last_head_error = str(exc)
            v = self.gate.refuse(gate_mod.Verdict(False, gate_mod.HEAD_ERROR, f"head refused: {exc}", verdict.age_s))
            return StepResult(v, timings={"gate": t1 - t0, "head": time.perf_counter() - t1})
        t2 = time.perf_counter()
        self.chunks += 1
        self.clamped_total += clamped
        self.ee_fallbacks_total += fallbacks
        start = max(now_ns - features.stamp_ns, 0) / 1e9 if self.time_base == "now" else 0.0
        res = StepResult(verdict, positions=positions, stamp_ns=features.stamp_ns,
                         times=start + np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT,
                         clamped=clamped, ee_fallbacks=fallbacks, prediction=pred,
                         timings={"gate": t1 - t0, "head": t_head - t1})
        if self.ee is not None:
            res.timings["ik"] = t2 - t_head
        if with_paths and self.kinematics is not None:
            res.hand_paths = self.hand_paths(positions)
            res.timings["fk"] = time.perf_counter() - t2
        res.phase = narration.classify(res.hand_paths, pred.grip, pred.loco, contract.CONTROL_DT, self.phase_config)
        return res
