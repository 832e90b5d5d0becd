"""`neon-ros`: the command line. Each subcommand lives in its own module.

A module named here exposes ``add_arguments(parser)`` and ``run(args) -> int``; its
one-line help is written here. Modules are imported only when their subcommand runs, so
``neon-ros --help`` is instant and a missing optional dependency only affects its command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line per subcommand.
COMMANDS: dict[str, tuple[str, str]] = {
    "assets": ("neon_ros.tools.assets", "fetch, verify and locate the G1 MuJoCo model"),
    "demo": ("neon_ros.tools.demo.cli", "run the whole loop on a simulated G1 and write a report"),
    "train": ("neon_ros.tools.train", "train the action head on cached features of a data soup"),
    "eval": ("neon_ros.tools.evaluate", "run a trained head closed-loop in sim_g1 and report success per task"),
    "xembody": ("neon_ros.tools.cross_embodiment", "measure what another robot's demonstrations do for the G1 "
                "(relative vs absolute actions), closed-loop in simulation"),
    "features": ("neon_ros.tools.features", "run a frozen backbone once over a dataset and cache its features"),
    "export": ("neon_ros.tools.export", "export the head (or a backbone's vision tower) to ONNX / TensorRT"),
    "bag2dataset": ("neon_ros.tools.bag2dataset", "turn a recorded rosbag2 session into G1 teleop episodes"),
    "teleop": ("neon_ros.tools.teleop", "override the policy from the keyboard or a script"),
    "bench": ("neon_ros.tools.bench", "benchmarks: medians and ratios measured in one run"),
    "security": ("neon_ros.tools.security", "write an SROS2 keystore: one enclave per node, who may move the robot"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neon-ros",
        description="Neon: frozen video model + tiny action head for the Unitree G1.",
        epilog="Run `neon-ros COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (its options are its own).
        if argv and argv[0] == name:
            importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
