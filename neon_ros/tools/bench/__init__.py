"""`neon-ros bench NAME`: benchmarks that report medians and percentiles from one run.

Never a timed assertion: these print figures for the README and closing notes.
Each entry names a module of this package exposing ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

# name -> one-line help; the benchmark is this package's module of that name. Each area adds its own line.
BENCHES: dict[str, str] = {
    "bridge": "500 Hz loop period error with sim_g1; cost of one safety+LowCmd+CRC step",
    "head": "action head batch-1 latency (torch, onnxruntime), parameters, FLOPs",
    "backbone": "per-clip time and peak memory of each backbone preset",
    "stack": "camera->chunk and chunk->LowCmd latency, head step, step gaps; the live demo loop: rates, latencies, CPU",
    "train": "training samples/s on cached features; feature extraction clips/s",
    "voice": "utterance end -> instruction, narration -> audio ready",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    listing = "; ".join(f"{n}: {h}" for n, h in BENCHES.items())
    parser.add_argument("bench", choices=sorted(BENCHES), metavar="NAME", help=listing)
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of that benchmark (NAME --help)")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"{__name__}.{args.bench}")  # only the chosen benchmark's imports
    parser = argparse.ArgumentParser(prog=f"neon-ros bench {args.bench}", description=BENCHES[args.bench])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.options)) or 0)

