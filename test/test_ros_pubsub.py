"""Two real rclpy processes exchange a 16x29 JointTrajectory (random domain, localhost only)."""

import subprocess

import pytest
from support import REPO, Proc, python, ros_env

pytestmark = pytest.mark.ros


def test_trajectory_between_processes(tmp_path):
    env = ros_env()
    with Proc(python("-m", "test.peers.traj_talker"), env, tmp_path / "talker.log") as talker:
        out = subprocess.run(python("-m", "test.peers.traj_listener"), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert talker.alive(), talker.output()
    assert out.returncode == 0 and "RESULT ok" in out.stdout, out.stdout + out.stderr
