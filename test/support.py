"""Test helpers: isolated ROS 2 / Unitree DDS domains and child processes with hard timeouts."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _normal_scheduling() -> None:
    """Children start on SCHED_OTHER whatever the test process runs at (no inherited SCHED_FIFO)."""
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def ros_env(domain: int | None = None, **extra: str) -> dict[str, str]:
    """Environment for a child process: a random ROS_DOMAIN_ID, localhost-only discovery."""
    env = dict(os.environ)
    env.pop("CYCLONEDDS_HOME", None)
    env["ROS_DOMAIN_ID"] = str(domain if domain is not None else random.randint(1, 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Jazzy/Kilted
    env["ROS_LOCALHOST_ONLY"] = "1"  # Humble
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    env.update(extra)
    return env


def random_dds_domain() -> int:
    """A Unitree DDS domain for one test (the robot uses 0; tests stay away from it)."""
    return random.randint(101, 200)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def script(name: str) -> list[str]:
    """Command to run a console script of this package from the venv."""
    return [str(Path(sys.executable).parent / name)]


class Proc:
    """A child process whose output goes to a log file; killed on exit of the context."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None):
        self.log_path = log
        self._log = open(log, "w")
        self.popen = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=str(cwd or REPO), start_new_session=True,
                                      preexec_fn=_normal_scheduling)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig_timeout: float = 5.0) -> int:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(sig_timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
