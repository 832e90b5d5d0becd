"""`neon-ros`: the command line. Each subcommand lives in its own module.

A module named here exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their subcommand runs, so
``neon-ros --help`` is instant and a missing optional dependency only affects its command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line per subcommand.
COMMANDS: dict[str, tuple[str, str]] = {
    "assets": ("neon_ros.assets", "fetch, verify and locate the G1 MuJoCo model"),
    "bench": ("neon_ros.bench", "benchmarks: medians and ratios measured in one run"),
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
