"""A head trained in CI on a small generated sim soup beats the hold-still baseline, closed loop.

This is the whole pipeline on real parts: the scripted expert in G1Sim (MuJoCo) writes a
LeRobot v3 dataset, the lerobot adapter reads it back, cpu_default (real pretrained
encoders) makes the features, the head trains on them; the held-out episodes (never
trained on) are scored open-loop, and `neon-ros eval` drives the simulated G1 with it
through the robot's control path on start poses and cup placements never trained on. The
demo head cache is then reused, not rebuilt.
"""

from __future__ import annotations

import json

import pytest

from neon_ros.runtime import checkpoint
from neon_ros.tools.demo.demo_head import ensure_demo_head


@pytest.fixture(scope="module")
def quick_head(suite_cache):
    """(checkpoint, cache folder) of the quick demo head: the one the demo test trained in this run's
    cache (scripts/test.sh), else built once here."""
    cache = suite_cache / "demo_head"
    return ensure_demo_head(cache, quick=True), cache


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_demo_head_beats_hold_still_on_held_out_episodes(quick_head):
    ckpt, cache = quick_head
    summary = json.loads((ckpt.parent / "summary.json").read_text())
    # the demonstrations succeed (half are driven off their path on purpose and must recover in time)
    assert all(rate >= 0.75 for rate in summary["expert_success"].values()), summary["expert_success"]
    held = summary["held_out"]
    assert held["joint_delta"]["samples"] > 0
    # Open loop is a sanity check, not the criterion (the closed-loop test below is): the joint
    # noise that lifts closed-loop success (89% -> 100% on the demo recipe) costs open-loop joint
    # error (0.48x -> 0.91x of holding still), the hand's path stays well predicted.
    assert held["ee_translation"]["head_error"] <= 0.75 * held["ee_translation"]["hold_still_error"], held
    assert held["joint_delta"]["head_error"] < held["joint_delta"]["hold_still_error"], held
    loaded = checkpoint.load(ckpt)
    assert loaded.backbone_id.startswith("cpu_default")
    stamp = ckpt.stat().st_mtime_ns
    assert ensure_demo_head(cache, quick=True) == ckpt  # cached: no rebuild
    assert ckpt.stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_instruction_decides_the_motion(quick_head):
    """Same clip, same joints, two instructions -> clearly different chunks ([11]): a head that
    ignores the text block of the features (it was 0.07% of their energy) fails this."""
    import numpy as np

    from neon_ros import g1
    from neon_ros.backbones import load_backbone
    from neon_ros.runtime.head import HeadRuntime

    head = HeadRuntime(quick_head[0], runtime="torch", threads=1)
    backbone = load_backbone("cpu_default")
    h, w = backbone.frame_size
    clip = np.full((backbone.num_frames, h, w, 3), 128, np.uint8)
    q = g1.STANDING_POSE.copy()
    chunks = {text: head.predict(backbone.encode_batch([clip], [text])[0], q, np.zeros(g1.NUM_JOINTS)).joint_delta
              for text in ("reach the red cup", "wave the left hand")}
    gap = np.abs(chunks["reach the red cup"] - chunks["wave the left hand"]).max()
    assert gap > 0.1, gap  # rad: a different motion, not noise


def _eval(ckpt, out, *extra: str) -> dict:
    """`neon-ros eval` as a user runs it (its own process: MuJoCo's GL context stays out of pytest)."""
    import subprocess

    from support import ros_env, script

    cmd = script("neon-ros") + ["eval", "--checkpoint", str(ckpt), "--tasks", ",".join(CLOSED_LOOP_TASKS),
                                "--episodes", str(CLOSED_LOOP_EPISODES), "--seed", "2024", "--feature-delay", "0.15", "--clip-rate", "10",
                                "--out", str(out), *extra]
    done = subprocess.run(cmd, env=ros_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(out.read_text())


CLOSED_LOOP_TASKS = ("reach_cup", "wave_left")
CLOSED_LOOP_EPISODES = 3


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_head_beats_hold_still_closed_loop(quick_head, tmp_path):
    """The CI-trained head, closed loop through the robot's control path (`neon-ros eval`, fixed
    seed, start poses and cup placements never trained on), against holding still on the same
    episodes: it must succeed where holding still never does, and end far nearer the cup."""
    import numpy as np

    head = _eval(quick_head[0], tmp_path / "head.json")
    still = _eval(quick_head[0], tmp_path / "still.json", "--baseline")
    assert head["policy"] == "head" and still["policy"] == "hold still"
    assert still["mean_success"] == 0.0, still["success"]
    # measured 2026-12-03: head reach 1/3 (final palm 7-12 cm) and wave 3/3; holding still 0/6 (36-40 cm)
    assert head["mean_success"] >= 1 / 3, (head["success"], [e["reason"] for v in head["episodes"].values() for e in v])
    reach = [e["final_error_m"] for e in head["episodes"]["reach_cup"]]
    reach_still = [e["final_error_m"] for e in still["episodes"]["reach_cup"]]
    assert np.mean(reach) < 0.5 * np.mean(reach_still), (reach, reach_still)
