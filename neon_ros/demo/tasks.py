"""Demo tasks and how the report decides whether one was achieved (no rclpy).

The measure is physical, not the policy's opinion: hand positions come from forward
kinematics of the MEASURED joint angles (/joint_states, through the G1 MuJoCo model),
compared with the cup's place in the simulated scene (neon_ros.sim.scene). With the base
pinned (sim_g1 fixed_base), pelvis frame + (0, 0, standing height) = world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neon_ros import g1


@dataclass(frozen=True)
class DemoTask:
    """A task the demo can ask for.

    name: short name for --task.
    instruction: what the synthesised voice says (and speech_in should hear).
    success_distance: m; achieved when a palm gets this close to the cup centre (0 = no criterion).
    hand: which palm counts: "left", "right" or "either".
    """

    name: str
    instruction: str
    success_distance: float = 0.0
    hand: str = "either"

    def __post_init__(self) -> None:
        if self.hand not in ("left", "right", "either"):
            raise ValueError(f"hand must be left, right or either, got {self.hand!r}")
        if self.success_distance < 0:
            raise ValueError("success_distance must be >= 0")


TASKS: dict[str, DemoTask] = {
    t.name: t for t in (
        DemoTask("reach_cup", "pick up the red cup", success_distance=0.08),
        DemoTask("touch_cup", "touch the red cup", success_distance=0.08),
        DemoTask("wave", "wave hello"),
    )
}
DEFAULT_TASK = "reach_cup"


def resolve_task(text: str) -> DemoTask:
    """A task name of TASKS, or any instruction text (then with no success criterion)."""
    if text in TASKS:
        return TASKS[text]
    for task in TASKS.values():
        if text.strip().lower() == task.instruction:
            return task
    if not text.strip():
        raise ValueError(f"empty task; known tasks: {', '.join(TASKS)}")
    return DemoTask("custom", text.strip())


@dataclass
class TaskOutcome:
    achieved: bool | None  # None: the task has no success criterion
    min_distance: float  # m, closest palm-to-cup distance over the run
    min_time: float  # s, when it happened
    hand: str  # the palm that got closest
    summary: str
    times: np.ndarray  # (N,) s
    distances: np.ndarray  # (N, 2) left, right palm-to-cup distance, m


def cup_in_pelvis_frame() -> np.ndarray:
    from neon_ros.sim import scene

    return np.asarray(scene.CUP_POSITION) - np.array([0.0, 0.0, g1.PELVIS_STANDING_HEIGHT])


def palm_distances(q: np.ndarray, kinematics, cup: np.ndarray | None = None) -> np.ndarray:
    """(N, 29) measured joint angles -> (N, 2) left/right palm-to-cup distances, m."""
    cup = cup_in_pelvis_frame() if cup is None else cup
    out = np.empty((len(q), 2))
    for i, row in enumerate(q):
        poses = kinematics.hand_poses(row)
        out[i] = np.linalg.norm(poses[:, :3, 3] - cup, axis=1)
    return out


def evaluate(task: DemoTask, times: np.ndarray, q: np.ndarray, kinematics, max_points: int = 600) -> TaskOutcome:
    """Closest palm-to-cup approach over the measured motion, and the verdict."""
    if len(times) == 0:
        return TaskOutcome(False if task.success_distance else None, float("nan"), float("nan"), "-",
                           "no /joint_states were received: the robot was never observed",
                           np.zeros(0), np.zeros((0, 2)))
    step = max(1, len(times) // max_points)
    t, qs = np.asarray(times)[::step], np.asarray(q)[::step]
    d = palm_distances(qs, kinematics)
    cols = {"left": [0], "right": [1], "either": [0, 1]}[task.hand]
    sub = d[:, cols]
    i, j = np.unravel_index(int(np.argmin(sub)), sub.shape)
    hand = ("left", "right")[cols[j]]
    best = float(sub[i, j])
    if task.success_distance:
        achieved = best <= task.success_distance
        verdict = "ACHIEVED" if achieved else "NOT achieved"
        summary = (f"{verdict}: the {hand} palm came within {best * 100:.1f} cm of the cup at t={t[i]:.1f} s "
                   f"(success: <= {task.success_distance * 100:.0f} cm; start: {d[0].min() * 100:.1f} cm)")
    else:
        achieved = None
        summary = (f"no success criterion for '{task.instruction}'; closest palm-to-cup approach "
                   f"{best * 100:.1f} cm ({hand}) at t={t[i]:.1f} s")
    return TaskOutcome(achieved, best, float(t[i]), hand, summary, t, d)
