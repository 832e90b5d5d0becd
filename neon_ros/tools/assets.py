"""`neon-ros assets`: fetch, verify and locate the G1 MuJoCo model (the work is in neon_ros.sim.assets).

Prints the MJCF path on stdout (scripts/setup.sh runs ``neon-ros assets --quiet``); a
failure is one line on stderr that says what to do, and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neon_ros.sim import assets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="extract again even if the cache verifies")
    parser.add_argument("--wheel", type=Path, help=f"use this local {assets.WHEEL_NAME} instead of downloading")
    parser.add_argument("--quiet", action="store_true", help="print only the MJCF path")


def run(args: argparse.Namespace) -> int:
    try:
        path = assets.ensure(force=args.force, wheel=args.wheel)
    except assets.AssetError as e:
        print(f"neon-ros assets: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"G1 model (BSD-3-Clause, see {path.parent / 'NOTICE'}):", file=sys.stderr)
    print(path)
    return 0
