"""Simulated G1 demonstrations: a scripted expert performs instructed tasks in ``G1Sim``.

Each task plans a joint-space motion from a randomised start (arm joints perturbed, timing
and amplitude varied), the G1's motors track it (the G1's PD gains plus gravity
compensation, as the firmware would), the head camera is rendered, and the episode is
written as a LeRobot v3.0 dataset (robot_type ``unitree_g1``, state = the 29 measured joint
positions, action = the commanded ones), read back by the ``lerobot`` adapter like any
other dataset. The same task table scores closed-loop evaluation (``success``).

Tasks: reach the red cup (left hand, IK to a pre-grasp point beside the cup), point at the
red cup (right hand, IK), wave the left hand, raise both hands, stand still.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neon_ros import g1
from neon_ros.contract import CHUNK_STEPS, CONTROL_DT
from neon_ros.sim.scene import CUP_POSITION

ARMS = ("left", "right")
# Palm goals with the cup where the scene puts it (pelvis frame, m); both follow the cup.
REACH_POINT = np.array([0.28, 0.14, 0.06])  # left palm beside the cup
POINT_POINT = np.array([0.30, -0.12, 0.12])  # right palm pointing at the cup
CUP_JITTER = 0.03  # m: each episode's cup stands uniformly within +-this (x and y) of CUP_POSITION
WAVE_HEIGHT = 0.25  # m above the pelvis: the left palm must wave above this (shoulder line)
GOAL_TOLERANCE = 0.07  # m: a reach or point succeeds with every palm it moves this close to its goal
STILL_DRIFT = 0.04  # m: stand_still succeeds while no palm has moved this far from where it started
SHORTARM_SCALE = 0.85  # the short-armed robot's arms are this long relative to the G1's (1.15 and 1.3 sweep the table)
SHORTARM_BASE = "right_shoulder_pitch_link"  # the frame its dataset records hand poses in
WAVE_STEPS = int(round(1.5 / CONTROL_DT))  # control steps at the end of an episode a wave is judged on


@dataclass(frozen=True)
class Plan:
    """What the expert is asked to do from a start pose: a joint goal and what success means.

    goal: (29,) joint positions to reach (for waving: the raised pose the wave swings around).
    goal_palms: (2, 3) palm goal positions (pelvis frame), None = not position-scored.
    hands: which palms the goal scores. wave: (joint index, amplitude rad) of a wave, or None.
    cup_position: where the episode's cup stands (world frame); the palm goals follow it.
    """

    goal: np.ndarray
    goal_palms: np.ndarray | None
    hands: tuple[bool, bool]
    wave: tuple[int, float] | None = None
    cup_position: np.ndarray = field(default_factory=lambda: np.array(CUP_POSITION))  # world frame (3,)


def _ik_goal(kin, q0: np.ndarray, arm: str, position: np.ndarray) -> np.ndarray:
    target = kin.hand_pose(q0, arm)
    target[:3, 3] = position
    return kin.solve_ik(q0, arm, target).q


def plan_task(name: str, q0: np.ndarray, kin, rng: np.random.Generator, cup_position=None) -> Plan:
    """The expert's goal for task ``name`` from the start pose ``q0``, the cup at
    ``cup_position`` (world frame; default: where the scene puts it)."""
    left, right = list(g1.ARM_INDICES["left"]), list(g1.ARM_INDICES["right"])
    cup = np.array(CUP_POSITION if cup_position is None else cup_position, dtype=np.float64)
    shift = cup - np.asarray(CUP_POSITION)  # the pelvis is fixed in the world: a world shift is a pelvis shift
    if name == "reach_cup":
        goal = _ik_goal(kin, q0, "left", REACH_POINT + shift)
        return Plan(goal, kin.hand_poses(goal)[:, :3, 3], (True, False), cup_position=cup)
    if name == "point_cup":
        goal = _ik_goal(kin, q0, "right", POINT_POINT + shift)
        return Plan(goal, kin.hand_poses(goal)[:, :3, 3], (False, True), cup_position=cup)
    if name == "raise_hands":
        goal = q0.copy()
        roll = rng.uniform(1.3, 1.5)  # sideways: forward would sweep the hands through the table
        goal[left[1]], goal[right[1]] = roll, -roll
        goal[[left[3], right[3]]] = rng.uniform(0.1, 0.3)
        return Plan(goal, kin.hand_poses(goal)[:, :3, 3], (True, True), cup_position=cup)
    if name == "wave_left":
        goal = q0.copy()
        goal[left[0]], goal[left[1]], goal[left[3]] = -1.8, 0.6, 1.0
        return Plan(goal, None, (True, False), wave=(left[1], float(rng.uniform(0.28, 0.36))), cup_position=cup)
    if name == "stand_still":
        return Plan(q0.copy(), kin.hand_poses(q0)[:, :3, 3], (True, True), cup_position=cup)
    raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")


class ExpertPolicy:
    """The scripted expert as a feedback policy: its chunk depends only on what the head sees.

    From the measured joints (and, while waving, the sign of the wave joint's velocity) it
    rolls 16 steps of 50 ms towards ``plan.goal``: each step closes ``gain`` of the remaining
    error, at most ``speed`` rad/s per joint (under the bridge's 1.5 rad/s limit). A wave
    swings its joint between goal +- amplitude at ``speed``, turning at the ends. No clock,
    no hidden delay: the label for a state is the same whenever the head meets that state,
    so re-planning every 50 ms from where the arm is follows the expert's motion.
    """

    def __init__(self, plan: Plan, speed: float = 1.4, gain: float = 0.2):
        self.plan, self.speed, self.gain = plan, float(speed), float(gain)

    def chunk(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        step_max = self.speed * CONTROL_DT
        x = np.asarray(q, dtype=np.float64).copy()
        out = np.empty((CHUNK_STEPS, g1.NUM_JOINTS))
        wave_dir = 0.0
        if self.plan.wave is not None:
            j, amp = self.plan.wave
            centre = self.plan.goal[j]
            wave_dir = 1.0 if dq[j] >= 0 else -1.0
            if x[j] >= centre + amp - 0.02:
                wave_dir = -1.0
            elif x[j] <= centre - amp + 0.02:
                wave_dir = 1.0
        for k in range(CHUNK_STEPS):
            step = np.clip((self.plan.goal - x) * self.gain, -step_max, step_max)
            if self.plan.wave is not None:
                j, amp = self.plan.wave
                if x[j] < self.plan.goal[j] - amp:  # out to the side first: a forward raise hits the table
                    step[j - 1] = 0.0  # shoulder pitch (the joint before roll) waits
                    step[j] = step_max
                else:
                    if abs(x[j] + wave_dir * step_max - self.plan.goal[j]) > amp:  # turn at the end of a swing
                        wave_dir = -wave_dir
                    step[j] = wave_dir * step_max
            x = x + step
            out[k] = x
        return np.clip(out, g1.LOWER_LIMITS, g1.UPPER_LIMITS)

    def act(self, now_ns: int, q: np.ndarray, dq: np.ndarray, features=None):
        return self.chunk(q, dq), now_ns, np.arange(CHUNK_STEPS) * CONTROL_DT


# task name -> instruction (what the operator says / types).
TASKS: dict[str, str] = {
    "reach_cup": "reach the red cup",
    "point_cup": "point at the red cup",
    "wave_left": "wave the left hand",
    "raise_hands": "raise both hands",
    "stand_still": "stand still",
}


def still_drift(palms: np.ndarray) -> float:
    """How far (m) the palm that moved most is from where it started: stand_still's test."""
    return float(np.linalg.norm(palms[-1] - palms[0], axis=-1).max())


def success(name: str, plan: Plan | None, palms: np.ndarray, tolerance: float = GOAL_TOLERANCE) -> bool:
    """Did palm trajectory ``palms`` (N, 2, 3), pelvis frame, accomplish task ``name``?

    Position tasks: the final palm(s) within ``tolerance`` of the expert's goal. Waving:
    the left palm above the shoulder line (z > 0.25 m) and swinging (lateral std > 2 cm)
    over the last 1.5 s. Standing still: both palms within 4 cm of where they started.
    """
    if name == "wave_left":
        tail = palms[-WAVE_STEPS:, 0]
        return bool(tail[:, 2].mean() > WAVE_HEIGHT and tail[:, 1].std() > 0.02)
    if name == "stand_still":
        return still_drift(palms) < STILL_DRIFT
    assert plan is not None and plan.goal_palms is not None
    err = np.linalg.norm(palms[-1] - plan.goal_palms, axis=-1)[list(plan.hands)]
    return bool(np.all(err < tolerance))


def first_success(name: str, plan: Plan | None, palms: np.ndarray, tolerance: float = GOAL_TOLERANCE) -> int | None:
    """Index of the first control step at which ``success`` held, or None."""
    return next((i for i in range(len(palms)) if success(name, plan, palms[: i + 1], tolerance)), None)


def start_pose(rng: np.random.Generator) -> np.ndarray:
    q0 = g1.STANDING_POSE.copy()
    arms = list(g1.ARM_INDICES["left"]) + list(g1.ARM_INDICES["right"])
    q0[arms] += rng.uniform(-0.08, 0.08, len(arms))
    return np.clip(q0, g1.LOWER_LIMITS, g1.UPPER_LIMITS)


def episode_setup(task: str, kin, rng: np.random.Generator) -> tuple[np.ndarray, Plan]:
    """A random start pose and cup placement (within CUP_JITTER), and the expert's plan for them."""
    q0 = start_pose(rng)
    cup = np.asarray(CUP_POSITION) + np.array([*rng.uniform(-CUP_JITTER, CUP_JITTER, 2), 0.0])
    return q0, plan_task(task, q0, kin, rng, cup)


class PerturbedExpert:
    """Noise injection while demonstrating (DART: Laskey et al., 2017): in every other ``hold``
    s segment (the ones between recover; none ending within the last ``settle`` s) the arms
    are driven towards the plan's goal displaced by a random offset (normal, ``scale`` rad
    per arm joint); ``labels`` records, per control step, the clean expert's chunk from the state
    actually reached. Trained on those labels, the head learns to come back from states
    the clean expert never visits, the states its own errors lead it to."""

    def __init__(self, plan: Plan, scale: float, rng: np.random.Generator, seconds: float,
                 hold: float = 0.5, settle: float = 2.0):
        self.clean = ExpertPolicy(plan)
        self.plan, self.scale, self.rng, self.hold = plan, float(scale), rng, float(hold)
        self.quiet_from = float(seconds) - float(settle)
        self.labels: list[np.ndarray] = []
        self._t0: int | None = None
        self._segment, self._driver = -1, self.clean

    @property
    def perturbing(self) -> bool:
        """Is a displaced goal driving the arms now?"""
        return self._driver is not self.clean

    def act(self, now_ns: int, q: np.ndarray, dq: np.ndarray, features=None):
        self._t0 = now_ns if self._t0 is None else self._t0
        t = (now_ns - self._t0) / 1e9
        segment = int(t // self.hold)
        if segment != self._segment:
            self._segment, self._driver = segment, self.clean
            if self.scale > 0 and (segment + 1) * self.hold <= self.quiet_from and segment % 2 == 1:
                goal = self.plan.goal.copy()
                arms = list(g1.ARM_INDICES["left"]) + list(g1.ARM_INDICES["right"])
                goal[arms] += self.rng.normal(0.0, self.scale, len(arms))
                goal = np.clip(goal, g1.LOWER_LIMITS, g1.UPPER_LIMITS)
                self._driver = ExpertPolicy(Plan(goal, self.plan.goal_palms, self.plan.hands, self.plan.wave))
        self.labels.append(self.clean.chunk(q, dq))
        return self._driver.chunk(q, dq), now_ns, np.arange(CHUNK_STEPS) * CONTROL_DT


def run_episode(sim, kin, task: str, rng: np.random.Generator, seconds: float, fps: int, perturb: float = 0.0):
    """One demonstration through the robot's control path (bridge controller, gravity
    feed-forward, rate limits): returns (frames, state, action, chunks, success) at ``fps``:
    action the joint targets the bridge commanded, chunks (N, 16, 29) the clean expert's
    chunk from each measured state (the labels). ``perturb`` > 0: DART noise of that many
    rad drives the arms (``PerturbedExpert``)."""
    from neon_ros.sim.deployment import LoopConfig, SimulatedDeployment

    q0, plan = episode_setup(task, kin, rng)
    expert = PerturbedExpert(plan, perturb, rng, seconds)
    ep = SimulatedDeployment(sim, LoopConfig(seconds=seconds, camera_fps=fps)).run(expert, q0,
                                                                                   cup_position=plan.cup_position)
    per_frame = max(1, int(round(1.0 / (fps * CONTROL_DT))))
    n = len(ep.frames)
    state = np.stack(ep.q[::per_frame][:n])
    action = np.stack(ep.commanded[::per_frame][:n])
    chunks = np.stack(expert.labels[::per_frame][:n])
    frames = np.stack([f for _, f in ep.frames[: len(state)]])
    return frames, state, action, chunks, success(task, plan, np.stack(ep.palms))


def shortarm_record(kin, frames: np.ndarray, state: np.ndarray, action: np.ndarray, task: str):
    """One episode of the short-armed robot as its own dataset would hold it: its right arm's 7
    joints and its right palm's pose in its shoulder frame (an arm's base, as a table-mounted
    arm's dataset records it); no chunks, no G1 joint labels."""
    import mujoco

    from neon_ros.data.lerobot_writer import EpisodeRecord

    arm = list(g1.ARM_INDICES["right"])
    poses = np.empty((len(state), 7))
    for i, q in enumerate(state):
        palm = np.linalg.inv(kin.body_pose(q, SHORTARM_BASE)) @ kin.hand_pose(q, "right")
        quat = np.empty(4)  # w, x, y, z
        mujoco.mju_mat2Quat(quat, palm[:3, :3].ravel())
        poses[i] = (*palm[:3, 3], *quat[1:], quat[0])
    return EpisodeRecord(frames, state[:, arm], action[:, arm], task, ee_pose=poses)


def generate(out: Path, tasks: list[str], episodes_per_task: int, seconds: float = 3.0, fps: int = 10,
             camera_size: tuple[int, int] = (128, 128), seed: int = 0, progress: bool = True,
             perturbed: float = 0.0, perturb_scale: float = 0.25, arm_scale: float = 1.0) -> dict:
    """Write ``episodes_per_task`` demonstrations of each task as a LeRobot v3 dataset at ``out``;
    a ``perturbed`` fraction of them (every k-th) with DART noise of ``perturb_scale`` rad.
    ``arm_scale`` != 1: the same demonstrations by a robot with arms that many times as long
    (another embodiment, ``shortarm``: ``shortarm_record``), for cross-embodiment experiments."""
    from tqdm import tqdm

    from neon_ros.sim.g1_sim import G1Sim  # first: it selects the off-screen GL before mujoco loads

    unknown = [t for t in tasks if t not in TASKS]
    if unknown or episodes_per_task < 1 or seconds < 1.0 or fps < 1 or not 0 <= perturbed <= 1 or perturb_scale < 0:
        raise ValueError(f"generate: unknown tasks {unknown} (known {sorted(TASKS)}), or episodes_per_task < 1, "
                         "seconds < 1, fps < 1, perturbed outside [0, 1], perturb_scale < 0")
    rng = np.random.default_rng(seed)
    records, ok = [], dict.fromkeys(tasks, 0)
    order = [t for _ in range(episodes_per_task) for t in tasks]
    with G1Sim(fixed_base=True, camera_size=camera_size, arm_scale=arm_scale) as sim:
        from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
        from neon_ros.runtime.kinematics import G1Kinematics, IKConfig

        kin = G1Kinematics(ik=IKConfig(rotation_weight=0.02, max_iterations=300), arm_scale=arm_scale)
        noisy = 0.0
        for task in tqdm(order, desc="sim expert", unit="episode", disable=not progress):
            noisy += perturbed  # spreads the perturbed episodes evenly over tasks and time
            scale = perturb_scale if noisy >= 1.0 else 0.0
            noisy -= float(noisy >= 1.0)
            frames, state, action, chunks, good = run_episode(sim, kin, task, rng, seconds, fps, scale)
            ok[task] += int(good)
            records.append(EpisodeRecord(frames, state, action, TASKS[task], action_chunk=chunks) if arm_scale == 1.0
                           else shortarm_record(kin, frames, state, action, TASKS[task]))
    # lossless: training must see the pixels the live camera gives (an AV1 round trip moved the
    # frozen encoder's features by ~3x the change between two consecutive frames)
    if arm_scale == 1.0:
        write_lerobot_v3(Path(out), records, fps=fps, robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES),
                         codec="libx264rgb")
    else:
        write_lerobot_v3(Path(out), records, fps=fps, robot_type="neon_shortarm",
                         state_names=[g1.JOINT_NAMES[i] for i in g1.ARM_INDICES["right"]], codec="libx264rgb")
    return {t: ok[t] / episodes_per_task for t in tasks}
