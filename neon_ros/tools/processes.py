"""Child processes of the demo: isolated environment, logs, and a clean stop (no rclpy here).

Every child gets the same ROS 2 domain (random unless given) with discovery limited to
this machine, and the nodes that talk Unitree DDS get a random Unitree domain, so a demo
never sees (or moves) a robot on the network. Children run in their own process groups;
``stop`` sends SIGINT (rclpy's clean shutdown: the bridge damps, files close), then
SIGTERM, then SIGKILL, each after a grace period, to that group only.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from neon_ros.runtime.timing import child_normal_scheduling

# 0 is every other ROS 2 program's default; tests draw from 1..100 (test/support.py), so a
# demo stays above them (and <= 230: Fast DDS derives UDP ports from the domain id).
ROS_DOMAIN_RANGE = (201, 230)
DDS_DOMAIN_RANGE = (101, 200)  # Unitree DDS: the robot uses 0; the sim default is 1


def child_env(ros_domain_id: int, localhost_only: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CYCLONEDDS_HOME", None)  # build-time only (DESIGN.md section 6)
    env["ROS_DOMAIN_ID"] = str(ros_domain_id)
    if localhost_only:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Jazzy / Kilted
        env["ROS_LOCALHOST_ONLY"] = "1"  # Humble
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def pick_domains(ros_domain_id: int | None, dds_domain_id: int | None,
                 rng: random.Random | None = None) -> tuple[int, int]:
    rng = rng or random.Random()
    ros = ros_domain_id if ros_domain_id is not None else rng.randint(*ROS_DOMAIN_RANGE)
    dds = dds_domain_id if dds_domain_id is not None else rng.randint(*DDS_DOMAIN_RANGE)
    if not 0 <= ros <= 232 or not 0 <= dds <= 232:
        raise ValueError(f"domain ids must be in [0, 232], got ROS {ros}, Unitree DDS {dds}")
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
        v = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{key}:={v}"]
    return args


@dataclass
class Child:
    name: str
    cmd: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    started: float = 0.0
    returncode: int | None = None
    stop_signal: str = ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_for_line(self, text: str, timeout: float) -> bool:
        """Wait until ``text`` appears in the child's log (False on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.log_path.read_text(errors="replace"):
                    return True
            except OSError:
                pass
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """Starts named children with one environment; stops them all, in reverse order."""

    env: dict[str, str]
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, cmd: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name, cmd, self.log_dir / f"{name}.log")
        log = open(child.log_path, "w")
        try:
            child.popen = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           preexec_fn=child_normal_scheduling)
        finally:
            log.close()  # the child holds its own descriptor
        child.started = time.monotonic()
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.popen is not None and not c.alive()]

    def stop(self, grace: float = 8.0) -> None:
        """SIGINT every child, wait; SIGTERM the rest, wait; SIGKILL what remains."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            running = [c for c in reversed(self.children) if c.alive()]
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
        for c in self.children:
            if c.popen is not None:
                c.returncode = c.popen.poll()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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
