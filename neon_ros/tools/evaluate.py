"""`neon-ros eval`: a trained head closed-loop on the simulated G1, success per instructed task.

Each episode runs the robot's own control path on a simulated clock
(:mod:`neon_ros.sim.deployment`): the head camera at ``--camera-fps``, clips through the
frozen backbone with the instruction, features usable ``--feature-delay`` s after their
camera stamp (default: the backbone node's time from a new frame to features, measured
here), the action_head's control step (gate, head, the one clamp) every 50 ms, and the
g1_bridge controller (safety, chunk schedule, rate limit, gains, gravity feed-forward) at
500 Hz driving G1Sim. Start poses come
and cup placements from ``--seed`` (training uses other seeds). Success is the task's own test
(:func:`neon_ros.data.sim_expert.success`); per episode the report gives the time the test
first held and, for a failure, why (final palm error, not waving, refused chunks ...).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from neon_ros.runtime.step_schedule import SCHEDULES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neon_ros.data.sim_expert import TASKS
    from neon_ros.runtime.control import EE_MODES

    parser.add_argument("--checkpoint", required=True, type=Path, help="head checkpoint (folder, stem or .json)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated tasks (known: {', '.join(TASKS)})")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per task")
    parser.add_argument("--seconds", type=float, default=4.0, help="episode length (s)")
    parser.add_argument("--camera-fps", type=float, default=10.0, help="head camera rate (the training data's)")
    parser.add_argument("--feature-delay", type=_delay, default=None,
                        help="s from a clip's newest frame to its features, or 'preset': the backbone preset's "
                        "expected_latency_s on the robot computer (default: the encode time measured here)")
    parser.add_argument("--clip-rate", type=float, default=None,
                        help="clips the backbone takes per second (default: one at a time, min(camera fps, "
                        "1 / feature delay), as one backbone process encodes them)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="arrival",
                        help="when the head steps, as action_head's schedule: at each new features' arrival and "
                        "every 50 ms between (arrival, the node's default) or every 50 ms (grid)")
    parser.add_argument("--time-base", choices=("camera", "now"), default="now",
                        help="a chunk's point 0 is meant for the control step's time (now) or the camera stamp")
    parser.add_argument("--ee-mode", choices=EE_MODES, default="off",
                        help="the head's predicted hand displacements move the arms by IK: off | blend (arm "
                        "joints mix joint_delta and IK targets by --ee-weight) | replace (arm joints from IK)")
    parser.add_argument("--ee-weight", type=float, default=0.5, help="share of the IK targets when --ee-mode blend")
    parser.add_argument("--backbone", default=None, help="backbone preset (default: the checkpoint's)")
    parser.add_argument("--camera-size", type=int, nargs=2, default=(128, 128), metavar=("W", "H"),
                        help="head camera image size (the training data's)")
    parser.add_argument("--seed", type=int, default=1000,
                        help="start-pose and cup-placement seed (training's differ)")
    parser.add_argument("--baseline", action="store_true",
                        help="score the hold-still baseline on the same episodes instead of the head")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def _delay(text: str) -> float | str:
    if text == "preset":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a delay in s or 'preset', got {text!r}") from None


def measure_encode_time(backbone, frame_size, instruction: str, runs: int = 5) -> float:
    """Median seconds from a new camera frame to its clip's features, as the backbone node does it
    (incremental by default): clips slide one new frame at a time through ``backbone`` (the
    frame-memoising wrapper eval uses, as the node's ClipEncoder reuses per-frame embeddings)."""
    rng = np.random.default_rng(0)
    h, w = frame_size
    n = backbone.num_frames
    frames = rng.integers(0, 255, (n + runs, h, w, 3), dtype=np.uint8)
    times = []
    for k in range(runs + 1):  # the first call fills the memo (a whole clip) and is not counted
        t0 = time.perf_counter()
        backbone.encode_batch([frames[k:k + n]], [instruction])
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def failure_reason(task: str, plan, palms: np.ndarray, ep) -> str:
    from neon_ros.data.sim_expert import GOAL_TOLERANCE, STILL_DRIFT, WAVE_HEIGHT, WAVE_STEPS, still_drift

    if ep.chunks == 0:
        return f"no chunk reached the bridge (refused: {ep.refused or 'features never usable'})"
    if task == "wave_left":
        tail = palms[-WAVE_STEPS:, 0]
        return (f"left palm height {tail[:, 2].mean():.2f} m (needs > {WAVE_HEIGHT}), "
                f"lateral swing {tail[:, 1].std() * 100:.1f} cm (needs > 2)")
    if task == "stand_still":  # the test is the drift from the start, not the distance to a goal
        return f"a palm moved {still_drift(palms) * 100:.1f} cm from where it started (needs < {STILL_DRIFT * 100:g})"
    err = final_error(plan, palms)
    if err is not None:
        return f"final palm {err * 100:.1f} cm from the goal (needs < {GOAL_TOLERANCE * 100:g})"
    return "task test failed"


def final_error(plan, palms: np.ndarray) -> float | None:
    """m from the scored palm(s) at the end to the plan's goal (the worse hand); None: not a position task."""
    if plan is None or plan.goal_palms is None:
        return None
    return float(np.linalg.norm(palms[-1] - plan.goal_palms, axis=-1)[list(plan.hands)].max())


def evaluate(checkpoint: Path, tasks: list[str], episodes: int = 2, seconds: float = 4.0, camera_fps: float = 10.0,
             feature_delay: float | str | None = None, time_base: str = "now", backbone_preset: str | None = None,
             camera_size=(128, 128), seed: int = 1000, progress: bool = True, baseline: bool = False,
             clip_rate: float | None = None, ee_mode: str = "off", ee_weight: float = 0.5,
             schedule: str = "arrival") -> dict:
    """Closed-loop episodes of the head (``baseline``: of ``HoldStill``) per task; see the module doc.
    ``clip_rate`` None: one clip at a time, min(camera_fps, 1 / feature_delay) per second.
    ``ee_mode``/``ee_weight``: how the predicted hand displacements move the arms (``HeadStep``).
    ``schedule``: when the head steps (``LoopConfig.schedule``, as action_head's)."""
    from tqdm import tqdm

    from neon_ros.sim.g1_sim import G1Sim  # first: it selects the off-screen GL before mujoco loads

    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    from neon_ros.backbones import load_backbone
    from neon_ros.data import sim_expert
    from neon_ros.runtime.control import HeadStep
    from neon_ros.runtime.gate import GateConfig
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.runtime.kinematics import G1Kinematics, IKConfig
    from neon_ros.sim.deployment import HeadPolicy, HoldStill, LoopConfig, SimulatedDeployment
    from neon_ros.tools.features import FrameMemo

    # The backbone loads before any GL context exists (transformers' optional GPU imports
    # crash in a process that already holds an EGL context).
    head = HeadRuntime(checkpoint, runtime="torch", threads=0)
    backbone = FrameMemo(load_backbone(backbone_preset or head.backbone_id.split(".")[0]))
    if backbone.backbone_id != head.backbone_id:
        raise ValueError(f"the head was trained on {head.backbone_id!r} features, the backbone is "
                         f"{backbone.backbone_id!r}; pass --backbone")
    if feature_delay == "preset":
        feature_delay = backbone.config.expected_latency_s
        if not feature_delay:
            raise ValueError(f"backbone preset {backbone.config.name!r} declares no expected_latency_s")
    if feature_delay is None:
        feature_delay = round(measure_encode_time(backbone, backbone.frame_size, "reach the red cup"), 3)
    if clip_rate is None:
        clip_rate = min(camera_fps, 1.0 / feature_delay) if feature_delay > 0 else camera_fps
    cfg = LoopConfig(seconds=seconds, camera_fps=camera_fps, clip_rate=clip_rate, feature_delay=feature_delay,
                     schedule=schedule)
    gate_cfg = GateConfig(backbone_id=head.backbone_id, feature_dim=head.feature_dim,
                          max_feature_age=feature_delay + 2.0 / camera_fps + 0.3)
    kin = G1Kinematics(ik=IKConfig(rotation_weight=0.02, max_iterations=300))
    rng = np.random.default_rng(seed)
    per_task: dict[str, list[dict]] = {t: [] for t in tasks}
    with G1Sim(fixed_base=True, camera_size=tuple(camera_size)) as sim:
        for task in tqdm([t for t in tasks for _ in range(episodes)], desc="eval", unit="episode",
                         disable=not progress):
            q0, plan = sim_expert.episode_setup(task, kin, rng)
            loop = SimulatedDeployment(sim, cfg, backbone, sim_expert.TASKS[task])
            step = HeadStep(head, gate_cfg, kinematics=kin, time_base=time_base, ee_mode=ee_mode, ee_weight=ee_weight)
            policy = HoldStill() if baseline else HeadPolicy(step)
            ep = loop.run(policy, q0, cup_position=plan.cup_position)
            palms = np.stack(ep.palms)
            ok = sim_expert.success(task, plan, palms)
            first = sim_expert.first_success(task, plan, palms)
            per_task[task].append({
                "success": bool(ok), "time_to_success_s": None if first is None else float(ep.t[first]),
                "reason": "" if ok else failure_reason(task, plan, palms, ep), "chunks": ep.chunks,
                "final_error_m": final_error(plan, palms),
                "refused": ep.refused, "ee_fallbacks": step.ee_fallbacks_total,
                "feature_age_p50_s": float(np.median(ep.feature_ages)) if ep.feature_ages else None})
    success = {t: float(np.mean([e["success"] for e in v])) for t, v in per_task.items()}
    return {"success": success, "mean_success": float(np.mean(list(success.values()))),
            "episodes_per_task": episodes, "checkpoint": str(checkpoint), "feature_delay_s": feature_delay,
            "policy": "hold still" if baseline else "head", "seed": seed,
            "time_base": time_base, "camera_fps": camera_fps, "clip_rate": clip_rate,
            "ee_mode": ee_mode, "ee_weight": ee_weight, "schedule": schedule, "episodes": per_task}


def run(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    res = evaluate(args.checkpoint, tasks, args.episodes, args.seconds, args.camera_fps, args.feature_delay,
                   args.time_base, args.backbone, tuple(args.camera_size), args.seed, baseline=args.baseline,
                   clip_rate=args.clip_rate, ee_mode=args.ee_mode, ee_weight=args.ee_weight, schedule=args.schedule)
    print(f"closed-loop success per task, {res['policy']} (feature delay {res['feature_delay_s'] * 1e3:.0f} ms, "
          f"{res['clip_rate']:.3g} clips/s, steps {res['schedule']}, time base {res['time_base']}, "
          f"ee_mode {res['ee_mode']}):")
    for task, rate in res["success"].items():
        times = [e["time_to_success_s"] for e in res["episodes"][task] if e["success"]]
        when = f"  time to success p50 {np.median(times):.2f} s" if times else ""
        print(f"  {task:<14} {rate * 100:5.1f}%{when}")
        for k, e in enumerate(res["episodes"][task]):
            if not e["success"]:
                print(f"      episode {k}: {e['reason']}")
    print(f"  {'mean':<14} {res['mean_success'] * 100:5.1f}%")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0
