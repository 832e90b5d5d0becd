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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neon_ros import g1
from neon_ros.contract import CONTROL_DT

ARMS = ("left", "right")


def min_jerk(tau: np.ndarray | float) -> np.ndarray | float:
    """Minimum-jerk blend 0..1 (Flash & Hogan 1985) of normalised time tau in [0, 1]."""
    s = np.clip(tau, 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


@dataclass(frozen=True)
class Plan:
    """A planned motion: joint targets over time and what success means for it."""

    target: Callable[[float], np.ndarray]  # t (s) -> (29,) commanded joint positions
    goal_palms: np.ndarray | None  # (2, 3) palm goal positions (pelvis frame), None = not position-scored
    hands: tuple[bool, bool]  # which palms the goal scores


def _move(q0: np.ndarray, q1: np.ndarray, delay: float, duration: float) -> Callable[[float], np.ndarray]:
    return lambda t: q0 + (q1 - q0) * min_jerk((t - delay) / duration)


def _ik_goal(kin, q0: np.ndarray, arm: str, position: np.ndarray) -> np.ndarray:
    target = kin.hand_pose(q0, arm)
    target[:3, 3] = position
    return kin.solve_ik(q0, arm, target).q


def plan_task(name: str, q0: np.ndarray, kin, rng: np.random.Generator) -> Plan:
    """The expert's plan for task ``name`` from the start pose ``q0``."""
    delay, duration = rng.uniform(0.0, 0.1), rng.uniform(1.3, 1.7)
    left, right = list(g1.ARM_INDICES["left"]), list(g1.ARM_INDICES["right"])
    if name == "reach_cup":
        goal = _ik_goal(kin, q0, "left", np.array([0.28, 0.14, 0.06]) + rng.uniform(-0.02, 0.02, 3))
        return Plan(_move(q0, goal, delay, duration), kin.hand_poses(goal)[:, :3, 3], (True, False))
    if name == "point_cup":
        goal = _ik_goal(kin, q0, "right", np.array([0.30, -0.12, 0.12]) + rng.uniform(-0.02, 0.02, 3))
        return Plan(_move(q0, goal, delay, duration), kin.hand_poses(goal)[:, :3, 3], (False, True))
    if name == "raise_hands":
        goal = q0.copy()
        roll = rng.uniform(1.3, 1.5)  # sideways: forward would sweep the hands through the table
        goal[left[1]], goal[right[1]] = roll, -roll
        goal[[left[3], right[3]]] = rng.uniform(0.1, 0.3)
        return Plan(_move(q0, goal, delay, duration), kin.hand_poses(goal)[:, :3, 3], (True, True))
    if name == "wave_left":
        raised = q0.copy()
        raised[left[0]], raised[left[1]], raised[left[3]] = -1.8, 0.6, 1.0
        amp, freq, rise = rng.uniform(0.28, 0.36), rng.uniform(1.1, 1.3), rng.uniform(0.9, 1.0)
        up = _move(q0, raised, delay, rise)

        def wave(t: float) -> np.ndarray:
            q = up(t)
            phase = max(t - delay - rise, 0.0)
            q[left[1]] += amp * min(phase / 0.3, 1.0) * np.sin(2 * np.pi * freq * phase)
            return q

        return Plan(wave, None, (True, False))
    if name == "stand_still":
        return Plan(lambda t: q0.copy(), kin.hand_poses(q0)[:, :3, 3], (True, True))
    raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")


# task name -> instruction (what the operator says / types).
TASKS: dict[str, str] = {
    "reach_cup": "reach the red cup",
    "point_cup": "point at the red cup",
    "wave_left": "wave the left hand",
    "raise_hands": "raise both hands",
    "stand_still": "stand still",
}


def success(name: str, plan: Plan | None, palms: np.ndarray, tolerance: float = 0.07) -> bool:
    """Did palm trajectory ``palms`` (N, 2, 3), pelvis frame, accomplish task ``name``?

    Position tasks: the final palm(s) within ``tolerance`` of the expert's goal. Waving:
    the left palm above the shoulder line (z > 0.25 m) and swinging (lateral std > 2 cm)
    over the last 1.5 s. Standing still: both palms within 4 cm of where they started.
    """
    if name == "wave_left":
        tail = palms[-int(1.5 / CONTROL_DT):, 0]
        return bool(tail[:, 2].mean() > 0.25 and tail[:, 1].std() > 0.02)
    if name == "stand_still":
        return bool(np.linalg.norm(palms[-1] - palms[0], axis=-1).max() < 0.04)
    assert plan is not None and plan.goal_palms is not None
    err = np.linalg.norm(palms[-1] - plan.goal_palms, axis=-1)[list(plan.hands)]
    return bool(np.all(err < tolerance))


class ExpertController:
    """The G1's joint PD (default gains) plus gravity compensation from the model, as a motor
    driver with a model-based feed-forward would run it."""

    def __init__(self, sim):
        import mujoco

        self.sim = sim
        m = sim.model
        self.dof = np.array([m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]
                             for n in g1.JOINT_NAMES])

    def command(self, q_target: np.ndarray) -> None:
        q_target = np.clip(q_target, g1.LOWER_LIMITS, g1.UPPER_LIMITS)
        tau = np.clip(self.sim.data.qfrc_bias[self.dof], -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)
        self.sim.set_command(q_target, 0.0, g1.DEFAULT_KP, g1.DEFAULT_KD, tau)

    def run(self, q_target: np.ndarray, seconds: float) -> None:
        """Hold ``q_target`` for ``seconds``, re-computing the feed-forward every physics step."""
        for _ in range(max(1, int(round(seconds / self.sim.timestep)))):
            self.command(q_target)
            self.sim.step(1)


def palms_in_pelvis(sim) -> np.ndarray:
    """(2, 3) palm positions relative to the (fixed) pelvis."""
    base = sim.pelvis_position()
    return np.stack([sim.site_pose(g1.HAND_SITES[a])[0] - base for a in ARMS])


def start_pose(rng: np.random.Generator) -> np.ndarray:
    q0 = g1.STANDING_POSE.copy()
    arms = list(g1.ARM_INDICES["left"]) + list(g1.ARM_INDICES["right"])
    q0[arms] += rng.uniform(-0.08, 0.08, len(arms))
    return np.clip(q0, g1.LOWER_LIMITS, g1.UPPER_LIMITS)


def run_episode(sim, kin, task: str, rng: np.random.Generator, seconds: float, fps: int):
    """One demonstration: returns (frames, state, action, success)."""
    q0 = start_pose(rng)
    sim.reset(q0)
    ctl = ExpertController(sim)
    plan = plan_task(task, q0, kin, rng)
    per_frame = max(1, int(round(1.0 / (fps * CONTROL_DT))))
    frames, state, action, palms = [], [], [], []
    for i in range(int(round(seconds / CONTROL_DT))):
        q_cmd = plan.target(i * CONTROL_DT)
        if i % per_frame == 0:
            frames.append(sim.render())
            state.append(sim.q)
            action.append(q_cmd)
        palms.append(palms_in_pelvis(sim))
        ctl.run(q_cmd, CONTROL_DT)
    return np.stack(frames), np.stack(state), np.stack(action), success(task, plan, np.stack(palms))


def generate(out: Path, tasks: list[str], episodes_per_task: int, seconds: float = 3.0, fps: int = 10,
             camera_size: tuple[int, int] = (128, 128), seed: int = 0, progress: bool = True) -> dict:
    """Write ``episodes_per_task`` demonstrations of each task as a LeRobot v3 dataset at ``out``."""
    from tqdm import tqdm

    from neon_ros.sim.g1_sim import G1Sim  # first: it selects the off-screen GL before mujoco loads

    unknown = [t for t in tasks if t not in TASKS]
    if unknown or episodes_per_task < 1 or seconds < 1.0 or fps < 1:
        raise ValueError(f"generate: unknown tasks {unknown} (known {sorted(TASKS)}), or episodes_per_task < 1, "
                         "seconds < 1, fps < 1")
    rng = np.random.default_rng(seed)
    records, ok = [], dict.fromkeys(tasks, 0)
    order = [t for _ in range(episodes_per_task) for t in tasks]
    with G1Sim(fixed_base=True, camera_size=camera_size) as sim:
        from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
        from neon_ros.runtime.kinematics import G1Kinematics, IKConfig

        kin = G1Kinematics(ik=IKConfig(rotation_weight=0.02, max_iterations=300))
        for task in tqdm(order, desc="sim expert", unit="episode", disable=not progress):
            frames, state, action, good = run_episode(sim, kin, task, rng, seconds, fps)
            ok[task] += int(good)
            records.append(EpisodeRecord(frames, state, action, TASKS[task]))
    write_lerobot_v3(Path(out), records, fps=fps, robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES))
    return {t: ok[t] / episodes_per_task for t in tasks}
