"""`neon-ros eval`: a trained head closed-loop on the simulated G1, success per instructed task.

The loop is the robot's, run in one process for speed (G1Sim in-process, no DDS): the head
camera is rendered at ``--camera-fps``, the last second of it goes through the frozen
backbone with the instruction, the head predicts a 16-step chunk from the features and
the measured joints, and the G1's motors track the chunk (point k at k x 50 ms after the
clip it came from) with the same PD + gravity compensation the demonstrations used,
re-planning every ``--replan`` control steps. Each episode starts from a randomised pose;
success is judged from the palm trajectory by the task's own test
(:func:`neon_ros.data.sim_expert.success`: e.g. the left palm ends within 7 cm of where
the scripted expert puts it beside the cup).
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neon_ros.data.sim_expert import TASKS

    parser.add_argument("--checkpoint", required=True, type=Path, help="head checkpoint (folder, stem or .json)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated tasks (known: {', '.join(TASKS)})")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per task")
    parser.add_argument("--seconds", type=float, default=3.0, help="episode length (s)")
    parser.add_argument("--camera-fps", type=int, default=10, help="head camera rate (the training data's)")
    parser.add_argument("--replan", type=int, default=2, help="control steps (50 ms) between head calls")
    parser.add_argument("--backbone", default=None, help="backbone preset (default: cpu_default)")
    parser.add_argument("--camera-size", type=int, nargs=2, default=(128, 128), metavar=("W", "H"),
                        help="head camera image size (the training data's)")
    parser.add_argument("--seed", type=int, default=1000, help="start-pose seed (differs from training's)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def evaluate(checkpoint: Path, tasks: list[str], episodes: int = 2, seconds: float = 3.0, camera_fps: int = 10,
             replan: int = 2, backbone_preset: str | None = None, camera_size=(128, 128), seed: int = 1000,
             progress: bool = True) -> dict:
    from tqdm import tqdm

    from neon_ros.sim.g1_sim import G1Sim  # first: it selects the off-screen GL before mujoco loads

    if episodes < 1 or replan < 1 or camera_fps < 1:
        raise ValueError("episodes, replan and camera_fps must be >= 1")
    from neon_ros.backbones import load_backbone
    from neon_ros.contract import CHUNK_STEPS, CONTROL_DT
    from neon_ros.data import sim_expert
    from neon_ros.data.episode import select_clip
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.tools.features import FrameMemo, fit_clip

    # The backbone loads before any GL context exists (transformers' optional GPU imports
    # crash in a process that already holds an EGL context).
    head = HeadRuntime(checkpoint, runtime="torch", threads=0)
    backbone = FrameMemo(load_backbone(backbone_preset or head.backbone_id.split(".")[0]))
    if backbone.backbone_id != head.backbone_id:
        raise ValueError(f"the head was trained on {head.backbone_id!r} features, the backbone is "
                         f"{backbone.backbone_id!r}; pass --backbone")
    with G1Sim(fixed_base=True, camera_size=tuple(camera_size)) as sim:
        from neon_ros.runtime.kinematics import G1Kinematics, IKConfig

        kin = G1Kinematics(ik=IKConfig(rotation_weight=0.02, max_iterations=300))
        rng = np.random.default_rng(seed)
        per_frame = max(1, int(round(1.0 / (camera_fps * CONTROL_DT))))
        results: dict[str, list[bool]] = {t: [] for t in tasks}
        for task in tqdm([t for t in tasks for _ in range(episodes)], desc="eval", unit="episode",
                         disable=not progress):
            q0 = sim_expert.start_pose(rng)
            plan = sim_expert.plan_task(task, q0, kin, np.random.default_rng(rng.integers(1 << 31)))
            sim.reset(q0)
            ctl = sim_expert.ExpertController(sim)
            frames: deque = deque()
            chunk, age, palms = None, 0, []
            for i in range(int(round(seconds / CONTROL_DT))):
                t = i * CONTROL_DT
                if i % per_frame == 0:
                    frames.append((t, sim.render()))
                    while frames[0][0] < t - 1.2:
                        frames.popleft()
                if chunk is None or age >= replan:
                    clip = fit_clip(select_clip(frames, t, backbone.num_frames, 1.0), backbone.num_frames,
                                    backbone.frame_size)
                    feats = backbone.encode_batch([clip], [sim_expert.TASKS[task]])[0]
                    chunk, age = head.predict(feats, sim.q, sim.dq).joint_targets, 0
                age += 1
                ctl.run(chunk[min(age, CHUNK_STEPS - 1)], CONTROL_DT)
                palms.append(sim_expert.palms_in_pelvis(sim))
            results[task].append(sim_expert.success(task, plan, np.stack(palms)))
    per_task = {t: float(np.mean(v)) for t, v in results.items()}
    return {"success": per_task, "mean_success": float(np.mean(list(per_task.values()))),
            "episodes_per_task": episodes, "checkpoint": str(checkpoint)}


def run(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    res = evaluate(args.checkpoint, tasks, args.episodes, args.seconds, args.camera_fps, args.replan,
                   args.backbone, tuple(args.camera_size), args.seed)
    print("closed-loop success per task:")
    for task, rate in res["success"].items():
        print(f"  {task:<14} {rate * 100:5.1f}%")
    print(f"  {'mean':<14} {res['mean_success'] * 100:5.1f}%")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0
