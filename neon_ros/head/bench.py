"""`neon-ros bench head`: batch-1 latency of the action head, parameters, FLOPs and the FLOP floor.

Runs the head (a checkpoint, or a random one of the default size) from torch eager and
from onnxruntime (1 thread and all threads), plus the full ``HeadRuntime.predict`` call
the node makes. The floor is FLOPs per step divided by the GFLOP/s this CPU reaches on a
matmul (GEMM: compute peak; GEMV: the batch-1 shape, bound by memory), measured here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neon_ros.bench import percentiles

HELP = "action head batch-1 latency (torch, onnxruntime), parameters, FLOPs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1]
    parser.add_argument("--checkpoint", type=Path, help="head checkpoint (default: a random head of the default config)")
    parser.add_argument("--iters", type=int, default=2000, help="timed calls per case (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    parser.add_argument("--matmul-seconds", type=float, default=0.5,
                        help="time spent measuring each matmul rate for the FLOP floor (default 0.5)")


def _time_calls(fn, iters: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - t0
    return percentiles(samples * 1e3)  # ms


def matmul_gflops(n: int, m: int, k: int, threads: int, seconds: float = 0.5) -> float:
    """Achieved GFLOP/s of a float32 (n x k) @ (k x m) product in torch with ``threads`` threads."""
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, k), torch.randn(k, m)
        for _ in range(3):
            a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
        return 2.0 * n * m * k * reps / (time.perf_counter() - t0) / 1e9
    finally:
        torch.set_num_threads(prev)


def _random_checkpoint(folder: Path) -> Path:
    from neon_ros.head import checkpoint
    from neon_ros.head.actions import NormStats
    from neon_ros.head.model import ActionHead, HeadConfig

    model = ActionHead(HeadConfig())
    cfg, rng, stats = model.cfg, np.random.default_rng(0), NormStats()
    for key, shape in {"proprio": (cfg.proprio_dim,), **cfg.output_shapes()}.items():
        stats.update(key, rng.normal(size=(64, *shape)), "g1")
    return checkpoint.save(folder / "head", model, backbone_id="random", stats=stats)


def run(args: argparse.Namespace) -> int:
    from neon_ros.head import checkpoint, onnx_export
    from neon_ros.head.runtime import HeadRuntime

    if args.iters < 10 or args.warmup < 0:
        print("neon-ros bench head: --iters must be >= 10 and --warmup >= 0")
        return 2
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        ck_path = args.checkpoint or _random_checkpoint(Path(tmp))
        ck = checkpoint.load(ck_path)
        model = ck.build_model()
        cfg = model.cfg
        params, flops = model.num_params(), model.flops_per_step()
        print(f"head: {params / 1e6:.2f} M parameters, {flops / 1e6:.1f} MFLOP per step (batch 1), "
              f"features {cfg.feature_dim} from {ck.backbone_id!r}, d_model {cfg.d_model}, {cfg.layers} layers")
        onnx_path = Path(tmp) / "head.onnx"
        rep = onnx_export.export_onnx(model, onnx_path, weights_sha256=ck.weights_sha256)
        print(f"ONNX export {rep.seconds:.1f} s, parity vs torch: "
              + ", ".join(f"batch {b} {d:.1e}" for b, d in rep.parity.items()))

        x = onnx_export.example_inputs(model, 1, scale=3.0)
        x[3].zero_()  # the G1
        feed = {n: t.numpy() for n, t in zip(onnx_export.INPUT_NAMES, x, strict=True)}
        results: list[tuple[str, int, dict]] = []
        prev = torch.get_num_threads()
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                results.append(("torch eager", threads, _time_calls(lambda: model.forward_unchecked(*x),
                                                                    args.iters, args.warmup)))
        torch.set_num_threads(prev)
        for threads in sorted({1, cores}):
            sess = onnx_export.ort_session(onnx_path, threads)
            results.append(("onnxruntime", threads, _time_calls(lambda s=sess: s.run(None, feed),
                                                                args.iters, args.warmup)))
        rt = HeadRuntime(ck, "onnxruntime", threads=1, onnx_path=onnx_path)
        rng = np.random.default_rng(1)
        feats, q = rng.normal(size=cfg.feature_dim), np.zeros(29)
        results.append(("HeadRuntime.predict (ort)", 1, _time_calls(lambda: rt.predict(feats, q, q),
                                                                     args.iters, args.warmup)))

    gemm = {t: matmul_gflops(512, 512, 512, t, args.matmul_seconds) for t in sorted({1, cores})}
    gemv = {t: matmul_gflops(1, cfg.d_model * cfg.mlp_ratio, cfg.d_model, t, args.matmul_seconds) for t in sorted({1, cores})}
    print(f"CPU: {cores} cores; float32 matmul GEMM 512^3: "
          + ", ".join(f"{g:.1f} GFLOP/s ({t} thr)" for t, g in gemm.items())
          + f"; GEMV 1x{cfg.d_model}x{cfg.d_model * cfg.mlp_ratio}: "
          + ", ".join(f"{g:.1f} GFLOP/s ({t} thr)" for t, g in gemv.items()))
    print(f"{'case':28s} {'threads':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
          f"{'floor GEMM ms':>13s} {'floor GEMV ms':>13s}")
    for name, threads, p in results:
        floor_gemm = flops / (gemm[threads] * 1e9) * 1e3
        floor_gemv = flops / (gemv[threads] * 1e9) * 1e3
        print(f"{name:28s} {threads:7d} {p['p50']:8.3f} {p['p99']:8.3f} {p['max']:8.3f} "
              f"{floor_gemm:13.3f} {floor_gemv:13.3f}")
    best = min(p["p99"] for name, _, p in results if name == "onnxruntime")
    print(f"goal onnxruntime p99 <= 1 ms: best measured p99 {best:.3f} ms "
          f"({'met' if best <= 1.0 else 'not met'} on this machine under its current load)")
    return 0
