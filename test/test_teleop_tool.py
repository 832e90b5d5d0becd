"""`neon-ros teleop` against a stand-in bridge whose teleop subscription appears late.

A scripted hold must reach the bridge whole: its clock starts once the bridge listens, not
when /joint_states first arrived (on a loaded machine discovery of the subscription can take
seconds, and the demo once saw a 4 s hold cut to 2 s). With no bridge listening it exits 1."""

import json
import subprocess

import pytest
from support import REPO, Proc, python, ros_env, script

pytestmark = [pytest.mark.ros]

JOINT = "right_elbow_joint"


def _teleop(env, duration: float, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(script("neon-ros") + ["teleop", "--joint", f"{JOINT}+=0.2", "--duration", str(duration),
                                                "--state-timeout", str(timeout)],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_a_scripted_hold_starts_when_the_bridge_listens(tmp_path):
    env = ros_env()
    with Proc(python("-m", "test.peers.teleop_listener", "--listen-after", "3", "--total", "10"), env,
              tmp_path / "listener.log", cwd=REPO) as listener:
        done = _teleop(env, 1.5, 15)
        assert done.returncode == 0, done.stdout + done.stderr
        assert listener.popen.wait(timeout=30) == 0, listener.output()
    heard = json.loads([ln for ln in listener.output().splitlines() if ln.startswith("{")][-1])
    arrivals = heard["arrivals"]
    # 1.5 s at 20 Hz: ~30 messages over ~1.5 s, all of them after the subscription existed
    assert len(arrivals) >= 20, (len(arrivals), done.stdout)
    assert arrivals[-1] - arrivals[0] > 1.2, arrivals
    assert heard["released"] and heard["released"][0] >= arrivals[-1], heard
    # the clock started once the listener acknowledged the first point (a reader that knew the writer)
    assert "teleop: first point acknowledged after" in done.stdout, done.stdout


@pytest.mark.timeout(120)
def test_no_bridge_listening_sends_nothing_and_fails(tmp_path):
    env = ros_env()
    with Proc(python("-m", "test.peers.teleop_listener", "--listen-after", "100", "--total", "12"), env,
              tmp_path / "listener.log", cwd=REPO):
        done = _teleop(env, 1.0, 3)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nothing sent" in done.stderr and "teleop: driving" not in done.stdout, done.stdout + done.stderr
