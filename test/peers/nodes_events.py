"""Helpers for the perception/inference node tests: start nodes, read nodes_driver events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from neon_ros.tools.processes import ros_args
from test.support import REPO, Proc, python


def node_cmd(name: str, params: dict | None = None, params_file: bool = False) -> list[str]:
    """Command line of one Neon node with ``-p name:=value`` overrides."""
    return python("-m", f"neon_ros.nodes.{name}") + ros_args(REPO / "config" / "neon.yaml" if params_file else None,
                                                             params or {})


def start_node(name: str, env: dict, log_dir: Path, params: dict | None = None,
               params_file: bool = False) -> Proc:
    return Proc(node_cmd(name, params, params_file), env, log_dir / f"{name}.log")


def run_driver(env: dict, *args: str, timeout: float = 90.0) -> list[dict]:
    """Run the driver peer to completion; return its events (asserts it ran cleanly)."""
    out = subprocess.run(python("-m", "test.peers.nodes_driver", *args), env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0 and "DONE" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    return events(out.stdout)


def events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("EVENT ")]


def of(evs: list[dict], kind: str, **match) -> list[dict]:
    return [e for e in evs if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def last_diag(evs: list[dict], name: str) -> dict | None:
    d = of(evs, "diag", name=name)
    return d[-1] if d else None


READY = {"camera_buffer": "clip T=", "backbone": "loaded ", "action_head": "max feature age"}


def wait_ready(proc: Proc, name: str, timeout: float = 90.0) -> None:
    """Block until node ``name`` logged that it is set up (asserts it did, with its log)."""
    from test.support import wait_for

    ok = wait_for(lambda: READY[name] in proc.output() or not proc.alive(), timeout, interval=0.2)
    assert ok and proc.alive(), f"{name} did not start:\n{proc.output()[-4000:]}"
