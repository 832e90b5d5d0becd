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

    name: a task of the simulated soup (neon_ros.data.sim_expert.TASKS), or "custom".
    instruction: what the synthesised voice says (and speech_in should hear).
    """

    name: str
    instruction: str

    @property
    def scored(self) -> bool:
        """Whether the soup's own success test applies (a known task)."""
        from neon_ros.data.sim_expert import TASKS as SOUP_TASKS

        return self.name in SOUP_TASKS


def known_tasks() -> dict[str, DemoTask]:
    """The tasks the demo head was trained on, with the soup's instructions."""
    from neon_ros.data.sim_expert import TASKS as SOUP_TASKS

    return {name: DemoTask(name, text) for name, text in SOUP_TASKS.items()}


DEFAULT_TASK = "reach_cup"


def resolve_task(text: str) -> DemoTask:
    """A task name of the soup, its instruction, or any instruction text (then unscored)."""
    tasks = known_tasks()
    if text in tasks:
        return tasks[text]
    for task in tasks.values():
        if text.strip().lower().rstrip(".") == task.instruction:
            return task
    if not text.strip():
        raise ValueError(f"empty task; known tasks: {', '.join(tasks)}")
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


def evaluate(task: DemoTask, times: np.ndarray, q: np.ndarray, kinematics, live_from: float = 0.0,
             max_points: int = 600) -> TaskOutcome:
    """The verdict (the soup's own success test on the live period, from measured joints) and
    the palm-to-cup distances over the whole run."""
    times, q = np.asarray(times), np.asarray(q)
    if len(times) == 0:
        return TaskOutcome(False if task.scored else None, float("nan"), float("nan"), "-",
                           "no /joint_states were received: the robot was never observed",
                           np.zeros(0), np.zeros((0, 2)))
    step = max(1, len(times) // max_points)
    t, qs = times[::step], q[::step]
    d = palm_distances(qs, kinematics)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    hand, best = ("left", "right")[j], float(d[i, j])
    approach = f"closest palm-to-cup approach {best * 100:.1f} cm ({hand} palm, t={t[i]:.1f} s)"
    if not task.scored:
        return TaskOutcome(None, best, float(t[i]), hand,
                           f"no success test for {task.instruction!r}; {approach}", t, d)
    achieved, detail = soup_verdict(task.name, times, q, kinematics, live_from)
    verdict = "ACHIEVED" if achieved else "NOT achieved"
    return TaskOutcome(achieved, best, float(t[i]), hand, f"{verdict}: {detail}; {approach}", t, d)


def soup_verdict(name: str, times: np.ndarray, q: np.ndarray, kinematics, live_from: float) -> tuple[bool, str]:
    """neon_ros.data.sim_expert.success on the palms (FK of measured joints, 20 Hz) of the live period.

    The scripted expert's goal is planned from the pose at the start of the live period
    (a fixed seed for its small randomisation), exactly as `neon-ros eval` scores the head.
    """
    from neon_ros.contract import CONTROL_DT
    from neon_ros.data import sim_expert

    live = times >= live_from
    if live.sum() < 2:
        return False, "the live period has no joint states"
    grid = np.arange(times[live][0], times[live][-1], CONTROL_DT)
    qg = np.stack([np.interp(grid, times, q[:, k]) for k in range(q.shape[1])], 1)
    palms = np.stack([kinematics.hand_poses(row)[:, :3, 3] for row in qg])
    plan = sim_expert.plan_task(name, qg[0], kinematics, np.random.default_rng(0))
    ok = bool(sim_expert.success(name, plan, palms))
    if plan.goal_palms is not None:
        err = np.linalg.norm(palms[-1] - plan.goal_palms, axis=-1)[list(plan.hands)]
        return ok, (f"final palm {err.max() * 100:.1f} cm from the expert's goal (soup test: < 7 cm)")
    return ok, "the soup's test of this task on the last 1.5 s"
