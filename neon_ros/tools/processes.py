"""Child processes of the tools and the tests: isolated environment, a log each, a clean stop.

No rclpy here. Children share a ROS 2 domain drawn from a named range, with discovery
limited to this machine; nodes that talk Unitree DDS get a domain away from the robot's 0,
so nothing started here sees (or moves) a robot on the network. Each child runs in its
own session on normal scheduling; ``stop`` sends SIGINT (rclpy's clean shutdown: the
bridge damps, files close), then SIGTERM, then SIGKILL, each after a grace period, to the
child's process group only.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from neon_ros.runtime.timing import child_normal_scheduling, task_ids
from neon_ros.tools import stack

# ROS 2 domain ranges. 0 is every other ROS 2 program's default; Fast DDS derives UDP ports
# from the id, so ids stay <= MAX_DOMAIN_ID.
TEST_ROS_DOMAINS = (1, 100)  # the test suite
TOOL_ROS_DOMAINS = (201, 230)  # neon-ros demo and bench, above the tests'
UNITREE_DDS_DOMAINS = (101, 200)  # Unitree DDS of sim_g1 + g1_bridge: the robot uses 0, the sim default 1
MAX_DOMAIN_ID = 232
# What a process copies from a child environment to join its ROS 2 domain.
ROS_DISCOVERY_KEYS = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")


def random_domain(domains: tuple[int, int], rng: random.Random | None = None) -> int:
    """A domain id drawn uniformly from the inclusive range ``domains``."""
    return (rng or random).randint(*domains)


def child_env(ros_domain_id: int | None = None, domains: tuple[int, int] = TOOL_ROS_DOMAINS,
              localhost_only: bool = True) -> dict[str, str]:
    """This process's environment for a child: ROS_DOMAIN_ID (random from ``domains`` if None)."""
    env = dict(os.environ)
    env.pop("CYCLONEDDS_HOME", None)  # build-time only (DESIGN.md section 6)
    env["ROS_DOMAIN_ID"] = str(ros_domain_id if ros_domain_id is not None else random_domain(domains))
    if localhost_only:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Jazzy / Kilted
        env["ROS_LOCALHOST_ONLY"] = "1"  # Humble
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def join_domain(env: dict[str, str]) -> None:
    """Put this process in the ROS 2 domain of ``env`` (for its own rclpy node, before rclpy.init)."""
    os.environ.update({key: env[key] for key in ROS_DISCOVERY_KEYS if key in env})


def pick_domains(ros_domain_id: int | None, dds_domain_id: int | None,
                 rng: random.Random | None = None) -> tuple[int, int]:
    """(ROS 2 domain, Unitree DDS domain): the given ids, else random from the tools' ranges."""
    ros = ros_domain_id if ros_domain_id is not None else random_domain(TOOL_ROS_DOMAINS, rng)
    dds = dds_domain_id if dds_domain_id is not None else random_domain(UNITREE_DDS_DOMAINS, rng)
    if not 0 <= ros <= MAX_DOMAIN_ID or not 0 <= dds <= MAX_DOMAIN_ID:
        raise ValueError(f"domain ids must be in [0, {MAX_DOMAIN_ID}], got ROS {ros}, Unitree DDS {dds}")
    return ros, dds


def executable(name: str) -> list[str]:
    """A console script of this package: next to the running Python, else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return [str(local)]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"executable {name!r} not found (is neon_ros installed in this environment?)")
    return [found]


def ros_args(params_file: Path | None, params: dict[str, object]) -> list[str]:
    """``--ros-args [--params-file F] -p k:=v ...`` (bools lower-case, as ROS parses them)."""
    args = ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for key, value in params.items():
        args += ["-p", f"{key}:={stack.param_text(value)}"]
    return args


def node_command(name: str, params: dict[str, object], params_file: Path | None = None) -> list[str]:
    """The command line of node executable ``name`` with parameter overrides."""
    return executable(name) + ros_args(params_file, params)


class Child:
    """A child process started at once: own session, normal scheduling, output in ``log_path``."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.cmd = cmd
        self.log_path = Path(log_path)
        self.stop_signal = ""  # the signal that ended it, once stopped
        self.returncode: int | None = None  # set by stop
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:  # the child holds its own descriptor
            self.popen = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          preexec_fn=child_normal_scheduling)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """The whole log so far ('' if it cannot be read)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for_line(self, text: str, timeout: float) -> bool:
        """Wait until ``text`` appears in the log (False on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def stop(self, grace: float = 8.0, first: signal.Signals = signal.SIGINT) -> int:
        """``first``, then SIGTERM, then SIGKILL, until it exits; returns its exit code."""
        stop_all([self], grace, first)
        return self.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_all(children: Iterable[Child], grace: float = 8.0, first: signal.Signals = signal.SIGINT) -> None:
    """Signal every running child, in the given order: ``first`` (wait ``grace``), SIGTERM, SIGKILL (3 s each)."""
    children = list(children)
    stages = [(first, grace)] + [(sig, 3.0) for sig in (signal.SIGTERM, signal.SIGKILL) if sig != first]
    for sig, wait in stages:
        running = [c for c in children if c.alive()]
        if not running:
            break
        for c in running:
            c.stop_signal = sig.name
            try:
                os.killpg(c.popen.pid, sig)  # the child's own group (start_new_session)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(c.alive() for c in running):
            time.sleep(0.05)
    for c in children:
        c.returncode = c.popen.poll()


@dataclass
class ProcessGroup:
    """Named children with one environment and a log directory; stopped in reverse start order."""

    env: dict[str, str]
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, cmd: list[str]) -> Child:
        child = Child(name, cmd, self.env, Path(self.log_dir) / f"{name}.log")
        self.children.append(child)
        return child

    def start_stack(self, params: dict[str, dict[str, object]], params_file: Path | None = None,
                    ready_timeout: float = 60.0) -> None:
        """Start the stack nodes named in ``params``, in the table's order, each with its simulation
        overrides and then ``params[name]``; wait for a node's ready line before the next."""
        for entry in sorted(map(stack.node, params), key=stack.STACK.index):  # KeyError: not a stack node
            child = self.start(entry.name, node_command(entry.name, {**entry.sim, **params[entry.name]}, params_file))
            if entry.ready and not child.wait_for_line(entry.ready, ready_timeout):
                raise RuntimeError(f"{entry.name} did not come up in {ready_timeout:g} s; log tail:\n{child.tail()}")

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.alive()]

    def stop(self, grace: float = 8.0, names: Iterable[str] | None = None) -> None:
        """Stop the named children (default all), the last started first."""
        chosen = [c for c in reversed(self.children) if names is None or c.name in names]
        stop_all(chosen, grace)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def thread_cpu_ns(pid: int) -> dict[int, tuple[str, int]]:
    """{thread id: (thread name, CPU ns so far)} of process ``pid`` (/proc/PID/task/*/schedstat);
    {} if the process is gone."""
    out: dict[int, tuple[str, int]] = {}
    try:
        tids = task_ids(pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                out[tid] = (f.read().strip(), ns)
        except (OSError, ValueError, IndexError):  # the thread ended meanwhile
            continue
    return out


def cpu_profile(before: dict[str, dict], after: dict[str, dict], seconds: float, top: int = 3) -> dict[str, dict]:
    """Per process, from two ``thread_cpu_ns`` snapshots ``seconds`` apart: % of one core in all
    (threads that ended meanwhile are not counted) and its busiest threads by name."""
    out = {}
    for name, threads in after.items():
        prev = before.get(name, {})
        used: dict[str, float] = {}
        for tid, (comm, ns) in threads.items():
            d = ns - prev.get(tid, (comm, 0))[1]
            used[comm] = used.get(comm, 0.0) + 100.0 * d / 1e9 / max(seconds, 1e-9)
        busiest = sorted(used.items(), key=lambda kv: -kv[1])[:top]
        out[name] = {"percent": round(sum(used.values()), 1), "threads": {k: round(v, 1) for k, v in busiest}}
    return out


def synthesize_speech(text: str, wav: Path, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """The spoken command as a WAV, with espeak-ng (DESIGN.md section 6: the local TTS)."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (Debian package espeak-ng; scripts/setup.sh installs it)")
    wav.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
                   check=True, capture_output=True, timeout=60)
    if not wav.is_file() or wav.stat().st_size < 1000:
        raise RuntimeError(f"espeak-ng wrote no audio to {wav}")
    return wav
