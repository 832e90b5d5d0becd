"""Speech input pipeline (plain Python, used by the speech_in node and the benchmark).

source blocks (16 kHz mono) -> silero-vad ``Segmenter`` -> utterance queue -> Whisper -> callback.

Two threads: the capture thread never waits for Whisper (a long transcription does not make
the microphone overflow); the recognition thread transcribes utterances in order. The
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

from neon_ros.voice.asr import AsrConfig, Transcript, normalize
from neon_ros.voice.vad import Segmenter, Utterance


@dataclass
class Heard:
    """The outcome of one utterance."""

    utterance: Utterance
    transcript: Transcript
    accepted: bool
    text: str  # the transcript as spoken (Whisper's casing and punctuation), '' if rejected
    done_at: float = field(default_factory=time.monotonic)

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
    last_latency_s: float = float("nan")
    source_done: bool = False


class SpeechListener:
    """Runs a source through VAD and ASR on two background threads."""

    def __init__(self, asr, segmenter: Segmenter, asr_config: AsrConfig,
                 on_heard: Callable[[Heard], None], max_queue: int = 4):
        self.asr = asr
        self.segmenter = segmenter
        self.asr_config = asr_config
        self.on_heard = on_heard
        self.stats = ListenerStats()
        self._q: queue.Queue[Utterance | None] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._source = None
        self._working = False

    # -- synchronous use (tests, benchmark) --------------------------------------------------
    def recognize(self, utterance: Utterance) -> Heard:
        transcript = self.asr.transcribe(utterance.audio)
        ok = transcript.accepted(self.asr_config)
        heard = Heard(utterance, transcript, ok, transcript.text.strip() if ok else "")
        self.stats.utterances += 1
        if ok:
            self.stats.accepted += 1
            self.stats.last_text = heard.text
        else:
            self.stats.rejected += 1
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

    def _enqueue(self, u: Utterance) -> None:
        try:
            self._q.put_nowait(u)
        except queue.Full:
            self.stats.dropped += 1

    def _capture(self) -> None:
        try:
            for block in self._source.blocks():
                if self._stop.is_set():
                    return
                self.stats.blocks += 1
                for u in self.segmenter.feed(block):
                    self._enqueue(u)
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
                u = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            if u is None:
                return
            self._working = True
            try:
                heard = self.recognize(u)
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
