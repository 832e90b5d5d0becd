"""Parameter tables of the Neon nodes and their ``--help`` (no rclpy).

Each node lists its parameters once, as a module-level ``PARAMETERS: ParamTable``; it
declares them from the table (``rosutil.declare_parameters``: read-only, with the
description and range), and ``--help`` prints the same table.
"""

from __future__ import annotations

import sys
from typing import NamedTuple


class Param(NamedTuple):
    """One node parameter; the default's type is the parameter's type."""

    default: bool | int | float | str | list[str]
    description: str
    limits: tuple[float, float] | None = None  # (lo, hi), inclusive; numbers only


ParamTable = dict[str, Param]


def scheduling_params(nice: int = 0, slice_us: float = 0.0) -> ParamTable:
    """The normal-priority scheduling parameters every node takes (``rosutil.apply_scheduling``),
    with this node's defaults. rt_priority, where a node has it, wins over both."""
    return {
        "nice": Param(nice, "nice value of the node's threads: > 0 yields the CPU to the control path when the "
                            "cores are busy (speech, never on it); < 0 needs CAP_SYS_NICE", (-20, 19)),
        "slice_us": Param(slice_us, "time slice the node's threads ask of the fair scheduler, us (Linux >= 6.12; "
                                    "the same CPU share, but a thread that wakes preempts a busy one at once; "
                                    "0 = the kernel's default)", (0.0, 100000.0)),
    }


def wants_help(argv: list[str] | None = None) -> bool:
    """True if -h/--help is among the user's arguments (those before --ros-args)."""
    argv = sys.argv if argv is None else argv
    user = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    return "-h" in user or "--help" in user


def usage(doc: str, table: ParamTable, node: str) -> str:
    lines = [doc.strip(), "", f"usage: ros2 run neon_ros {node} --ros-args [-p NAME:=VALUE ...] "
             "[--params-file config/neon.yaml]", "",
             "parameters (read once at start; `ros2 param set` is refused):"]
    for name, (default, desc, limits) in table.items():
        span = f" [{limits[0]}, {limits[1]}]" if limits else ""
        lines.append(f"  {name:24s} {default!r:14s} {desc}{span}")
    return "\n".join(lines)
