"""Start sim_g1 / g1_bridge as child processes (for the benchmark and the scripted demo).

An isolated environment by default: a random ROS_DOMAIN_ID with localhost-only discovery
and a Unitree DDS domain away from the robot's 0, so a demo on a robot's computer never
talks to the robot. Children are killed with the parent's ``ChildProcesses`` context.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from neon_ros.runtime.timing import child_normal_scheduling


def isolated_env(ros_domain: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CYCLONEDDS_HOME", None)
    env["ROS_DOMAIN_ID"] = str(ros_domain if ros_domain is not None else random.randint(1, 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOCALHOST_ONLY"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def random_dds_domain() -> int:
    return random.randint(101, 200)


def node_command(name: str, params: dict) -> list[str]:
    """`python -m neon_ros.nodes.NAME --ros-args -p k:=v ...` with this interpreter."""
    args: list[str] = []
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{key}:={text}"]
    return [sys.executable, "-m", f"neon_ros.nodes.{name}", "--ros-args", *args]


class ChildProcesses:
    """Children with logs in a temp dir; ``tail(name)`` shows a log; all stopped on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path | None = None):
        self.env = env
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="neon_bridge_"))
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        p = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=child_normal_scheduling)
        self.procs[name] = p
        return p

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def tail(self, name: str, chars: int = 2000) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
