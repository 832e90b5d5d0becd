"""ONNX export of the action head (torch dynamo exporter, dynamic batch), verified by onnxruntime.

The graph is ``ActionHead.forward_unchecked`` (input checks stay in Python, where the
runtime does them before every call). Inputs: features (B, F) float32, proprio (B, 58)
float32, proprio_mask (B, 58) float32, embodiment (B,) int32 (TensorRT 8 has no int64 inputs); outputs in
``model.COMPONENTS`` order. The weights' sha256 goes in the model's metadata so a
runtime can tell whether an .onnx file belongs to a checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neon_ros.policy.model import COMPONENTS, ActionHead

INPUT_NAMES = ("features", "proprio", "proprio_mask", "embodiment")
OUTPUT_NAMES = COMPONENTS
GRAPH_VERSION = "2"  # bump when inputs/outputs change, so stale cached .onnx files are re-exported
PARITY_TOLERANCE = 1e-4  # max abs difference torch vs onnxruntime (normalised units)


class _Graph(torch.nn.Module):
    """The traceable head: positional inputs, a tuple of outputs."""

    def __init__(self, head: ActionHead):
        super().__init__()
        self.head = head

    def forward(self, features, proprio, proprio_mask, embodiment):
        out = self.head.forward_unchecked(features, proprio, proprio_mask, embodiment)
        return tuple(out[k] for k in OUTPUT_NAMES)


@dataclass
class ExportReport:
    path: Path
    seconds: float
    parity: dict[int, float] = field(default_factory=dict)  # batch -> max abs diff vs torch


def example_inputs(model: ActionHead, batch: int, seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the head's shapes (features scaled like a backbone's, every embodiment id)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    return (torch.randn(batch, cfg.feature_dim, generator=g) * scale,
            torch.randn(batch, cfg.proprio_dim, generator=g),
            (torch.rand(batch, cfg.proprio_dim, generator=g) > 0.2).float(),
            torch.randint(0, cfg.num_embodiments, (batch,), generator=g, dtype=torch.int32))


def ort_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session; threads=0 lets onnxruntime use every core. Its pool threads
    sleep between runs instead of spinning (onnxruntime's default spins them, burning cores that
    the other nodes of a small machine need)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_session(session, inputs: tuple) -> dict[str, np.ndarray]:
    feed = {n: (x.numpy() if isinstance(x, torch.Tensor) else x) for n, x in zip(INPUT_NAMES, inputs, strict=True)}
    return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), feed), strict=True))


def verify(model: ActionHead, path: str | os.PathLike, batches=(1, 8), tol: float = PARITY_TOLERANCE,
           threads: int = 1, relative: bool = False) -> dict[int, float]:
    """Max abs difference between torch and onnxruntime per batch size; ValueError above tol.

    With ``relative`` the bound is tol * max(1, largest |output|) (for quantised graphs).
    """
    session = ort_session(path, threads)
    model = model.eval()
    out: dict[int, float] = {}
    for b in batches:
        x = example_inputs(model, b, seed=b, scale=3.0)
        with torch.no_grad():
            ref = model(*x)
        got = run_session(session, x)
        out[b] = max(float(np.abs(got[k] - ref[k].numpy()).max()) for k in OUTPUT_NAMES)
        bound = tol * max(1.0, *(float(ref[k].abs().max()) for k in OUTPUT_NAMES)) if relative else tol
        if not out[b] <= bound:
            raise ValueError(f"ONNX export {path} differs from torch by {out[b]:.3g} at batch {b} (> {bound:.3g})")
    return out


def export_onnx(model: ActionHead, path: str | os.PathLike, *, weights_sha256: str = "", backbone_id: str = "",
                check: bool = True, opset: int = 18) -> ExportReport:
    """Export to a single .onnx file with a dynamic batch axis; verify at batch 1 and 8 if check."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    t0 = time.perf_counter()
    # The exporter is chatty (progress lines, torchvision notes): keep the console for our own messages.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            _Graph(model), example_inputs(model, 2), dynamo=True, opset_version=opset,
            input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            dynamic_shapes=tuple({0: batch} for _ in INPUT_NAMES), optimize=True, verbose=False)
    proto = program.model_proto
    meta = {"neon.format": "neon-action-head", "neon.graph_version": GRAPH_VERSION, "neon.weights_sha256": weights_sha256,
            "neon.backbone_id": backbone_id, "neon.config": json.dumps(model.cfg.to_dict())}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save_model(proto, str(tmp), save_as_external_data=False)
    os.replace(tmp, path)
    report = ExportReport(path, time.perf_counter() - t0)
    if check:
        report.parity = verify(model, path)
    return report


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an .onnx file (reads the header only, not the weights)."""
    import onnx

    proto = onnx.load_model(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


INT8_TOLERANCE = 0.1  # max abs difference int8 vs torch, as a fraction of the largest |output| (>= 1)


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, *, model: ActionHead | None = None) -> float:
    """Dynamic int8 quantisation of every MatMul's weights (per channel), for a faster batch-1 CPU step.

    Weights become int8 (4x less memory traffic), activations are quantised on the fly, so
    results differ from float32 by a few hundredths of a std. With ``model`` given, the
    max abs difference against torch at batch 8 is returned (ValueError above INT8_TOLERANCE of
    the output range).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    proto = onnx.load_model(str(src))
    proto.graph.ClearField("value_info")  # stale exporter shape hints trip the quantiser's shape inference
    plain = dst.with_name(dst.name + ".fp32.tmp")
    onnx.save_model(proto, str(plain))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
            quantize_dynamic(str(plain), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        plain.unlink(missing_ok=True)
    if model is None:
        return float("nan")
    return verify(model, dst, batches=(8,), tol=INT8_TOLERANCE, relative=True)[8]
