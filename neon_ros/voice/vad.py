"""Voice activity detection with silero-vad, cutting a 16 kHz stream into utterances.

The silero-vad ONNX model shipped in the ``silero-vad`` wheel runs through onnxruntime
directly (no torch import, 1 thread): 512-sample windows (32 ms) with 64 samples of context
and a recurrent state, exactly as the package's own OnnxWrapper feeds it.

``Segmenter.feed(block)`` returns the utterances that ended in that block: speech starts
when the probability crosses ``threshold``, ends after ``min_silence_ms`` below
``threshold - 0.15``; ``speech_pad_ms`` of audio is kept around it; utterances shorter than
``min_speech_ms`` are dropped; ones longer than ``max_utterance_s`` are cut there.
With ``early_ms``, once the silence has lasted that long the utterance so far is offered as
``Segmenter.early`` (a speculative cut): a recognizer may start on it and use the result if
the silence goes on to ``min_silence_ms`` (same start and end), so the wait for the end of
speech and the transcription overlap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from neon_ros.voice.audio import SAMPLE_RATE

WINDOW = 512  # samples per silero-vad step at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees


def silero_model_path(name: str = "silero_vad.onnx") -> Path:
    """The ONNX file inside the installed silero-vad package (FileNotFoundError if absent)."""
    try:
        path = Path(str(resources.files("silero_vad.data").joinpath(name)))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError("silero-vad is not installed (pip install silero-vad)") from exc
    if not path.is_file():
        raise FileNotFoundError(f"silero-vad model {path} is missing")
    return path


class SileroVad:
    """Speech probability per 512-sample window (stateful, streaming)."""

    def __init__(self, model_path: str | Path | None = None):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(model_path or silero_model_path()), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)

    def __call__(self, window: np.ndarray) -> float:
        w = np.asarray(window, dtype=np.float32).reshape(1, -1)
        if w.shape[1] != WINDOW:
            raise ValueError(f"silero-vad takes {WINDOW} samples at 16 kHz, got {w.shape[1]}")
        x = np.concatenate([self._context, w], axis=1)
        out, self._state = self.session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -CONTEXT:]
        return float(out.reshape(-1)[0])


@dataclass
class VadConfig:
    """Utterance segmentation settings.

    threshold: speech probability that starts an utterance (0..1).
    min_silence_ms: silence that ends an utterance.
    min_speech_ms: shorter bursts (clicks, coughs) are dropped.
    speech_pad_ms: audio kept before the start and after the end.
    max_utterance_s: an utterance is cut (and transcribed) at this length.
    early_ms: silence after which the utterance so far is offered for speculative recognition
        (0 = never; must be below min_silence_ms).
    """

    threshold: float = 0.5
    min_silence_ms: int = 500
    min_speech_ms: int = 250
    speech_pad_ms: int = 200
    max_utterance_s: float = 15.0
    early_ms: int = 0

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.min_silence_ms < 32 or self.min_speech_ms < 0 or self.speech_pad_ms < 0:
            raise ValueError("min_silence_ms must be >= 32, min_speech_ms and speech_pad_ms >= 0")
        if not 0 <= self.early_ms < self.min_silence_ms:
            raise ValueError(f"early_ms must be in [0, min_silence_ms), got {self.early_ms}")
        if self.max_utterance_s <= 1.0:
            raise ValueError(f"max_utterance_s must be > 1 s, got {self.max_utterance_s}")


@dataclass
class Utterance:
    """One segmented utterance: 16 kHz mono audio and when it ended (time.monotonic)."""

    audio: np.ndarray
    start_s: float  # stream time of the first sample kept (s since the segmenter started)
    end_s: float  # stream time of the end of speech
    ended_at: float = field(default_factory=time.monotonic)
    peak_prob: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.audio.size / SAMPLE_RATE


class Segmenter:
    """Streaming utterance segmentation over blocks of any length."""

    def __init__(self, config: VadConfig | None = None, vad: SileroVad | None = None):
        self.config = config or VadConfig()
        self.vad = vad or SileroVad()
        c = self.config
        self._pad = int(c.speech_pad_ms * SAMPLE_RATE / 1000)
        self._silence_windows = max(1, int(np.ceil(c.min_silence_ms * SAMPLE_RATE / 1000 / WINDOW)))
        self._early_windows = int(np.ceil(c.early_ms * SAMPLE_RATE / 1000 / WINDOW))
        self._min_speech = int(c.min_speech_ms * SAMPLE_RATE / 1000)
        self._max = int(c.max_utterance_s * SAMPLE_RATE)
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self._pending = np.zeros(0, np.float32)
        self._history = np.zeros(0, np.float32)  # pre-roll while not in speech
        self._speech: list[np.ndarray] = []
        self._in_speech = False
        self._quiet = 0
        self._samples = 0
        self._start = 0
        self._peak = 0.0
        self.last_prob = 0.0
        self.windows = 0
        self.early: Utterance | None = None  # the latest speculative cut (see the module doc); the reader clears it

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def feed(self, block: np.ndarray) -> list[Utterance]:
        out: list[Utterance] = []
        self._pending = np.concatenate([self._pending, np.asarray(block, dtype=np.float32).reshape(-1)])
        while self._pending.size >= WINDOW:
            w, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            u = self._step(w)
            if u is not None:
                out.append(u)
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: close an utterance in progress."""
        if self._in_speech:
            u = self._close(self._samples)
            return [u] if u is not None else []
        return []

    def _step(self, w: np.ndarray) -> Utterance | None:
        c = self.config
        prob = self.vad(w)
        self.last_prob = prob
        self.windows += 1
        self._samples += WINDOW
        if not self._in_speech:
            self._history = np.concatenate([self._history, w])[-(self._pad + WINDOW):]
            if prob >= c.threshold:
                self._in_speech = True
                self._speech = [self._history.copy()]
                self._start = self._samples - self._history.size
                self._quiet = 0
                self._peak = prob
            return None
        self._speech.append(w)
        self._peak = max(self._peak, prob)
        self._quiet = self._quiet + 1 if prob < c.threshold - 0.15 else 0
        length = sum(a.size for a in self._speech)
        if self._quiet >= self._silence_windows:
            # keep speech_pad_ms of the trailing silence, drop the rest
            trailing = self._quiet * WINDOW
            drop = max(0, trailing - self._pad)
            return self._close(self._samples - trailing, drop=drop)
        if self._quiet == self._early_windows > 0 and self._quiet < self._silence_windows:
            trailing = self._quiet * WINDOW
            audio = np.concatenate(self._speech)
            self.early = Utterance(audio=audio[: audio.size - max(0, trailing - self._pad)],
                                   start_s=self._start / SAMPLE_RATE,
                                   end_s=(self._samples - trailing) / SAMPLE_RATE, peak_prob=self._peak)
        if length >= self._max:
            return self._close(self._samples)
        return None

    def _close(self, end_sample: int, drop: int = 0) -> Utterance | None:
        audio = np.concatenate(self._speech) if self._speech else np.zeros(0, np.float32)
        if drop:
            audio = audio[: max(0, audio.size - drop)]
        speech_len = end_sample - self._start - min(self._pad, end_sample - self._start)
        self._in_speech = False
        self._speech = []
        self._history = np.zeros(0, np.float32)
        self._quiet = 0
        if speech_len < self._min_speech or audio.size == 0:
            return None
        return Utterance(audio=audio, start_s=self._start / SAMPLE_RATE, end_s=end_sample / SAMPLE_RATE,
                         peak_prob=self._peak)
