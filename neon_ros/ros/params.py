"""Parameter tables of the perception/inference nodes and their ``--help`` (no rclpy).

Each node lists its parameters once as ``name -> (default, description, (lo, hi) | None)``;
the node declares them from the table, and ``--help`` prints the same table.
"""

from __future__ import annotations

import sys

ParamTable = dict[str, tuple]


def wants_help(argv: list[str] | None = None) -> bool:
    """True if -h/--help is among the user's arguments (those before --ros-args)."""
    argv = sys.argv if argv is None else argv
    user = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    return "-h" in user or "--help" in user


def usage(doc: str, table: ParamTable, node: str) -> str:
    lines = [doc.strip(), "", f"usage: ros2 run neon_ros {node} --ros-args [-p NAME:=VALUE ...] "
             "[--params-file config/neon.yaml]", "", "parameters:"]
    for name, (default, desc, rng) in table.items():
        span = f" [{rng[0]}, {rng[1]}]" if rng else ""
        lines.append(f"  {name:22s} {default!r:14s} {desc}{span}")
    return "\n".join(lines)
