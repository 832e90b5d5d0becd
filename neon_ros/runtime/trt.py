"""TensorRT engine builder shared by the head and backbone exporters (import-guarded).

The ``tensorrt`` wheel installs only on NVIDIA machines (Jetson, desktop GPUs); everywhere
else ``available()`` is False and ``build_engine`` raises ``TensorRTUnavailableError`` whose
message is the one sentence `neon-ros export --trt` prints. Works with TensorRT 8.x and 10.x.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from neon_ros.errors import NeonError, UnavailableError

UNAVAILABLE = ("TensorRT is not installed on this machine (the `tensorrt` Python package does not import), "
               "so no engine can be built: run `neon-ros export --trt` on a Jetson or NVIDIA GPU machine with "
               "TensorRT, or leave out --trt to export ONNX only.")


class TensorRTUnavailableError(UnavailableError, RuntimeError):
    """TensorRT cannot be imported here."""


class EngineBuildError(NeonError, RuntimeError):
    """TensorRT could not parse the ONNX file or build an engine; the message has its errors."""


def _import():
    try:
        return importlib.import_module("tensorrt")
    except Exception:  # ImportError, or a wheel whose CUDA libraries are missing (OSError)
        return None


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
