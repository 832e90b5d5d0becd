"""`neon-ros bench train`: training samples/s on cached features; feature extraction clips/s.

Training: the default head (d_model 512, 2 blocks) on an in-memory split of random
2048-wide features with full G1 labels, AdamW steps at the given batch size; prints the
median step time, samples/s and the implied time of an epoch of 100,000 cached samples.
Extraction: cpu_default over clips of 8 frames at 256x256, encoded one clip per call
(the plain path) and as overlapping sliding windows through the per-frame memo
(the `neon-ros features` path, one new frame per sample).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neon_ros.runtime.timing import percentiles


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=20000, help="in-memory cached samples")
    parser.add_argument("--batch-size", type=int, default=256, help="training batch")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--clips", type=int, default=16, help="clips for the extraction benchmark (0 = skip)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--epoch", type=int, default=100_000, help="epoch size the estimate is for")


def synthetic_split(n: int, width: int = 2048, seed: int = 0):
    from neon_ros.data.training import Split
    from neon_ros.policy.schema import COMPONENTS, MASK_SHAPES, PROPRIO_DIM, TARGET_SHAPES

    rng = np.random.default_rng(seed)
    t = {c: torch.from_numpy(rng.standard_normal((n, *TARGET_SHAPES[c]), dtype=np.float32)) for c in COMPONENTS}
    return Split(ids=np.array([f"s{i}" for i in range(n)]), source=np.array(["bench"] * n),
                 features=torch.from_numpy(rng.standard_normal((n, width), dtype=np.float32)),
                 proprio=torch.from_numpy(rng.standard_normal((n, PROPRIO_DIM), dtype=np.float32)),
                 proprio_mask=torch.ones(n, PROPRIO_DIM), embodiment=torch.zeros(n, dtype=torch.long), targets=t,
                 masks={c: torch.ones(n, *MASK_SHAPES[c]) for c in COMPONENTS},
                 raw_targets={c: v.numpy() for c, v in t.items()}, partner=torch.full((n,), -1, dtype=torch.long))


def bench_training(samples: int, batch_size: int, steps: int) -> dict:
    from neon_ros.policy.model import ActionHead, HeadConfig
    from neon_ros.policy.soup import SoupSampler
    from neon_ros.policy.train import TrainConfig, batch_loss, param_groups

    split = synthetic_split(samples)
    sampler = SoupSampler({"bench": np.arange(samples)}, {"bench": 1.0}, seed=0)
    model = ActionHead(HeadConfig())
    opt = torch.optim.AdamW(param_groups(model, TrainConfig.weight_decay), lr=1e-3)  # as in training
    times = []
    for step in range(steps + 3):
        t0 = time.perf_counter()
        loss, _ = batch_loss(model, split.batch(sampler.batch(step, batch_size)), 0.0, split)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - t0)
    p = percentiles(times)
    return {"step_p50_ms": p["p50"] * 1e3, "step_p99_ms": p["p99"] * 1e3,
            "samples_per_s": batch_size / p["p50"], "params_M": model.num_params() / 1e6}


def bench_extraction(clips: int) -> dict:
    from neon_ros.backbones import load_backbone
    from neon_ros.tools.features import FrameMemo

    bb = load_backbone("cpu_default")
    h, w = bb.frame_size
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (clips + bb.num_frames, h, w, 3), dtype=np.uint8)
    windows = [video[i:i + bb.num_frames] for i in range(clips)]
    bb.encode_batch(windows[:1], ["warm up"])
    t0 = time.perf_counter()
    for c in windows:
        bb.encode_batch([c], ["reach the red cup"])
    plain = clips / (time.perf_counter() - t0)
    memo = FrameMemo(bb)
    t0 = time.perf_counter()
    for start in range(0, clips, 8):
        memo.encode_batch(windows[start:start + 8], ["reach the red cup"] * len(windows[start:start + 8]))
    return {"clips_per_s_plain": plain, "clips_per_s_sliding_memo": clips / (time.perf_counter() - t0),
            "backbone": bb.backbone_id}


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    tr = bench_training(args.samples, args.batch_size, args.steps)
    epoch_min = args.epoch / tr["samples_per_s"] / 60
    print(f"training (head {tr['params_M']:.2f}M params, batch {args.batch_size}, {torch.get_num_threads()} threads): "
          f"step p50 {tr['step_p50_ms']:.1f} ms, p99 {tr['step_p99_ms']:.1f} ms -> "
          f"{tr['samples_per_s']:.0f} samples/s; an epoch of {args.epoch} cached samples: {epoch_min:.1f} min "
          f"(goal <= 10 min)")
    if args.clips:
        ex = bench_extraction(args.clips)
        print(f"feature extraction ({ex['backbone']}, 8x256x256 clips): {ex['clips_per_s_plain']:.2f} clips/s "
              f"one clip per call; {ex['clips_per_s_sliding_memo']:.2f} clips/s as sliding windows with the "
              f"per-frame memo (`neon-ros features`)")
    return 0
