"""Export a backbone preset's vision tower to ONNX (verified by onnxruntime), optionally TensorRT.

``export_vision_tower(preset, out_dir, trt=False, fp16=False, tiny=False)`` writes
``OUT/<backbone_id>.vision.onnx`` and returns a ``VisionExport`` report. The vision tower is:

- cpu_default: EfficientNet-Lite0 up to its last block; input ``frames`` (N, H, W, 3) uint8
  (normalisation inside the graph), output ``frame_maps`` (N, 320, 8, 8); dynamic N.
- qwen2_5_omni_* / cosmos_reason2_*: the ViT on the processor's ``pixel_values_videos``
  (patches, C*2*p*p) for the preset's clip (frame_size, num_frames), output the merged
  vision embeddings (tokens, hidden) fed to the language model, and for Qwen3-VL (Cosmos-Reason2)
  also its deepstack features ``deepstack_K`` (the language model adds them to its first layers).
  Its window/cu_seqlens bookkeeping depends on the grid, so the graph is made for the preset's
  fixed grid.
- tribe_v2: the V-JEPA2 encoder on ``pixel_values_videos`` (1, T, 3, H, W) -> ``tokens`` (the
  last hidden state) and every hidden state ``hidden_K`` (the backbone pools one of them).

Every output of the graph is what the backbone takes from its torch tower, so an engine built
from it can stand in for the tower (``neon_ros.backbones.tower_trt``, runtime ``tensorrt``).

The torch dynamo exporter is used where torch.export can capture the model; the Qwen
towers turn their grid into Python lists, which it cannot, so the TorchScript exporter
traces their fixed shapes instead (also the fallback if dynamo fails), and the report says so. Every export is checked against torch on an
input other than the one it was traced with. ``trt=True`` builds an engine through
``neon_ros.runtime.trt`` (TensorRT machines only; elsewhere the report carries its one-sentence reason).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neon_ros.backbones.registry import load_backbone

PARITY_TOLERANCE = 1e-3  # max abs difference torch vs onnxruntime (float32)


@dataclasses.dataclass
class VisionExport:
    """What export_vision_tower produced."""

    preset: str
    backbone_id: str
    onnx_path: Path
    exporter: str  # "dynamo" or "torchscript"
    input_shapes: dict[str, tuple[int, ...]]
    output_shape: tuple[int, ...]  # of the first output
    max_abs_diff: float
    seconds: float
    engine_path: Path | None = None
    note: str = ""
    output_names: tuple[str, ...] = ()
    profile: dict[str, tuple[tuple[int, ...], ...]] = dataclasses.field(default_factory=dict)  # TensorRT (min, opt, max)

    def __str__(self) -> str:
        lines = [
            f"{self.onnx_path}  ({self.preset} vision tower, {self.exporter} exporter, {self.seconds:.1f} s)",
            f"  inputs {self.input_shapes} -> output {self.output_shape}; onnxruntime vs torch max abs diff "
            f"{self.max_abs_diff:.2e}",
        ]
        if self.engine_path is not None:
            lines.append(f"  TensorRT engine: {self.engine_path}")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def _graph(inner: Any, forward: Callable[[Any, Any], Any], **buffers: Any) -> Any:
    """An eval-mode torch Module holding ``inner`` (and non-persistent ``buffers``) whose forward(x) is
    ``forward(module, x)`` (a tensor, or a tuple of them for several outputs)."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            for name, value in buffers.items():
                self.register_buffer(name, value, persistent=False)

        def forward(self, x: torch.Tensor) -> Any:
            return forward(self, x)

    return Graph().eval()


class _FrameTower:
    """Builders of (graph module, example inputs, input names, output names, dynamic axes) per architecture."""

    @staticmethod
    def cpu_default(bb: Any, seed: int) -> tuple[Any, tuple, list[str], list[str], dict]:
        import torch

        from neon_ros.backbones.cpu_default import LITE_MEAN, LITE_STD

        def forward(graph: Any, frames: torch.Tensor) -> torch.Tensor:
            net = graph.inner
            x = (frames.permute(0, 3, 1, 2).float() - LITE_MEAN) / LITE_STD
            x = net._swish(net._bn0(net._conv_stem(x)))
            for block in net._blocks:
                x = block(x)
            return x

        rng = np.random.default_rng(seed)
        frames = torch.from_numpy(rng.integers(0, 255, (2, *bb.frame_size, 3), dtype=np.uint8))
        return _graph(bb._net, forward), (frames,), ["frames"], ["frame_maps"], {"frames": {0: "n"}}

    @staticmethod
    def chat_video(bb: Any, seed: int) -> tuple[Any, tuple, list[str], list[str], dict]:
        rng = np.random.default_rng(seed)
        clip = rng.integers(0, 255, (bb.num_frames, *bb.frame_size, 3), dtype=np.uint8)
        processed = bb.processor.video_processor([clip])
        tower = bb.vision_tower()

        def forward(graph: Any, pixel_values_videos: Any) -> Any:
            out = graph.inner(pixel_values_videos, grid_thw=graph.grid)
            pooled = getattr(out, "pooler_output", None)
            return (pooled if pooled is not None else out[0], *(getattr(out, "deepstack_features", None) or ()))

        graph = _graph(tower, forward, grid=processed["video_grid_thw"].clone())
        pixels = processed["pixel_values_videos"].to(next(tower.parameters()).dtype)
        deepstack = [f"deepstack_{k}" for k in range(len(getattr(tower, "deepstack_visual_indexes", ())))]
        return graph, (pixels,), ["pixel_values_videos"], ["vision_embeds", *deepstack], {}

    @staticmethod
    def tribe(bb: Any, seed: int) -> tuple[Any, tuple, list[str], list[str], dict]:
        rng = np.random.default_rng(seed)
        clip = rng.integers(0, 255, (bb.num_frames, *bb.frame_size, 3), dtype=np.uint8)
        model = bb.video_model

        def forward(graph: Any, pixel_values_videos: Any) -> Any:
            out = graph.inner(pixel_values_videos=pixel_values_videos, skip_predictor=True, output_hidden_states=True)
            return (out.last_hidden_state, *out.hidden_states)

        pixels = bb.video_pixels(clip).to(next(model.parameters()).dtype)
        hidden = [f"hidden_{k}" for k in range(int(model.config.num_hidden_layers) + 1)]
        return (_graph(model, forward), (pixels,), ["pixel_values_videos"], ["tokens", *hidden],
                {"pixel_values_videos": {0: "n"}})


GRAPHS = {
    "cpu_default": _FrameTower.cpu_default,
    "qwen2_5_omni": _FrameTower.chat_video,
    "qwen3_vl": _FrameTower.chat_video,
    "tribe_v2": _FrameTower.tribe,
}


# torch.export cannot capture the Qwen vision towers (their window / cu_seqlens bookkeeping calls
# grid_thw.tolist()), so they go straight to the TorchScript tracer on the preset's fixed grid.
TORCHSCRIPT_ONLY = {"qwen2_5_omni", "qwen3_vl"}


def _export(
    graph: Any, example: tuple, path: Path, names: list[str], outputs: list[str], dynamic: dict, dynamo: bool = True
) -> str:
    import torch

    quiet = contextlib.redirect_stdout(io.StringIO())
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if not dynamo:
                raise RuntimeError("dynamo export not attempted")
            with quiet, contextlib.redirect_stderr(io.StringIO()):
                torch.onnx.export(
                    graph, example, str(path), dynamo=True, input_names=names, output_names=outputs,
                    dynamic_axes=dynamic or None, external_data=False,
                )
            return "dynamo"
        except Exception:  # torch.export cannot capture data-dependent grids: trace the fixed shapes instead
            with quiet, contextlib.redirect_stderr(io.StringIO()):
                torch.onnx.export(
                    graph, example, str(path), dynamo=False, input_names=names, output_names=outputs,
                    dynamic_axes=dynamic or None, opset_version=17,
                )
            return "torchscript"


def torch_outputs(graph: Any, inputs: tuple) -> list[np.ndarray]:
    """The graph's outputs in torch, float32 numpy, as a list (one entry per ONNX output)."""
    import torch

    with torch.inference_mode():
        out = graph(*inputs)
    return [t.float().cpu().numpy() for t in (out if isinstance(out, tuple) else (out,))]


def verify(graph: Any, path: Path, inputs: tuple, names: list[str]) -> tuple[float, tuple[int, ...]]:
    """Max abs difference torch vs onnxruntime over every output on ``inputs`` and the first output's
    shape; ValueError above PARITY_TOLERANCE."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    refs = torch_outputs(graph, inputs)
    gots = session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})
    if len(gots) != len(refs):
        raise ValueError(f"{path} has {len(gots)} outputs, the torch tower returns {len(refs)}")
    diff = 0.0
    for k, (got, ref) in enumerate(zip(gots, refs, strict=True)):
        if got.shape != ref.shape:
            raise ValueError(f"onnxruntime output {k} {got.shape} != torch output {ref.shape} for {path}")
        diff = max(diff, float(np.abs(got.astype(np.float32) - ref).max()))
    if not diff <= PARITY_TOLERANCE:
        raise ValueError(f"{path}: onnxruntime differs from torch by {diff:.3e} (> {PARITY_TOLERANCE})")
    return diff, tuple(refs[0].shape)


def tower_profile(bb: Any, names: list[str], example: tuple, dynamic: dict) -> dict[str, tuple[tuple[int, ...], ...]]:
    """TensorRT (min, opt, max) shapes per input: a per-frame tower (dynamic ``frames``) takes 1..T new
    frames of a clip at once; every other input keeps the exported example's shape."""
    profile = {}
    for name, x in zip(names, example, strict=True):
        shape = tuple(int(d) for d in x.shape)
        if name == "frames" and 0 in dynamic.get(name, {}):
            profile[name] = ((1, *shape[1:]), (bb.num_frames, *shape[1:]), (bb.num_frames, *shape[1:]))
        else:
            profile[name] = (shape, shape, shape)
    return profile


def export_tower(bb: Any, out_dir: str | Path, trt: bool = False, fp16: bool = False) -> VisionExport:
    """Export the vision tower of a loaded (float32, CPU) backbone to OUT/<backbone_id>.vision.onnx."""
    t0 = time.perf_counter()
    builder = GRAPHS.get(bb.config.architecture)
    if builder is None:
        raise ValueError(f"no vision-tower export for architecture {bb.config.architecture!r}")
    graph, example, names, outputs, dynamic = builder(bb, seed=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{bb.backbone_id}.vision.onnx"
    dynamo = bb.config.architecture not in TORCHSCRIPT_ONLY
    exporter = _export(graph, example, path, names, outputs, dynamic, dynamo=dynamo)
    _, check, _, _, _ = builder(bb, seed=1)  # another clip of the same shapes
    diff, out_shape = verify(graph, path, check, names)
    report = VisionExport(
        preset=bb.config.name, backbone_id=bb.backbone_id, onnx_path=path, exporter=exporter,
        input_shapes={n: tuple(x.shape) for n, x in zip(names, example, strict=True)}, output_shape=out_shape,
        max_abs_diff=diff, seconds=0.0, output_names=tuple(outputs), profile=tower_profile(bb, names, example, dynamic),
    )
    if exporter == "torchscript":
        report.note = "graph traced for the preset's fixed clip shape (frame_size x num_frames)."
    if trt:
        from neon_ros.runtime import trt as trt_module

        if not trt_module.available():
            report.note += " TensorRT skipped: " + trt_module.UNAVAILABLE
        else:
            engine = path.with_suffix(".fp16.engine" if fp16 else ".engine")
            report.engine_path = trt_module.build_engine(path, engine, fp16=fp16, shapes=report.profile)
    report.note = report.note.strip()
    report.seconds = time.perf_counter() - t0
    return report


def export_vision_tower(
    preset: str, out_dir: str | Path, trt: bool = False, fp16: bool = False, tiny: bool = False, **overrides: Any
) -> VisionExport:
    """Export ``preset``'s vision tower to ONNX (+ TensorRT with trt=True); see the module docstring."""
    if not tiny:  # the ONNX graph is traced and verified on the CPU in float32; TensorRT picks fp16 itself
        overrides.setdefault("dtype", "float32")
        overrides.setdefault("device", "cpu")
    return export_tower(load_backbone(preset, tiny=tiny, **overrides), out_dir, trt=trt, fp16=fp16)
