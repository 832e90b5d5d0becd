"""`neon-ros teleop` against a stand-in bridge whose teleop subscription appears late.

A scripted hold must reach the bridge whole: its clock starts once the bridge listens, not
when /joint_states first arrived (on a loaded machine discovery of the subscription can take
seconds, and the demo once saw a 4 s hold cut to 2 s). With no bridge listening it exits 1. The
e-stop goes out from a participant of its own, again until acknowledged."""

import json
import subprocess
import time

import pytest
from support import REPO, Proc, python, ros_env, script

from neon_ros.ros import rosutil

JOINT = "right_elbow_joint"


def _teleop(env, duration: float, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(script("neon-ros") + ["teleop", "--joint", f"{JOINT}+=0.2", "--duration", str(duration),
                                                "--state-timeout", str(timeout)],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.ros
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


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_another_subscriber_first_is_not_the_bridge(tmp_path):
    """A node that is not the bridge (the demo's observer) on the teleop topic from the start:
    the hold still waits for the bridge's own subscription and reaches it whole."""
    env = ros_env()
    with Proc(python("-m", "test.peers.teleop_listener", "--listen-after", "3", "--total", "10", "--observer"),
              env, tmp_path / "listener.log", cwd=REPO) as listener:
        done = _teleop(env, 1.5, 15)
        assert done.returncode == 0, done.stdout + done.stderr
        assert listener.popen.wait(timeout=30) == 0, listener.output()
    heard = json.loads([ln for ln in listener.output().splitlines() if ln.startswith("{")][-1])
    arrivals = heard["arrivals"]
    assert len(arrivals) >= 20 and arrivals[-1] - arrivals[0] > 1.2, (arrivals, done.stdout)


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_no_bridge_listening_sends_nothing_and_fails(tmp_path):
    env = ros_env()
    with Proc(python("-m", "test.peers.teleop_listener", "--listen-after", "100", "--total", "12"), env,
              tmp_path / "listener.log", cwd=REPO):
        done = _teleop(env, 1.0, 3)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nothing sent" in done.stderr and "teleop: driving" not in done.stdout, done.stdout + done.stderr


class _Writer:
    """A reliable writer whose readers acknowledge the n-th sample (the ones before were lost)."""

    def __init__(self, acked_from: int):
        self.acked_from, self.sent, self.waits = acked_from, 0, []

    def publish(self) -> None:
        self.sent += 1

    def wait_for_all_acked(self, timeout) -> bool:
        self.waits.append(timeout.nanoseconds / 1e9)
        if self.sent >= self.acked_from:
            return True
        time.sleep(self.waits[-1])  # as DDS: no acknowledgement until the timeout
        return False


def test_a_sample_lost_on_the_way_is_sent_again_after_one_period():
    """A lost e-stop sample waited for Fast DDS's heartbeat, 3 s (a CI run): now one period."""
    w = _Writer(acked_from=3)
    spins = []
    took = rosutil.publish_until_acked(w, w.publish, 0.02, 2.0, lambda: spins.append(1))
    assert took is not None and w.sent == 3 and len(spins) == 2
    assert all(t == pytest.approx(0.02) for t in w.waits)
    never = _Writer(acked_from=10**9)
    assert rosutil.publish_until_acked(never, never.publish, 0.05, 0.2) is None
    assert 3 <= never.sent <= 5 and max(never.waits) <= 0.05 + 1e-9  # every period, never past the timeout


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_estop_is_acknowledged_by_the_bridge_or_reported_undelivered(tmp_path):
    env = ros_env()
    estop = script("neon-ros") + ["teleop", "--estop"]
    alone = subprocess.run(estop, env=env, capture_output=True, text=True, timeout=60)
    assert alone.returncode == 1 and "E-STOP NOT DELIVERED" in alone.stderr, alone.stdout + alone.stderr
    with Proc(python("-m", "test.peers.teleop_listener", "--total", "12"), env, tmp_path / "listener.log",
              cwd=REPO) as listener:
        done = subprocess.run(estop, env=env, capture_output=True, text=True, timeout=60)
        assert listener.popen.wait(timeout=30) == 0, listener.output()
    assert done.returncode == 0 and "acknowledged" in done.stdout, done.stdout + done.stderr
    heard = json.loads([ln for ln in listener.output().splitlines() if ln.startswith("{")][-1])
    assert heard["estops"] and all(heard["estops"]), heard


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_the_keyboards_e_key_sends_an_acknowledged_estop(tmp_path):
    """Keyboard mode on a real terminal (a pty): 'e' sends the e-stop through EstopSender, the
    listener hears it, and 'q' ends the session (releasing what it drove)."""
    import os
    import pty
    import threading

    env = ros_env()
    with Proc(python("-m", "test.peers.teleop_listener", "--total", "25"), env, tmp_path / "listener.log",
              cwd=REPO) as listener:
        master, slave = pty.openpty()
        proc = subprocess.Popen(script("neon-ros") + ["teleop", "--state-timeout", "15"], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        os.close(slave)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()

        def wait_for(text: str, timeout: float) -> bool:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if any(text in ln for ln in list(lines)):
                    return True
                time.sleep(0.05)
            return False

        try:
            assert wait_for("teleop keyboard:", 30), lines
            os.write(master, b"e")
            assert wait_for("E-STOP sent", 15), lines
            os.write(master, b"q")
            assert proc.wait(timeout=20) == 0, lines
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
        reader.join(timeout=5)
        assert listener.popen.wait(timeout=40) == 0, listener.output()
    assert any("E-STOP sent" in ln and "acknowledged" in ln for ln in lines), lines
    heard = json.loads([ln for ln in listener.output().splitlines() if ln.startswith("{")][-1])
    assert heard["estops"] and all(heard["estops"]), heard
