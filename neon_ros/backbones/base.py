"""The Backbone interface and its preset configuration (DESIGN.md section 5).

A backbone is a FROZEN encoder: a clip of T uint8 RGB frames (oldest first), the
operator's instruction and optionally 16 kHz mono audio go in, one pooled float32 feature
vector of a declared width comes out. Nothing here imports rclpy or transformers.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from neon_ros.errors import NeonError, UnavailableError

AUDIO_SAMPLE_RATE = 16_000  # Hz, the rate every audio path expects (mono float32 in [-1, 1])
DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "int8_dynamic")
DEVICES_PREFIXES = ("cpu", "cuda")
MAX_LATENCY_S = 5.0  # a backbone slower than this per clip cannot steer (a chunk spans 0.8 s)


class MissingWeightsError(UnavailableError, FileNotFoundError, ValueError):
    """A preset's local weights directory is missing; the message says where and how to fix it.

    Also a ValueError, so command lines that report bad input as one sentence catch it.
    """


class CannotGenerateError(NeonError, NotImplementedError):
    """``generate_text`` on a backbone without a text-generation path (its preset has no ``can_generate``)."""


@dataclasses.dataclass
class BackboneConfig:
    """One backbone preset (a YAML file in config/backbones/, overridable per call).

    Fields:
        name: the preset name (the YAML file's stem), e.g. ``qwen2_5_omni_3b``.
        architecture: key into ``neon_ros.backbones.registry.ARCHITECTURES``.
        description: one human sentence (shown by ``list_presets``).
        model: the weights folder name under $NEON_MODELS (Hugging Face layout), or, for a
            composite preset, unused (see ``components``).
        weights_dir: explicit weights directory; ``None`` = $NEON_MODELS/<model>.
        components: composite presets only (tribe_v2): modality -> folder name under
            ``weights_dir`` (or under $NEON_MODELS when ``weights_dir`` is None).
        sources: weights folder name -> the Hugging Face Hub repository it is a copy of
            (only quoted in the missing-weights message; nothing is ever downloaded).
        width: declared pooled feature width (the vector ``encode`` returns).
        num_frames: T, the number of frames a clip should have (oldest first).
        frame_size: (H, W) the camera buffer resizes every frame to; ``encode`` checks it.
        clip_seconds: the time the T frames span (so the buffer samples at T/clip_seconds Hz).
        expected_latency_s: s from a clip's newest frame to its features on the robot computer
            (the Orin NX 16GB of a G1 EDU: README "Expected Jetson Orin budget"; cpu_default
            measured here); 0 = not declared. action_head's feature-age budget and
            `neon-ros eval --feature-delay preset` read it.
        layer: which hidden layer is pooled (Python index into the hidden-state list, -1 = last).
        dtype: torch dtype of the weights (``float32``, ``bfloat16``, ``float16``).
        device: torch device string (``cpu``, ``cuda``, ``cuda:0``).
        quantization: ``none`` or ``int8_dynamic`` (torch dynamic int8 Linear, CPU only).
        has_audio: the architecture has an audio path (audio passed to ``encode`` is used).
        can_generate: ``generate_text`` works (the model has a language-model head).
        tiny: build a tiny random config of the same architecture in-process (tests,
            benchmarks); no weights are read.
        options: architecture-specific settings (documented by each adapter).
    """

    name: str
    architecture: str
    description: str = ""
    model: str = ""
    weights_dir: str | None = None
    components: dict[str, str] = dataclasses.field(default_factory=dict)
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    width: int = 2048
    num_frames: int = 8
    frame_size: tuple[int, int] = (224, 224)
    clip_seconds: float = 1.0
    expected_latency_s: float = 0.0
    layer: int = -1
    dtype: str = "float32"
    device: str = "cpu"
    quantization: str = "none"
    has_audio: bool = False
    can_generate: bool = False
    tiny: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("backbone preset: 'name' must be a non-empty string")
        if not self.architecture:
            raise ValueError(f"backbone preset {self.name!r}: 'architecture' is required")
        self.frame_size = tuple(int(v) for v in self.frame_size)  # type: ignore[assignment]
        if len(self.frame_size) != 2 or min(self.frame_size) < 16:
            raise ValueError(f"backbone preset {self.name!r}: frame_size must be [H, W] >= 16, got {self.frame_size}")
        for field in ("width", "num_frames"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"backbone preset {self.name!r}: {field} must be >= 1")
        if not (math.isfinite(self.clip_seconds) and self.clip_seconds > 0):
            raise ValueError(f"backbone preset {self.name!r}: clip_seconds must be > 0")
        if not (math.isfinite(self.expected_latency_s) and 0.0 <= self.expected_latency_s <= MAX_LATENCY_S):
            raise ValueError(f"backbone preset {self.name!r}: expected_latency_s must be in [0, {MAX_LATENCY_S:g}] s, "
                             f"got {self.expected_latency_s}")
        if self.dtype not in DTYPES:
            raise ValueError(f"backbone preset {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(
                f"backbone preset {self.name!r}: quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}"
            )
        if not str(self.device).startswith(DEVICES_PREFIXES):
            raise ValueError(f"backbone preset {self.name!r}: device must start with one of {DEVICES_PREFIXES}")
        if self.quantization == "int8_dynamic" and self.device != "cpu":
            raise ValueError(f"backbone preset {self.name!r}: int8_dynamic quantization runs on the CPU only")
        self.layer = int(self.layer)
        self.options = dict(self.options or {})
        self.components = dict(self.components or {})
        self.sources = dict(self.sources or {})

    @property
    def backbone_id(self) -> str:
        """Unique per preset + layer (+ tiny): names cache shards and /neon/features frame_id."""
        return f"{self.name}{'-tiny' if self.tiny else ''}.L{self.layer}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"backbone preset {data.get('name')!r}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def check_clip(frames: Any, frame_size: Sequence[int], who: str) -> np.ndarray:
    """Validate a clip: uint8 array (T, H, W, 3) with T >= 1 and (H, W) == frame_size."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{who}: frames must be a numpy array (T, H, W, 3) uint8, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{who}: frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{who}: frames must have shape (T, H, W, 3), got {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError(f"{who}: empty clip (0 frames); send at least one frame")
    h, w = int(frame_size[0]), int(frame_size[1])
    if frames.shape[1:3] != (h, w):
        raise ValueError(
            f"{who}: frames are {frames.shape[1]}x{frames.shape[2]} (HxW) but this preset expects {h}x{w}; "
            f"resize in the camera buffer to the preset's frame_size"
        )
    return np.ascontiguousarray(frames)


def check_audio(audio: Any, who: str) -> np.ndarray | None:
    """Validate optional audio: 1-D float32 16 kHz mono, finite. Returns None for None/empty."""
    if audio is None:
        return None
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise ValueError(f"{who}: audio must be 1-D mono samples at {AUDIO_SAMPLE_RATE} Hz, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{who}: audio must be float samples in [-1, 1], got dtype {arr.dtype}")
    if arr.size == 0:
        return None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{who}: audio contains non-finite samples")
    return arr.astype(np.float32, copy=False)


def _preset_field(name: str, cast: Callable[[Any], Any]) -> property:
    """A read-only attribute: the preset's field ``name`` through ``cast``."""
    return property(lambda self: cast(getattr(self.config, name)), doc=f"``config.{name}`` as {cast.__name__}.")


class Backbone(abc.ABC):
    """A frozen encoder. Subclasses implement ``_encode`` and ``torch_modules``.

    Attributes (read-only): ``backbone_id``, ``width``, ``num_frames``, ``frame_size``,
    ``has_audio``, ``can_generate``, ``config``.
    """

    def __init__(self, config: BackboneConfig) -> None:
        self.config = config

    # -- declared properties (read from the preset) ---------------------------
    backbone_id = _preset_field("backbone_id", str)
    width = _preset_field("width", int)
    num_frames = _preset_field("num_frames", int)
    has_audio = _preset_field("has_audio", bool)
    can_generate = _preset_field("can_generate", bool)

    @property
    def frame_size(self) -> tuple[int, int]:
        return (int(self.config.frame_size[0]), int(self.config.frame_size[1]))

    @property
    def modality_slices(self) -> dict[str, tuple[int, int]]:
        """Modality name -> [start, stop) of its slice of the features; empty: one undivided vector.

        Recorded in the feature cache, from where training hands it to the head (its fusion) and
        to modality dropout. Only fused multi-modal backbones (TRIBE v2) have slices.
        """
        return {}

    @property
    def fps(self) -> float:
        """Frame rate the clip should be sampled at (num_frames / clip_seconds)."""
        return self.num_frames / float(self.config.clip_seconds)

    # -- encoding --------------------------------------------------------------
    def encode(self, frames: np.ndarray, instruction: str = "", audio: np.ndarray | None = None) -> np.ndarray:
        """Pooled features (width,) float32 of one clip (T, H, W, 3) uint8 + instruction (+ audio)."""
        who = f"backbone {self.config.name}"
        clip = check_clip(frames, self.frame_size, who)
        if not isinstance(instruction, str):
            raise ValueError(f"{who}: instruction must be a str, got {type(instruction).__name__}")
        wav = check_audio(audio, who) if self.has_audio else None
        out = np.asarray(self._encode(clip, instruction, wav), dtype=np.float32).reshape(-1)
        if out.shape != (self.width,):
            raise RuntimeError(f"{who}: produced {out.shape} features, declared width {self.width}")
        return out

    def encode_batch(
        self,
        clips: Sequence[np.ndarray],
        instructions: Sequence[str],
        audios: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """(N, width) float32 for N clips; adapters override where batching is cheaper."""
        if len(clips) != len(instructions):
            raise ValueError(f"encode_batch: {len(clips)} clips but {len(instructions)} instructions")
        audios = list(audios) if audios is not None else [None] * len(clips)
        if len(audios) != len(clips):
            raise ValueError(f"encode_batch: {len(clips)} clips but {len(audios)} audio entries")
        if not clips:
            return np.zeros((0, self.width), np.float32)
        return np.stack([self.encode(c, i, a) for c, i, a in zip(clips, instructions, audios, strict=True)])

    def generate_text(self, frames: np.ndarray, prompt: str, max_new_tokens: int = 32) -> str:
        """Text the model says about the clip. Only where ``can_generate``."""
        raise CannotGenerateError(
            f"backbone {self.config.name} ({self.config.architecture}) cannot generate text; "
            "use a preset with can_generate: true (qwen2_5_omni_*, cosmos_reason2_*)"
        )

    @abc.abstractmethod
    def _encode(self, frames: np.ndarray, instruction: str, audio: np.ndarray | None) -> np.ndarray:
        """Validated inputs -> (width,) features."""

    @abc.abstractmethod
    def torch_modules(self) -> list[Any]:
        """Every torch.nn.Module holding this backbone's weights (for freezing checks and export)."""

    def parameters(self) -> Iterator[Any]:
        for module in self.torch_modules():
            yield from module.parameters()

    def num_parameters(self) -> int:
        return sum(int(p.numel()) for p in self.parameters())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.backbone_id!r}, width={self.width}, T={self.num_frames}, "
            f"frame_size={self.frame_size}, audio={self.has_audio}, generate={self.can_generate})"
        )


def freeze(module: Any) -> Any:
    """eval() + requires_grad False on every parameter; returns the module."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def masked_mean(hidden: Any, mask: Any) -> Any:
    """Mean over the sequence axis of (B, S, D) hidden states where mask (B, S) is true."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
