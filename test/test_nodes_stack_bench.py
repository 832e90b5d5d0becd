"""`neon-ros bench stack`: its in-process stage runs and reports figures (no timing assertions)."""

import json
import subprocess

import pytest
from support import REPO, python, ros_env


@pytest.mark.timeout(180)
def test_stack_bench_step_stage_reports_figures():
    out = subprocess.run(python("-m", "neon_ros.cli", "bench", "stack", "--skip", "perception,bridge",
                                "--steps", "30", "--step-runtimes", "torch", "--json"), env=ros_env(), cwd=REPO,
                         capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    step = figures["step"]["torch"]["step_ms"]
    assert step["n"] == 20 and 0 < step["p50"] <= step["p99"] <= step["max"]
    assert "control step in process (torch" in out.stdout


def test_stack_bench_help():
    out = subprocess.run(python("-m", "neon_ros.cli", "bench", "stack", "--help"), cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--seconds" in out.stdout and "--preset" in out.stdout
