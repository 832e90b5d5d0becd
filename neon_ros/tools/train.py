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
import json
from pathlib import Path

HELP = "train the action head on cached features of a data soup"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neon_ros.policy.train import TrainConfig

    d = TrainConfig(data=Path("."), out=Path("."))
    parser.add_argument("--data", required=True, type=Path, help="folder written by `neon-ros features`")
    parser.add_argument("--out", required=True, type=Path, help="run folder (checkpoint, logs, resume state)")
    parser.add_argument("--soup", type=Path, default=None,
                        help="soup YAML: source weights, seed and held-out fraction come from it")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt if present")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"global batch (default {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    parser.add_argument("--warmup", type=int, default=d.warmup, help=f"warm-up steps (default {d.warmup})")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    parser.add_argument("--aux-weight", type=float, default=d.aux_weight,
                        help="weight of the consistency loss on paired samples (stereo views, spoken/written)")
    parser.add_argument("--feature-dropout", type=float, default=d.feature_dropout,
                        help="element dropout on the cached features during training (regulariser)")
    parser.add_argument("--seed", type=int, default=None, help="sampler/init seed (default: the soup's, else 0)")
    parser.add_argument("--held-out", type=float, default=None, help="episode fraction held out (default: soup's)")
    parser.add_argument("--backbone", default=None, help="feature cache id when --data holds several")
    parser.add_argument("--d-model", type=int, default=d.d_model, help="head width")
    parser.add_argument("--layers", type=int, default=d.layers, help="head blocks")
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between held-out evaluations")
    parser.add_argument("--log-every", type=int, default=d.log_every, help="steps between CSV rows")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default; fix for exact resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace):
    from neon_ros.policy.train import TrainConfig

    seed, held_out, weights = 0, 0.15, {}
    if args.soup:
        from neon_ros.policy.soup import load_soup

        soup = load_soup(args.soup)
        seed, held_out, weights = soup.seed, soup.held_out, {s.name: s.weight for s in soup.sources}
    return TrainConfig(
        data=args.data, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
        weight_decay=args.weight_decay, aux_weight=args.aux_weight, feature_dropout=args.feature_dropout,
        seed=seed if args.seed is None else args.seed, held_out=held_out if args.held_out is None else args.held_out,
        weights=weights, backbone=args.backbone, d_model=args.d_model, layers=args.layers,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, log_every=args.log_every,
        threads=args.threads, progress=not args.no_progress)


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
