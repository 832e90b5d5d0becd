"""A head trained in CI on a small generated sim soup beats the hold-still baseline by >= 50%.

This is the whole pipeline on real parts: the scripted expert in G1Sim (MuJoCo) writes a
LeRobot v3 dataset, the lerobot adapter reads it back, cpu_default (real pretrained
encoders) makes the features, the head trains on them, and the held-out episodes (never
trained on) are scored open-loop. The demo head cache is then reused, not rebuilt.
"""

from __future__ import annotations

import json

import pytest

from neon_ros.runtime import checkpoint
from neon_ros.tools.demo.demo_head import ensure_demo_head


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_demo_head_beats_hold_still_on_held_out_episodes(tmp_path):
    ckpt = ensure_demo_head(tmp_path, quick=True)
    summary = json.loads((ckpt.parent / "summary.json").read_text())
    assert all(rate == 1.0 for rate in summary["expert_success"].values())  # the demonstrations succeed
    held = summary["held_out"]
    assert held["joint_delta"]["samples"] > 0
    for comp in ("joint_delta", "ee_translation"):
        assert held[comp]["head_error"] <= 0.5 * held[comp]["hold_still_error"], (comp, held[comp])
    loaded = checkpoint.load(ckpt)
    assert loaded.backbone_id.startswith("cpu_default")
    stamp = ckpt.stat().st_mtime_ns
    assert ensure_demo_head(tmp_path, quick=True) == ckpt  # cached: no rebuild
    assert ckpt.stat().st_mtime_ns == stamp
