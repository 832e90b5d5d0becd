"""`neon-ros train`: train the action head on cached features of a data soup.

    neon-ros features --soup config/soup/sim.yaml --data-root DATA --out CACHE
    neon-ros train --data CACHE --soup config/soup/sim.yaml --out runs/sim --steps 2000
    neon-ros train ... --resume            # continue exactly where a killed run stopped
    torchrun --nproc_per_node 2 -m neon_ros.cli train ...   # DDP (gloo on CPU)

Outputs in --out: head.safetensors + head.json (the checkpoint the action_head node
loads), train_state.pt (resume state), train_log.csv (step, lr, loss per component,
samples/s) and eval_log.csv (held-out open-loop error vs hold-still, per component).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path


def _option_type(hint) -> type:
    """The argparse ``type`` of a TrainConfig field: int, float, str or Path, optionally ``| None``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(args) != 1 or args[0] not in (int, float, str, Path):
        raise TypeError(f"TrainConfig field type {hint} has no command-line form")
    return args[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field marked ``option`` (flag, type, default and help from it)."""
    from neon_ros.policy.train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["option"]:
            continue
        flag, text = "--" + f.name.replace("_", "-"), f.metadata["help"]
        if hints[f.name] is bool:
            parser.add_argument("--no-" + flag[2:] if f.default else flag, dest=f.name, default=argparse.SUPPRESS,
                                action="store_false" if f.default else "store_true",
                                help=f"no {text}" if f.default else text)
        elif f.default is dataclasses.MISSING:
            parser.add_argument(flag, required=True, type=_option_type(hints[f.name]), help=text)
        else:
            parser.add_argument(flag, type=_option_type(hints[f.name]), default=argparse.SUPPRESS,
                                help=text if f.default is None else f"{text} (default {f.default})")
    parser.add_argument("--soup", type=Path, default=None,
                        help="soup YAML: source weights, seed and held-out fraction come from it")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt if present")


def config_from_args(args: argparse.Namespace):
    """TrainConfig defaults, overridden by the soup (seed, held-out, weights), then by the options given."""
    from neon_ros.policy.train import TrainConfig

    values = {}
    if args.soup:
        from neon_ros.policy.soup import load_soup

        soup = load_soup(args.soup)
        values = {"seed": soup.seed, "held_out": soup.held_out, "weights": {s.name: s.weight for s in soup.sources}}
    given = vars(args)
    values.update({f.name: given[f.name] for f in dataclasses.fields(TrainConfig) if f.name in given})
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    from neon_ros.policy.train import train

    result = train(config_from_args(args), resume=args.resume)
    if result:
        print("held-out open-loop error (head vs hold-still):")
        for comp, r in result.items():
            print(f"  {comp:<15} {r['head_error']:.4f} vs {r['hold_still_error']:.4f} {r['unit']}  "
                  f"ratio {r['ratio']:.3f}")
        (Path(args.out) / "eval_final.json").write_text(json.dumps(result, indent=1))
    return 0
