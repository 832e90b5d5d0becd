"""``HeadRuntime``: a trained head behind one call, from torch or onnxruntime.

The action_head node calls ``predict(features, q, dq)`` once per control step. Inputs are
checked (width, finiteness) before anything runs; outputs are de-normalised with the
checkpoint's statistics for the G1 and returned as float64 numpy arrays. The joint deltas
become the absolute chunk here, in ``safe_chunk``: the one clamp on the data path (chunk
geometry from the contract, finite, inside the G1 limits; the node and eval both use it). With
``runtime="onnxruntime"`` the head is exported once per checkpoint (weights sha256) into
the Neon cache (or a given ``onnx_path``) and verified against torch before use. With
``runtime="tensorrt"`` (NVIDIA machines: TensorRT + a CUDA build of torch) an engine is built
from that ONNX file once, cached beside it as ``.engine`` with a sidecar naming the weights, the
TensorRT version and the GPU (a stale engine is rebuilt), and run through ``runtime.trt.Engine``;
where TensorRT or CUDA is missing it raises ``trt.TensorRTUnavailableError`` saying what to use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neon_ros import contract, g1
from neon_ros.errors import NeonError
from neon_ros.policy import actions, embodiment
from neon_ros.policy.model import COMPONENTS
from neon_ros.runtime import checkpoint, onnx_export, trt
from neon_ros.sim import assets

RUNTIMES = ("torch", "onnxruntime", "onnxruntime_int8", "tensorrt")  # int8: dynamic-quantised weights, ~4x less
# memory traffic; tensorrt: an engine on the GPU (runtime/trt.py)


class ChunkError(NeonError, ValueError):
    """A prediction that must not become a chunk (wrong shape or non-finite)."""


def safe_chunk(q, joint_delta, margin: float = 0.0) -> tuple[np.ndarray, int]:
    """Positions q (29,) + predicted deltas (16, 29) -> absolute targets inside
    [lower + margin, upper - margin] of the G1, and the number of entries clamped."""
    targets = actions.joint_targets(q, joint_delta)
    want = (contract.CHUNK_STEPS, g1.NUM_JOINTS)
    if targets.shape != want:
        raise ChunkError(f"prediction has shape {targets.shape}, a chunk is {want}")
    if not np.all(np.isfinite(targets)):
        raise ChunkError(f"prediction has {int((~np.isfinite(targets)).sum())} non-finite targets")
    clipped = np.clip(targets, g1.LOWER_LIMITS + margin, g1.UPPER_LIMITS - margin)
    return clipped, int(np.count_nonzero(clipped != targets))


@dataclass
class HeadPrediction:
    """One chunk for the G1, float64. Index [k] of each array is step k (k * 50 ms ahead)."""

    joint_targets: np.ndarray  # (16, 29) absolute joint targets = q + joint_delta, clamped by safe_chunk
    clamped: int  # entries of q + joint_delta that were outside the limits and got clamped
    joint_delta: np.ndarray  # (16, 29) predicted deltas from the current positions (rad)
    ee: np.ndarray  # (16, 2, 9) per arm (left, right): translation (m) + 6D rotation, in the gripper's current frame
    grip: np.ndarray  # (16, 2) hand closure per hand (left, right), clipped to [0, 1]
    loco: np.ndarray  # (16, 3) locomotion command vx (m/s), vy (m/s), yaw rate (rad/s)

    def ee_transforms(self) -> np.ndarray:
        """(16, 2, 4, 4) end-effector displacements T_rel (6D part orthonormalised)."""
        return actions.transform_from_pose9(self.ee)


class HeadRuntime:
    """A head checkpoint ready to predict. ``threads`` = compute threads (0 = all cores)."""

    def __init__(self, ckpt: str | os.PathLike | checkpoint.Checkpoint, runtime: str = "torch", threads: int = 1,
                 embodiment_name: str = "g1", onnx_path: str | os.PathLike | None = None):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = all cores), got {threads}")
        self.checkpoint = ckpt if isinstance(ckpt, checkpoint.Checkpoint) else checkpoint.load(ckpt)
        self.config = self.checkpoint.config
        self.backbone_id = self.checkpoint.backbone_id
        # what the ee output means: "hand" = displacements in the hand's frame (relative actions), "base" =
        # poses in the robot's base frame (a head trained with SourceConfig.ee_frame "base")
        self.ee_frame = str(self.checkpoint.extra.get("ee_frame", "hand"))
        self.feature_dim = self.config.feature_dim
        self.runtime = runtime
        self.threads = threads
        self.embodiment = embodiment.get(embodiment_name)
        if self.embodiment.proprio_joints != g1.NUM_JOINTS:
            raise ValueError(f"HeadRuntime drives the G1: embodiment {embodiment_name!r} does not report its 29 joints")
        stats = self.checkpoint.stats
        missing = [k for k in ("proprio", *COMPONENTS) if k not in stats.keys()]
        if missing:
            raise ValueError(f"checkpoint {self.checkpoint.path}: no normalisation statistics for {missing}; "
                             f"save the checkpoint with the NormStats computed on its training data")
        self._norm = {k: tuple(a.astype(np.float32) for a in stats.mean_std(k, self.embodiment.name))
                      for k in ("proprio", *COMPONENTS)}
        self._mask = np.ones((1, self.config.proprio_dim), np.float32)
        self._emb = np.array([self.embodiment.id], np.int32)  # the ONNX input is int32
        self.model = self.checkpoint.build_model()
        self.session = None
        self.engine: trt.Engine | None = None
        self.onnx_path: Path | None = None
        self.engine_path: Path | None = None
        if runtime == "torch":
            if threads > 0:
                torch.set_num_threads(threads)  # process-wide: the node owns its process
        elif runtime == "tensorrt":
            trt.require_runtime()  # before any export: a machine without TensorRT/CUDA says so at once
            self.onnx_path = self._onnx_file(onnx_path, int8=False)
            sha = self.checkpoint.weights_sha256
            source = f"{sha}.graph{onnx_export.GRAPH_VERSION}" if sha else trt.file_sha256(self.onnx_path)
            self.engine_path = trt.cached_engine(self.onnx_path, self.onnx_path.with_suffix(".engine"),
                                                 source_sha256=source, batch=(1, 1, 8))
            self.engine = trt.Engine(self.engine_path)
        else:
            self.onnx_path = self._onnx_file(onnx_path, int8=runtime == "onnxruntime_int8")
            self.session = onnx_export.ort_session(self.onnx_path, threads)

    def _onnx_file(self, onnx_path, int8: bool) -> Path:
        """An .onnx file of exactly these weights: reuse one whose metadata matches, else export."""
        sha = self.checkpoint.weights_sha256
        suffix = "_int8.onnx" if int8 else ".onnx"

        def matches(p: Path) -> bool:
            meta = onnx_export.onnx_metadata(p) if sha and p.exists() else {}
            return meta.get("neon.weights_sha256") == sha and meta.get("neon.graph_version") == onnx_export.GRAPH_VERSION

        if onnx_path is None and self.checkpoint.path is not None:
            beside = self.checkpoint.path.with_name(self.checkpoint.path.stem + suffix)
            if matches(beside):
                return beside  # written by `neon-ros export` next to the checkpoint
        path = Path(onnx_path) if onnx_path else assets.cache_root() / "head_onnx" / f"{sha[:24] or 'unhashed'}{suffix}"
        if matches(path):
            return path
        if int8:  # quantise the float32 graph (found or exported the same way)
            derived = path.with_name(path.name.removesuffix(suffix) + ".onnx") if path.name.endswith(suffix) \
                else path.with_suffix(".fp32.onnx")
            fp32 = self._onnx_file(None if onnx_path is None else derived, int8=False)
            onnx_export.quantize_int8(fp32, path, model=self.model)
        else:
            onnx_export.export_onnx(self.model, path, weights_sha256=sha, backbone_id=self.backbone_id)
        return path

    def _check(self, name: str, x, size: int) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        if arr.shape != (size,):
            raise ValueError(f"HeadRuntime.predict: {name} must have shape ({size},), got {arr.shape}"
                             + (f" (this head was trained on {self.backbone_id!r} features of width {size})"
                                if name == "features" else ""))
        if not np.isfinite(arr).all():
            raise ValueError(f"HeadRuntime.predict: {name} holds {int((~np.isfinite(arr)).sum())} non-finite "
                             f"value(s) (NaN or inf); refusing to predict")
        return arr

    def raw(self, features: np.ndarray, proprio: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised outputs for batch-1 inputs (1, F) and (1, 58), float32 (no checks)."""
        if self.engine is not None:
            out = self.engine.run({"features": features, "proprio": proprio, "proprio_mask": self._mask,
                                   "embodiment": self._emb})
            return {k: out[k].cpu().numpy() for k in COMPONENTS}
        if self.session is not None:
            out = self.session.run(list(COMPONENTS), {"features": features, "proprio": proprio,
                                                      "proprio_mask": self._mask, "embodiment": self._emb})
            return dict(zip(COMPONENTS, out, strict=True))
        with torch.inference_mode():
            out = self.model.forward_unchecked(torch.from_numpy(features), torch.from_numpy(proprio),
                                               torch.from_numpy(self._mask), torch.from_numpy(self._emb))
        return {k: v.numpy() for k, v in out.items()}

    def predict(self, features, q, dq, clamp_margin: float = 0.0) -> HeadPrediction:
        """features (F,), joint positions q (29,) and velocities dq (29,) -> one chunk for the G1.

        ``clamp_margin`` (rad) keeps the targets that far inside every joint limit; a
        non-finite prediction raises ChunkError.
        """
        f = self._check("features", features, self.feature_dim)
        q64 = np.asarray(q, dtype=np.float64)
        qv = self._check("q", q, g1.NUM_JOINTS)
        dqv = self._check("dq", dq, g1.NUM_JOINTS)
        mean, std = self._norm["proprio"]
        proprio = ((np.concatenate([qv, dqv]) - mean) / std).astype(np.float32)
        out = self.raw(f[None], proprio[None])
        den = {}
        for k in COMPONENTS:
            mean, std = self._norm[k]
            den[k] = out[k][0].astype(np.float64) * std + mean
        targets, clamped = safe_chunk(q64, den["joint_delta"], clamp_margin)
        return HeadPrediction(joint_targets=targets, clamped=clamped, joint_delta=den["joint_delta"], ee=den["ee"],
                              grip=np.clip(den["grip"], 0.0, 1.0), loco=den["loco"])
