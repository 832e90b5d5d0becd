"""`neon-ros demo`: the whole Neon loop on a simulated G1, with a report at the end.

    neon-ros demo                          # ~30 s, task reach_cup: "reach the red cup"
    neon-ros demo --seconds 10 --headless  # CI / no terminal redraw, no browser
    neon-ros demo --task wave_left         # or any instruction text: --task "wave the left hand"

What runs: sim_g1 (MuJoCo G1 on a gantry, rendered head camera) -> camera_buffer ->
backbone (cpu_default: EfficientNet-Lite0 + MiniLM) -> action_head (a head trained on
the simulated soup the first time, then cached) -> g1_bridge (lowcmd over real Unitree
DDS on the loopback) -> sim_g1; speech_in hears the task spoken by espeak-ng (Whisper);
speech_out writes the narration as WAVs. All nodes get a random ROS_DOMAIN_ID with
localhost-only discovery and a random Unitree DDS domain, so nothing else is disturbed.

While it runs: live rates, latencies, instruction, narration and hand-to-cup distance.
At the end: reports/demo-<time>/report.md (reports/latest points to it) (+ report.html, summary.json) with a plot of
commanded vs measured joints, latency histograms, rendered frames, palm-to-cup distance,
the narration WAVs, and whether the task was achieved (the simulated soup's own success
test on forward kinematics of the measured joints, as `neon-ros eval` scores the head).
Take over meanwhile from another terminal: ROS_DOMAIN_ID=<shown> neon-ros teleop ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neon_ros.tools.demo.tasks import DEFAULT_TASK, known_tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    tasks = "; ".join(f"{t.name}: {t.instruction!r}" for t in known_tasks().values())
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of live run (default 30)")
    parser.add_argument("--task", default=DEFAULT_TASK,
                        help=f"task name or any instruction text (default {DEFAULT_TASK}); known: {tasks}")
    parser.add_argument("--headless", action="store_true",
                        help="plain status lines (no in-place redraw), never open a browser")
    parser.add_argument("--output", type=Path, default=Path("reports"), help="reports root (default reports/)")
    parser.add_argument("--checkpoint", default="", help="head checkpoint (default: the cached demo head)")
    parser.add_argument("--quick", action="store_true", help="train the quick demo head if none is cached")
    parser.add_argument("--ros-domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default random 201..230)")
    parser.add_argument("--dds-domain-id", type=int, default=None,
                        help="Unitree DDS domain of sim + bridge (default random 101..200)")
    parser.add_argument("--no-localhost-only", action="store_true",
                        help="let ROS 2 discovery leave this machine (default: localhost only)")
    parser.add_argument("--startup-timeout", type=float, default=240.0,
                        help="s to wait for the first action chunk (default 240)")
    parser.add_argument("--instruction-timeout", type=float, default=60.0,
                        help="s to wait for speech recognition before using the typed task (default 60)")
    parser.add_argument("--record", action="store_true",
                        help="also record the training topics to <report>/bag (mcap) for neon-ros bag2dataset")
    parser.add_argument("--camera-rate", type=float, default=0.0,
                        help="simulated camera Hz (default 0: the rate the demo head was trained on)")


def run(args: argparse.Namespace) -> int:
    from neon_ros.tools.demo.run import DemoConfig, run_demo

    try:
        cfg = DemoConfig(seconds=args.seconds, task=args.task, headless=args.headless, output_root=args.output,
                         checkpoint=args.checkpoint, quick=args.quick, ros_domain_id=args.ros_domain_id,
                         dds_domain_id=args.dds_domain_id, localhost_only=not args.no_localhost_only,
                         startup_timeout=args.startup_timeout, instruction_timeout=args.instruction_timeout,
                         camera_rate=args.camera_rate, record=args.record)
    except (ValueError, FileNotFoundError) as exc:
        print(f"neon-ros demo: {exc}", file=sys.stderr)
        return 2
    try:
        code, _ = run_demo(cfg)
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"neon-ros demo: {exc}", file=sys.stderr)
        return 1
    return code
