"""`neon-ros bench backbone`: per-clip time and peak memory of each backbone preset on this CPU.

cpu_default runs with its real weights; the other architectures run as tiny random
configs (their real sizes need a GPU and weights: see the README section "Backbones" for the Orin
budget on paper). Each preset is measured in a fresh Python process, so its peak RSS
(resident memory, includes Python + torch + transformers) is its own. Figures are medians
and p99 over ``--runs`` clips after one warm-up; never a pass/fail threshold. Wall time
depends on what else the machine runs, so the process CPU time per clip (all threads) is
printed too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from neon_ros.tools.bench import BENCHES

DEFAULT_PRESETS = ("cpu_default", "qwen2_5_omni_3b", "cosmos_reason2_2b", "tribe_v2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), metavar="PRESET",
                        help=f"presets to measure (default: {' '.join(DEFAULT_PRESETS)})")
    parser.add_argument("--runs", type=int, default=10, help="timed clips per preset after one warm-up (default 10)")
    parser.add_argument("--real", action="store_true",
                        help="load the real weights of the non-cpu presets (needs $NEON_MODELS) instead of tiny configs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per preset instead of a table")
    parser.add_argument("--one", metavar="PRESET", help=argparse.SUPPRESS)  # worker mode (one fresh process)


def measure(preset: str, runs: int, tiny: bool, threads: int) -> dict:
    """Load one preset and time its clip encoding (and cpu_default's per-frame path)."""
    import numpy as np
    import torch

    from neon_ros.backbones import load_backbone
    from neon_ros.runtime.timing import percentiles

    if threads > 0:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    bb = load_backbone(preset, tiny=tiny and preset != "cpu_default")
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (bb.num_frames, *bb.frame_size, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32) if bb.has_audio else None
    bb.encode(clip, "pick up the red cup", audio)  # warm-up
    clip_ms, clip_cpu_ms = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        bb.encode(clip, "pick up the red cup", audio)
        clip_ms.append((time.perf_counter() - t) * 1e3)
        clip_cpu_ms.append((time.process_time() - c) * 1e3)
    out = {
        "preset": preset, "backbone_id": bb.backbone_id, "tiny": bool(bb.config.tiny), "width": bb.width,
        "frames": bb.num_frames, "frame_size": list(bb.frame_size), "params": bb.num_parameters(),
        "load_s": load_s, "clip_ms": percentiles(clip_ms), "clip_cpu_ms": percentiles(clip_cpu_ms),
        "threads": torch.get_num_threads(),
    }
    if hasattr(bb, "encode_frame"):
        frame_ms, frame_cpu_ms, pool_ms = [], [], []
        maps = []
        for frame in clip:
            t, c = time.perf_counter(), time.process_time()
            maps.append(bb.encode_frame(frame))
            frame_ms.append((time.perf_counter() - t) * 1e3)
            frame_cpu_ms.append((time.process_time() - c) * 1e3)
        for _ in range(runs):
            t = time.perf_counter()
            bb.pool(maps, "pick up the red cup")
            pool_ms.append((time.perf_counter() - t) * 1e3)
        out["frame_ms"] = percentiles(frame_ms)
        out["frame_cpu_ms"] = percentiles(frame_cpu_ms)
        out["pool_ms"] = percentiles(pool_ms)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def _row(r: dict) -> str:
    extra = ""
    if "frame_ms" in r:
        extra = (f"  per frame {r['frame_ms']['p50']:.1f} ms (CPU {r['frame_cpu_ms']['p50']:.0f} ms), "
                 f"pool {r['pool_ms']['p50']:.2f} ms")
    kind = "tiny" if r["tiny"] else "real"
    return (f"{r['preset']:<18} {kind:<4} {r['params'] / 1e6:8.2f}M  T={r['frames']:<2} "
            f"{r['frame_size'][0]}x{r['frame_size'][1]}  clip p50 {r['clip_ms']['p50']:8.1f} ms  "
            f"p99 {r['clip_ms']['p99']:8.1f} ms  (CPU time {r['clip_cpu_ms']['p50']:7.0f} ms)  load {r['load_s']:5.1f} s  peak RSS {r['peak_rss_mb']:7.0f} MB{extra}")


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print("neon-ros bench backbone: --runs must be >= 1", file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(measure(args.one, args.runs, not args.real, args.threads)))
        return 0
    results = []
    for preset in args.presets:
        cmd = [sys.executable, "-m", "neon_ros.tools.bench.backbone", "--one", preset, "--runs", str(args.runs),
               "--threads", str(args.threads)] + (["--real"] if args.real else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
            print(f"{preset}: failed: {tail[0]}", file=sys.stderr)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        print(json.dumps(result) if args.json else _row(result), flush=True)
    return 0 if len(results) == len(args.presets) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neon-ros bench backbone", description=BENCHES["backbone"])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
