"""TensorRT engines for the head and the backbones' vision towers: build, cache, load, run (import-guarded).

The ``tensorrt`` wheel installs only on NVIDIA machines (Jetson, desktop GPUs); everywhere
else ``available()`` is False and ``build_engine`` raises ``TensorRTUnavailableError`` whose
message is the one sentence `neon-ros export --trt` prints. Works with TensorRT 8.x and 10.x.

Running an engine (``runtime: tensorrt`` of the action_head and backbone nodes) also needs a
CUDA device, reached through torch: ``require_runtime()`` names whatever is missing. Engines
are cached beside their ONNX file (``cached_engine``) with a JSON sidecar recording what they
were built from (the source's sha256, the TensorRT version, the GPU, precision, profile); an
engine whose sidecar does not match the wanted metadata is rebuilt, since a serialized engine
only loads on the TensorRT version and GPU that built it. ``Engine`` runs one: I/O tensors by
name, torch CUDA buffers, one CUDA stream (TensorRT >= 8.5, the name-based tensor API).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neon_ros.errors import NeonError, UnavailableError

UNAVAILABLE = ("TensorRT is not installed on this machine (the `tensorrt` Python package does not import), "
               "so no engine can be built: run `neon-ros export --trt` on a Jetson or NVIDIA GPU machine with "
               "TensorRT, or leave out --trt to export ONNX only.")


NO_CUDA = ("runtime 'tensorrt' runs engines on a CUDA device, but torch here has no CUDA device "
           "(torch.cuda.is_available() is False{why}): the engine's buffers and stream are torch CUDA tensors, so "
           "install a CUDA build of torch on the NVIDIA machine; on a machine without one use runtime 'torch' "
           "(or 'onnxruntime' / 'onnxruntime_int8' for the head).")
RUN_UNAVAILABLE = ("runtime 'tensorrt' needs TensorRT, but the `tensorrt` Python package does not import here "
                   "({why}): install TensorRT (JetPack on a Jetson, the `tensorrt` wheel on an NVIDIA GPU machine), "
                   "or use runtime 'torch' (or 'onnxruntime' / 'onnxruntime_int8' for the head).")
MIN_VERSION = (8, 5)  # the name-based tensor API (set_tensor_address, execute_async_v3)
METADATA_SUFFIX = ".json"  # the sidecar: ENGINE.engine -> ENGINE.engine.json


class TensorRTUnavailableError(UnavailableError, RuntimeError):
    """TensorRT (or the CUDA device it runs on) is not available here."""


class EngineBuildError(NeonError, RuntimeError):
    """TensorRT could not parse the ONNX file or build an engine; the message has its errors."""


def _import_error() -> tuple[Any, str]:
    """(the tensorrt module, "") or (None, why it does not import)."""
    try:
        return importlib.import_module("tensorrt"), ""
    except Exception as exc:  # ImportError, or a wheel whose CUDA libraries are missing (OSError)
        return None, f"{type(exc).__name__}: {exc}"


def _import():
    return _import_error()[0]


def available() -> bool:
    """True where `import tensorrt` works."""
    return _import() is not None


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, fp16: bool = False,
                 batch: tuple[int, int, int] = (1, 1, 8), shapes: dict | None = None,
                 workspace_mb: int = 1024) -> Path:
    """Build a serialized TensorRT engine from an ONNX file.

    ``batch`` = (min, opt, max) for every dynamic axis 0; ``shapes`` maps an input name to
    explicit (min, opt, max) shapes for inputs with other dynamic axes. ``fp16`` enables
    half-precision kernels where the GPU has fast FP16 (Jetson Orin, Ampere and newer).
    """
    trt = _import()
    if trt is None:
        raise TensorRTUnavailableError(UNAVAILABLE)
    if not (1 <= batch[0] <= batch[1] <= batch[2]):
        raise ValueError(f"batch must be (min, opt, max) with 1 <= min <= opt <= max, got {batch}")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):  # strongly typed TensorRT: precision comes from the ONNX types
            raise EngineBuildError(f"TensorRT {trt.__version__} has no FP16 builder flag; build without --fp16")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shapes = shapes or {}
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        dims = tuple(inp.shape)
        if inp.name in shapes:
            lo, opt, hi = shapes[inp.name]
        elif all(d >= 0 for d in dims[1:]):
            lo, opt, hi = ((b, *dims[1:]) for b in batch)
        else:
            raise ValueError(f"input {inp.name!r} has dynamic axes {dims} beyond the batch: give its (min, opt, "
                             f"max) shapes in `shapes`")
        profile.set_shape(inp.name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    return engine_path


# --- running engines ---------------------------------------------------------------------------


def require_runtime() -> tuple[Any, Any]:
    """(tensorrt, torch) where an engine can run here, else TensorRTUnavailableError naming what is missing."""
    trt, why = _import_error()
    if trt is None:
        raise TensorRTUnavailableError(RUN_UNAVAILABLE.format(why=why))
    version = tuple(int(v) for v in trt.__version__.split(".")[:2])
    if version < MIN_VERSION:
        raise TensorRTUnavailableError(f"runtime 'tensorrt' needs TensorRT >= {'.'.join(map(str, MIN_VERSION))} "
                                       f"(the name-based tensor API), this machine has {trt.__version__}")
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise TensorRTUnavailableError(NO_CUDA.format(why=f"; torch does not import: {exc}")) from exc
    if not torch.cuda.is_available():
        build = f"; this torch {torch.__version__} is built without CUDA" if torch.version.cuda is None else ""
        raise TensorRTUnavailableError(NO_CUDA.format(why=build))
    return trt, torch


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def engine_metadata(source_sha256: str, trt_version: str, gpu: str, *, fp16: bool = False,
                    shapes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What an engine is valid for: its source (ONNX or weights sha256), TensorRT version, GPU, precision, profile."""
    if not source_sha256:
        raise ValueError("engine_metadata: the source sha256 is empty (an engine must name what it was built from)")
    profile = {name: [list(map(int, s)) for s in shape] for name, shape in sorted((shapes or {}).items())}
    return {"neon.source_sha256": source_sha256, "tensorrt": str(trt_version), "gpu": str(gpu), "fp16": bool(fp16),
            "profile": profile}


def metadata_path(engine_path: str | os.PathLike) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + METADATA_SUFFIX)


def read_metadata(engine_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of an engine file ({} if either is missing or the sidecar is unreadable)."""
    side = metadata_path(engine_path)
    if not (Path(engine_path).is_file() and side.is_file()):
        return {}
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def is_current(engine_path: str | os.PathLike, wanted: Mapping[str, Any]) -> bool:
    """True if the engine exists and its sidecar equals ``wanted`` (else it must be rebuilt)."""
    return read_metadata(engine_path) == dict(wanted)


def write_metadata(engine_path: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    side = metadata_path(engine_path)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(dict(meta), indent=1, sort_keys=True))
    os.replace(tmp, side)
    return side


def cached_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, source_sha256: str,
                  fp16: bool = False, batch: tuple[int, int, int] = (1, 1, 8), shapes: dict | None = None) -> Path:
    """``engine_path``, built from ``onnx_path`` unless its sidecar says it already matches this source,
    this TensorRT version and this GPU (see ``engine_metadata``)."""
    trt, torch = require_runtime()
    wanted = engine_metadata(source_sha256, trt.__version__, torch.cuda.get_device_name(), fp16=fp16,
                             shapes=shapes or {"*": [(batch[0],), (batch[1],), (batch[2],)]})
    engine_path = Path(engine_path)
    if not is_current(engine_path, wanted):
        metadata_path(engine_path).unlink(missing_ok=True)  # an interrupted build leaves no valid-looking pair
        build_engine(onnx_path, engine_path, fp16=fp16, batch=batch, shapes=shapes)
        write_metadata(engine_path, wanted)
    return engine_path


class Engine:
    """A serialized TensorRT engine loaded on the current CUDA device; ``run(inputs)`` -> outputs by name.

    Inputs may be numpy arrays or torch tensors on any device; they are copied to the engine's
    dtype on the GPU. Outputs are torch CUDA tensors in the engine's dtypes (float32 for the head).
    One execution context, one stream: calls are serialised by the caller (each node runs one).
    """

    def __init__(self, engine_path: str | os.PathLike):
        trt, torch = require_runtime()
        self._trt, self._torch = trt, torch
        self.path = Path(engine_path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineBuildError(f"TensorRT {trt.__version__} could not load {self.path} (built by another "
                                   f"TensorRT version or for another GPU?): delete it and its {METADATA_SUFFIX} "
                                   f"sidecar to rebuild")
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream = torch.cuda.Stream(device=self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(n)))).dtype
                       for n in names}

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        torch = self._torch
        missing = sorted(set(self.input_names) - set(inputs))
        if missing:
            raise ValueError(f"TensorRT engine {self.path.name}: missing input(s) {missing}; it takes "
                             f"{list(self.input_names)}")
        with torch.cuda.stream(self.stream):
            feeds = {}
            for name in self.input_names:
                x = inputs[name]
                x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
                feeds[name] = x.to(self.device, self.dtypes[name], non_blocking=True).contiguous()
                if not self.context.set_input_shape(name, tuple(feeds[name].shape)):
                    raise ValueError(f"TensorRT engine {self.path.name}: input {name!r} of shape "
                                     f"{tuple(feeds[name].shape)} is outside its optimisation profile")
                self.context.set_tensor_address(name, feeds[name].data_ptr())
            outputs = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT engine {self.path.name}: execution failed (see the TensorRT log)")
        self.stream.synchronize()
        return outputs
