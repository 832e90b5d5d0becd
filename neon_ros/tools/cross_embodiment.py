"""`neon-ros xembody`: what another robot's demonstrations do for the G1, measured closed-loop.

Relative actions (a hand's displacement in its own frame, DESIGN.md section 4) are the reason
other robots' data can teach the G1. This experiment measures it in simulation with three
heads, trained alike (same backbone, steps, seed, joint noise) on three soups:

- **a, G1 only**: scripted-expert G1 demonstrations of every task, but only ``--g1-episodes``
  of the target task (default point_cup: the right hand points at the cup);
- **b, + another robot, relative**: a, plus ``--other-episodes`` demonstrations of the target
  task by a robot of another arm geometry (``shortarm``: the G1 with arms
  ``sim_expert.SHORTARM_SCALE`` as long, its own video, its right arm's 7 joints, its palm
  poses recorded in its shoulder frame as an arm's dataset would); it supervises only the
  right hand's ee output, never the G1's joint deltas;
- **c, + another robot, absolute**: b with every source's hand labels as poses in its base
  frame (the G1's pelvis, the short arm's shoulder) instead of displacements.

Each head then drives the simulated G1 through the robot's own control path (``neon-ros
eval``) with ``--ee-mode`` (default replace: the arms go where the ee output says, through the
IK of ``runtime.ee_targets``: the only path by which another robot's data reaches the motors),
on the target task and on a control task the G1 data covers in full. Datasets, feature caches
and heads are kept under ``--out``; a second run reuses them (another ``--ee-mode`` only evaluates);
``results.json`` there holds the success rates per ee mode and head.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ARMS = {"a": "G1 only", "b": "G1 + short arm, relative actions", "c": "G1 + short arm, absolute actions"}
OTHER_TASKS = ("reach_cup", "wave_left", "raise_hands", "stand_still")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="work folder (datasets, caches, heads, results)")
    parser.add_argument("--task", default="point_cup", help="the target task (the other robot demonstrates it)")
    parser.add_argument("--control-task", default="reach_cup", help="a task the G1 data covers in full")
    parser.add_argument("--g1-episodes", type=int, default=3, help="G1 demonstrations of the target task")
    parser.add_argument("--g1-other-episodes", type=int, default=20, help="G1 demonstrations of each other task")
    parser.add_argument("--other-episodes", type=int, default=20, help="the short arm's demonstrations of the target")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per head")
    parser.add_argument("--stride", type=float, default=0.2, help="s between training samples of an episode")
    parser.add_argument("--eval-episodes", type=int, default=20, help="closed-loop episodes per task and head")
    parser.add_argument("--ee-mode", default="replace", choices=("replace", "blend", "off"),
                        help="how the heads' ee output moves the arms in the evaluation (see `neon-ros eval`)")
    parser.add_argument("--arms", default="abc", help="which heads to train and evaluate (letters of a, b, c)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (evaluation uses 1000)")


def _generate(out: Path, args: argparse.Namespace) -> dict[str, tuple[Path, int]]:
    """The three datasets (made once): name -> (path, episodes)."""
    from neon_ros.data import sim_expert

    plan = {"g1_rest": ([t for t in OTHER_TASKS if t != args.task], args.g1_other_episodes, 1.0),
            "g1_target": ([args.task], args.g1_episodes, 1.0),
            "shortarm_target": ([args.task], args.other_episodes, sim_expert.SHORTARM_SCALE)}
    made = {}
    for k, (name, (tasks, episodes, scale)) in enumerate(plan.items()):
        path = out / "data" / name
        if not (path / "meta" / "info.json").exists():
            shutil.rmtree(path, ignore_errors=True)
            rates = sim_expert.generate(path, tasks, episodes, 4.0, 10, (128, 128), seed=args.seed + 17 * k + 1,
                                        perturbed=0.5, arm_scale=scale)
            print(f"{name}: {episodes} episodes of {', '.join(tasks)}, expert success {rates}")
        made[name] = (path, episodes * len(tasks))
    return made


def _soup(arm: str, data: dict[str, tuple[Path, int]], args: argparse.Namespace):
    from neon_ros.data.registry import SourceConfig
    from neon_ros.policy.soup import Soup

    names = ["g1_rest", "g1_target"] + ([] if arm == "a" else ["shortarm_target"])
    frame = "base" if arm == "c" else "hand"
    # weights in proportion to episodes: every demonstration is drawn about as often, whatever its source
    return Soup(f"xembody_{arm}", [SourceConfig(n, "lerobot", data[n][0], weight=float(data[n][1]), stride=args.stride,
                                                clip_seconds=0.8, clip_lag=0.2, ee_frame=frame) for n in names],
                seed=args.seed, held_out=0.0)


def _features(arm: str, soup, backbone, out: Path) -> Path:
    """The arm's feature cache; clips another arm already encoded are copied, not encoded again."""
    from neon_ros.tools.features import extract

    cache = out / arm / "cache"
    for other in "bca":
        done = out / other / "cache" / backbone.backbone_id
        if other != arm and done.is_dir() and not (cache / backbone.backbone_id).exists():
            shutil.copytree(done, cache / backbone.backbone_id)
            break
    extract(soup, cache, backbone, progress=True)
    return cache


def _train(arm: str, soup, backbone, out: Path, steps: int, seed: int) -> Path:
    """The arm's head (trained once: its features extracted, then ``steps`` steps)."""
    from neon_ros.policy.train import TrainConfig, train

    run = out / arm / "run"
    if not (run / "head.json").exists():
        cache = _features(arm, soup, backbone, out)
        train(TrainConfig(data=cache, out=run, steps=steps, batch_size=128, lr=2e-3, warmup=min(50, steps // 5),
                          d_model=256, held_out=0.0, joint_noise=0.1, seed=seed, eval_every=0,
                          checkpoint_every=steps, weights=soup.weights(), progress=True))
    return run / "head.json"


def run(args: argparse.Namespace) -> int:
    from neon_ros.backbones import load_backbone
    from neon_ros.data.sim_expert import TASKS
    from neon_ros.tools.evaluate import evaluate

    for task in (args.task, args.control_task):
        if task not in TASKS or task == "stand_still":
            raise SystemExit(f"xembody: {task!r} is not a reaching task of {sorted(TASKS)}")
    if not set(args.arms) <= set(ARMS) or not args.arms:
        raise SystemExit(f"xembody: --arms takes letters of {''.join(ARMS)}, got {args.arms!r}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    backbone = load_backbone("cpu_default")  # before any simulator GL context (see evaluate.py)
    data = _generate(out, args)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for arm in sorted(args.arms, key="bca".index):  # b first: a and c reuse its encoded clips
        head = _train(arm, _soup(arm, data, args), backbone, out, args.steps, args.seed)
        res = evaluate(head, [args.task, args.control_task], args.eval_episodes, feature_delay=0.08,
                       ee_mode=args.ee_mode)
        results.setdefault(args.ee_mode, {})[arm] = {
            "label": ARMS[arm], "success": res["success"], "episodes_per_task": args.eval_episodes, "head": str(head),
            "final_error_m": {t: [e["final_error_m"] for e in v] for t, v in res["episodes"].items()}}
        results_path.write_text(json.dumps(results, indent=1))
    print(f"closed-loop success, ee_mode {args.ee_mode}, {args.eval_episodes} episodes per task "
          f"(G1 demonstrations of {args.task}: {args.g1_episodes}; short arm's: {args.other_episodes}):")
    print(f"  {'head':<36} {args.task:>12} {args.control_task:>12}")
    for arm, r in sorted(results[args.ee_mode].items()):
        print(f"  {arm} {r['label']:<34} {r['success'][args.task] * 100:11.0f}% "
              f"{r['success'][args.control_task] * 100:11.0f}%")
    return 0
