"""`neon-ros bench stack`: its in-process stage runs and reports figures (no timing assertions)."""

import json
import subprocess

import pytest
from support import REPO, python, ros_env


@pytest.mark.timeout(180)
def test_stack_bench_step_stage_reports_figures():
    out = subprocess.run(python("-m", "neon_ros.cli", "bench", "stack", "--skip", "perception,bridge,demo",
                                "--steps", "30", "--step-runtimes", "torch", "--json"), env=ros_env(), cwd=REPO,
                         capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    step = figures["step"]["torch"]["step_ms"]
    assert step["n"] == 20 and 0 < step["p50"] <= step["p99"] <= step["max"]
    assert "control step in process (torch" in out.stdout


def test_the_demo_stage_reads_the_demos_summary():
    """Stage demo: latencies also in frame periods of the same run, every rate and CPU, the goals."""
    from neon_ros import contract
    from neon_ros.tools.bench.stack_demo import figures

    summary = {"mean_rates_hz": {contract.TOPIC_CAMERA: 10.0, contract.TOPIC_FEATURES: 7.5,
                                 contract.TOPIC_ACTION_CHUNK: 20.0},
               "latency_ms": {"camera -> features": {"p50": 40.0, "p99": 80.0, "max": 90.0, "n": 300},
                              "camera -> action chunk": {"p50": 70.0, "p99": 160.0, "max": 170.0, "n": 600}},
               "cpu_percent_live": {"sim_g1": {"percent": 45.0}, "backbone": {"percent": 15.5}}, "achieved": True}
    f = figures(summary)
    assert f["frame_period_ms"] == 100.0
    assert f["latency_ms"]["camera -> chunk"]["p99_frames"] == 1.6
    assert f["latency_ms"]["camera -> features"]["p50_frames"] == 0.4
    assert f["cpu_percent_total"] == 60.5 and f["rates_hz"][contract.TOPIC_ACTION_CHUNK] == 20.0
    assert f["goals_met"] == {"camera_hz": True, "features_hz": False, "camera_to_chunk_p99_ms": False}


def test_stack_bench_help():
    out = subprocess.run(python("-m", "neon_ros.cli", "bench", "stack", "--help"), cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--seconds" in out.stdout and "--preset" in out.stdout
    assert "--demo-seconds" in out.stdout and "demo" in out.stdout
