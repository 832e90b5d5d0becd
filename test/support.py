"""Test helpers over neon_ros.tools.processes: isolated ROS 2 / Unitree DDS domains, child processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from neon_ros.runtime.timing import thread_policies
from neon_ros.tools import processes

REPO = Path(__file__).resolve().parents[1]


def ros_env(domain: int | None = None, **extra: str) -> dict[str, str]:
    """Environment for a child process: ROS_DOMAIN_ID (random in the tests' range), localhost-only discovery."""
    return {**processes.child_env(domain, processes.TEST_ROS_DOMAINS), **extra}


def random_dds_domain() -> int:
    """A Unitree DDS domain for one test (the robot uses 0; tests stay away from it)."""
    return processes.random_domain(processes.UNITREE_DDS_DOMAINS)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def script(name: str) -> list[str]:
    """Command to run a console script of this package."""
    return processes.executable(name)


class Proc(processes.Child):
    """A child run from the repository; stopped with SIGTERM first (the nodes' clean exit is tested)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None):
        super().__init__(Path(log).stem, cmd, env, log, cwd=cwd or REPO)

    def stop(self, grace: float = 5.0, first: signal.Signals = signal.SIGTERM) -> int:
        return super().stop(grace, first)


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
            out[pid] = (cmd, thread_policies(pid))
        except OSError:  # the process ended meanwhile
            continue
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
