"""`neon-ros bench NAME`: benchmarks that report medians and percentiles from one run.

Never a timed assertion: these print figures for the README and closing notes.
Each entry names a module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "benchmarks: medians and ratios measured in one run"

# name -> (module, one-line help). Each area adds its own line.
BENCHES: dict[str, tuple[str, str]] = {
    "bridge": ("neon_ros.tools.bench.bridge", "500 Hz loop period error with sim_g1; cost of one safety+LowCmd+CRC step"),
    "head": ("neon_ros.tools.bench.head", "action head batch-1 latency (torch, onnxruntime), parameters, FLOPs"),
    "backbone": ("neon_ros.tools.bench.backbone", "per-clip time and peak memory of each backbone preset"),
    "stack": ("neon_ros.tools.bench.stack", "camera->chunk and chunk->LowCmd latency, head step, 20 Hz period error"),
    "train": ("neon_ros.tools.bench.train", "training samples/s on cached features; feature extraction clips/s"),
    "voice": ("neon_ros.tools.bench.voice", "utterance end -> instruction, narration -> audio ready"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    listing = "; ".join(f"{n}: {h}" for n, (_, h) in BENCHES.items())
    parser.add_argument("bench", choices=sorted(BENCHES), metavar="NAME", help=listing)
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of that benchmark (NAME --help)")


def run(args: argparse.Namespace) -> int:
    module_name, help_text = BENCHES[args.bench]
    module = importlib.import_module(module_name)  # only the chosen benchmark's imports
    parser = argparse.ArgumentParser(prog=f"neon-ros bench {args.bench}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.options)) or 0)


def percentiles(samples, qs=(50, 99)) -> dict[str, float]:
    """p50/p99/max of a sequence of numbers (same unit in, same unit out)."""
    import numpy as np

    arr = np.asarray(list(samples), dtype=np.float64)
    if arr.size == 0:
        return {f"p{q}": float("nan") for q in qs} | {"max": float("nan"), "n": 0}
    out = {f"p{q}": float(np.percentile(arr, q)) for q in qs}
    out["max"] = float(arr.max())
    out["n"] = int(arr.size)
    return out
