"""`neon-ros export`: the action head (or a backbone's vision tower) to ONNX and TensorRT.

Head: ``--checkpoint PATH --out DIR`` writes DIR/head.onnx (torch dynamo exporter, dynamic
batch, verified against onnxruntime at batch 1 and 8) and, with ``--trt``, DIR/head.engine
(DIR/head_fp16.engine with ``--fp16``), with ``--int8`` DIR/head_int8.onnx. Backbone: ``--backbone PRESET --out DIR`` hands
over to ``neon_ros.backbones.export.export_vision_tower``. ``--trt`` where TensorRT does not
import exits with status 1 and one sentence saying so, before any work.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from neon_ros.runtime import trt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1].replace("``", "`")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", type=Path, metavar="PATH",
                      help="head checkpoint: a directory (DIR/head.json), a stem, or its .json/.safetensors file")
    what.add_argument("--backbone", metavar="PRESET", help="export this backbone preset's vision tower instead")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (created)")
    parser.add_argument("--trt", action="store_true", help="also build a TensorRT engine (needs TensorRT)")
    parser.add_argument("--fp16", action="store_true", help="FP16 TensorRT engine (with --trt)")
    parser.add_argument("--int8", action="store_true",
                        help="also write DIR/head_int8.onnx (dynamic int8 weights; runtime onnxruntime_int8)")
    parser.add_argument("--max-batch", type=int, default=8, help="largest batch of the TensorRT profile (default 8)")


def _export_head(args: argparse.Namespace) -> int:
    from neon_ros.runtime import checkpoint, onnx_export

    try:
        ck = checkpoint.load(args.checkpoint)
    except checkpoint.CheckpointError as e:
        print(f"neon-ros export: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "head.onnx"
    print(f"exporting head ({ck.config.feature_dim}-wide features from {ck.backbone_id!r}, step {ck.step}) "
          f"to {onnx_path} ...", file=sys.stderr)
    report = onnx_export.export_onnx(ck.build_model(), onnx_path, weights_sha256=ck.weights_sha256,
                                     backbone_id=ck.backbone_id)
    parity = ", ".join(f"batch {b}: {d:.2e}" for b, d in report.parity.items())
    print(f"{onnx_path}  ({report.seconds:.1f} s; onnxruntime vs torch max abs diff {parity})")
    # The runtime needs the checkpoint JSON (config, statistics) beside the ONNX file.
    if ck.path is not None and ck.path.resolve() != (args.out / "head.json").resolve():
        meta = json.loads(ck.path.read_text())
        shutil.copy2(ck.path.parent / meta["weights"], args.out / "head.safetensors")
        meta["weights"] = "head.safetensors"
        (args.out / "head.json").write_text(json.dumps(meta, indent=1))
    if args.int8:
        int8_path = args.out / "head_int8.onnx"
        diff = onnx_export.quantize_int8(onnx_path, int8_path, model=ck.build_model())
        print(f"{int8_path}  (int8 weights; max abs diff vs torch {diff:.3f} normalised units)")
    if args.trt:
        engine = args.out / ("head_fp16.engine" if args.fp16 else "head.engine")
        trt.build_engine(onnx_path, engine, fp16=args.fp16, batch=(1, 1, args.max_batch))
        print(engine)
    return 0


def _export_backbone(args: argparse.Namespace) -> int:
    try:
        from neon_ros.backbones.export import export_vision_tower
    except ImportError as e:
        print(f"neon-ros export: backbone export is not available in this install ({e})", file=sys.stderr)
        return 1
    result = export_vision_tower(args.backbone, args.out, trt=args.trt, fp16=args.fp16)
    if result is not None:
        print(result)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.fp16 and not args.trt:
        print("neon-ros export: --fp16 applies to TensorRT engines; add --trt.", file=sys.stderr)
        return 2
    if args.max_batch < 1:
        print("neon-ros export: --max-batch must be >= 1.", file=sys.stderr)
        return 2
    if args.trt and not trt.available():
        print(trt.UNAVAILABLE, file=sys.stderr)
        return 1
    try:
        return _export_backbone(args) if args.backbone else _export_head(args)
    except (trt.EngineBuildError, ValueError) as e:
        print(f"neon-ros export: {e}", file=sys.stderr)
        return 1
