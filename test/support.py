"""Test helpers: isolated ROS 2 / Unitree DDS domains and child processes with hard timeouts."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from neon_ros.runtime.timing import child_normal_scheduling

REPO = Path(__file__).resolve().parents[1]


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
                                      preexec_fn=child_normal_scheduling)

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


def child_policies(root_pid: int) -> dict[int, tuple[str, dict[int, int]]]:
    """{pid: (command line, {thread id: scheduling policy})} for ``root_pid`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: ppid
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += [p for p, pp in parents.items() if pp == pid]
    out: dict[int, tuple[str, dict[int, int]]] = {}
    for pid in tree:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            tids = {}
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    tids[int(tid)] = os.sched_getscheduler(int(tid))
                except OSError:
                    pass
        except OSError:
            continue
        out[pid] = (cmd, tids)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
