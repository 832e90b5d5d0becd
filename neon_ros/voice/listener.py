"""Speech input pipeline (plain Python, used by the speech_in node and the benchmark).

source blocks (16 kHz mono) -> silero-vad ``Segmenter`` -> utterance queue -> Whisper ->
guards -> callback.

The guards, in order: Whisper's own no-speech rule (``Transcript.rejection``), then, with a
``Vocabulary``, a phrase repeated in a loop and too many unknown content words
(``Vocabulary.rejection``). A rejected utterance carries its reason and no instruction.

Two threads: the capture thread never waits for Whisper (a long transcription does not make
the microphone overflow); the recognition thread transcribes utterances in order. With the
segmenter's speculative cuts (``VadConfig.early_ms``) the recognition thread starts on an
utterance while the VAD still waits for the end-of-speech silence; when the utterance then
closes with the same start and end, that transcript is used (the audio differs only by
trailing silence), so the silence wait and Whisper overlap. The
callback gets a ``Heard`` for every utterance, accepted or not, so the caller can count
rejections; only accepted ones carry an instruction.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from neon_ros.voice.asr import AsrConfig, Transcript
from neon_ros.voice.vad import Segmenter, Utterance
from neon_ros.voice.vocabulary import Vocabulary, normalize


@dataclass
class Heard:
    """The outcome of one utterance."""

    utterance: Utterance
    transcript: Transcript
    accepted: bool
    text: str  # the transcript as spoken (Whisper's casing and punctuation), '' if rejected
    reason: str = ""  # why it was rejected ('' if accepted)
    done_at: float = field(default_factory=time.monotonic)

    @property
    def confidence(self) -> float:
        return self.transcript.confidence

    @property
    def latency_s(self) -> float:
        """VAD closed the utterance -> transcript ready."""
        return self.done_at - self.utterance.ended_at


@dataclass
class ListenerStats:
    blocks: int = 0
    utterances: int = 0
    accepted: int = 0
    rejected: int = 0
    dropped: int = 0  # utterances dropped because recognition fell behind
    errors: int = 0
    last_error: str = ""
    last_text: str = ""
    last_confidence: float = float("nan")
    last_rejection: str = ""  # the transcript and why it was rejected
    last_latency_s: float = float("nan")
    source_done: bool = False


class SpeechListener:
    """Runs a source through VAD and ASR on two background threads.

    vocabulary: the robot's commands (None = no vocabulary guards); max_unknown: the fraction of
    content words that may be unknown to it.
    """

    def __init__(self, asr, segmenter: Segmenter, asr_config: AsrConfig,
                 on_heard: Callable[[Heard], None], max_queue: int = 4,
                 vocabulary: Vocabulary | None = None, max_unknown: float = 0.5):
        if not 0.0 <= max_unknown <= 1.0:
            raise ValueError(f"max_unknown must be in [0, 1], got {max_unknown}")
        self.asr = asr
        self.segmenter = segmenter
        self.asr_config = asr_config
        self.vocabulary = vocabulary
        self.max_unknown = max_unknown
        self.on_heard = on_heard
        self.stats = ListenerStats()
        self._q: queue.Queue[tuple[bool, Utterance] | None] = queue.Queue(maxsize=max_queue)  # (early?, cut)
        self._early: tuple[float, float, Transcript] | None = None  # (start_s, end_s, transcript) of the last early cut
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._source = None
        self._working = False

    # -- synchronous use (tests, benchmark) --------------------------------------------------
    def recognize(self, utterance: Utterance, transcript: Transcript | None = None) -> Heard:
        """Transcribe (unless ``transcript`` is given) and judge one utterance."""
        transcript = transcript or self.asr.transcribe(utterance.audio)
        reason = transcript.rejection(self.asr_config)
        if not reason and self.vocabulary is not None:
            reason = self.vocabulary.rejection(transcript.text, self.max_unknown)
        heard = Heard(utterance, transcript, not reason, "" if reason else transcript.text.strip(), reason)
        self.stats.utterances += 1
        self.stats.last_confidence = transcript.confidence
        if not reason:
            self.stats.accepted += 1
            self.stats.last_text = heard.text
        else:
            self.stats.rejected += 1
            self.stats.last_rejection = f"{transcript.text.strip()!r}: {reason}"
        self.stats.last_latency_s = heard.latency_s
        return heard

    def feed(self, block: np.ndarray) -> list[Heard]:
        """Feed one block and recognize what ended in it (no threads)."""
        self.stats.blocks += 1
        return [self.recognize(u) for u in self.segmenter.feed(block)]

    # -- background use (the node) -------------------------------------------------------------
    def start(self, source) -> None:
        self._source = source
        self._stop.clear()
        self._threads = [threading.Thread(target=self._capture, name="voice-capture", daemon=True),
                         threading.Thread(target=self._recognize, name="voice-asr", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._source is not None:
            self._source.close()
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass
        for t in self._threads:
            t.join(timeout)

    def _enqueue(self, u: Utterance, early: bool = False) -> None:
        try:
            self._q.put_nowait((early, u))
        except queue.Full:
            if not early:  # a speculative cut is only an optimisation
                self.stats.dropped += 1

    def _capture(self) -> None:
        try:
            for block in self._source.blocks():
                if self._stop.is_set():
                    return
                self.stats.blocks += 1
                for u in self.segmenter.feed(block):
                    self._enqueue(u)
                if self.segmenter.early is not None:
                    if self._q.empty():  # speculate only when nothing else waits for recognition
                        self._enqueue(self.segmenter.early, early=True)
                    self.segmenter.early = None
            for u in self.segmenter.flush():
                self._enqueue(u)
        except Exception as exc:  # a device that vanishes mid-stream: report, do not crash the node
            self.stats.errors += 1
            self.stats.last_error = f"audio source failed: {exc}"
        finally:
            self.stats.source_done = True

    def _recognize(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                return
            early, u = item
            self._working = True
            try:
                if early:
                    self._early = (u.start_s, u.end_s, self.asr.transcribe(u.audio))
                    continue
                ready = self._early
                self._early = None
                same = ready is not None and (ready[0], ready[1]) == (u.start_s, u.end_s)
                heard = self.recognize(u, ready[2] if same else None)
                self.on_heard(heard)
            except Exception as exc:  # keep listening after one bad utterance
                self.stats.errors += 1
                self.stats.last_error = f"transcription failed: {exc}"
            finally:
                self._working = False

    @property
    def idle(self) -> bool:
        """Source finished and every utterance handled."""
        return self.stats.source_done and self._q.empty() and not self._working


def matches(text: str, expected: str) -> bool:
    """Same words after normalising case and punctuation."""
    return normalize(text) == normalize(expected)
