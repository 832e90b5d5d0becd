"""Stage ``demo`` of `neon-ros bench stack`: the live loop as `neon-ros demo` runs it.

Runs `neon-ros demo --headless` (its own node parameters, head and camera; a child process,
so its rclpy and the bench's stay apart) and reads the run's summary.json: camera ->
features and camera -> chunk p50/p99, the rate of every topic, CPU per node, each latency
also as a ratio of the same run's camera frame period, against the goals of issue [15]
(camera >= 10 Hz, features >= 8 Hz, camera -> chunk p99 <= 150 ms).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from neon_ros import contract

GOALS = {"camera_hz": 10.0, "features_hz": 8.0, "camera_to_chunk_p99_ms": 150.0}
LATENCIES = {"camera -> features": "camera -> features", "camera -> chunk": "camera -> action chunk"}


def run_live_demo(seconds: float, output: Path, task: str = "") -> Path:
    """Run the demo headless for ``seconds`` of live stack; its report directory."""
    cmd = [sys.executable, "-m", "neon_ros.cli", "demo", "--headless", "--seconds", f"{seconds:g}",
           "--output", str(output)] + (["--task", task] if task else [])
    code = subprocess.run(cmd, check=False).returncode
    reports = sorted(p for p in output.glob("demo-*") if (p / "summary.json").is_file())
    if not reports:
        raise RuntimeError(f"`neon-ros demo` exited {code} without a report in {output}")
    return reports[-1]


def figures(summary: dict) -> dict:
    """The stage's figures from a demo summary.json: rates, latencies (and / frame period), CPU, goals."""
    rates = summary["mean_rates_hz"]
    camera_hz = float(rates.get(contract.TOPIC_CAMERA, 0.0))
    period_ms = 1e3 / camera_hz if camera_hz > 0 else float("nan")
    lat = {}
    for name, key in LATENCIES.items():
        p = summary["latency_ms"].get(key, {})
        lat[name] = {q: p.get(q, float("nan")) for q in ("p50", "p99", "max", "n")}
        lat[name] |= {f"{q}_frames": round(p.get(q, float("nan")) / period_ms, 2) for q in ("p50", "p99")}
    cpu = {name: v["percent"] for name, v in summary.get("cpu_percent_live", {}).items()}
    met = {"camera_hz": camera_hz >= GOALS["camera_hz"],
           "features_hz": float(rates.get(contract.TOPIC_FEATURES, 0.0)) >= GOALS["features_hz"],
           "camera_to_chunk_p99_ms": lat["camera -> chunk"]["p99"] <= GOALS["camera_to_chunk_p99_ms"]}
    return {"rates_hz": rates, "frame_period_ms": round(period_ms, 1), "latency_ms": lat, "cpu_percent": cpu,
            "cpu_percent_total": round(sum(cpu.values()), 1), "achieved": summary.get("achieved"), "goals_met": met}


def print_figures(f: dict, report: Path) -> None:
    print(f"live demo ({report}): frame period {f['frame_period_ms']} ms; task achieved: {f['achieved']}")
    print("  rates Hz: " + ", ".join(f"{t} {r:g}" for t, r in f["rates_hz"].items()))
    for name, p in f["latency_ms"].items():
        print(f"  {name}: p50 {p['p50']} ms ({p['p50_frames']} frame periods), p99 {p['p99']} ms "
              f"({p['p99_frames']} frame periods), max {p['max']} ms (n={p['n']})")
    print("  CPU % of one core: " + ", ".join(f"{n} {c:g}" for n, c in sorted(f["cpu_percent"].items(),
                                                                          key=lambda kv: -kv[1]))
          + f"; {f['cpu_percent_total']:g} in all")
    print("  goals: " + ", ".join(f"{g} {GOALS[g]:g}: {'met' if ok else 'NOT met'}" for g, ok in f["goals_met"].items()))


def demo_stage(seconds: float, workdir: Path) -> dict:
    report = run_live_demo(seconds, workdir / "demo")
    out = figures(json.loads((report / "summary.json").read_text()))
    print_figures(out, report)
    return out | {"report": str(report)}
