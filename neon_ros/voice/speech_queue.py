"""``SpeechQueue``: speaks narrations one at a time (plain Python; speech_out node and benchmark).

The sentences come ready-made from neon_ros.runtime.narration (what to say, and when);
here they are queued, synthesized (voice.tts) and played or written.

Policy:
- newest wins: a narration that arrives while another is waiting, being synthesized or
  being played pre-empts it (synthesis process killed, playback stopped; counted ``preempted``);
- repeats are throttled: the same text (after normalising case and punctuation) within
  ``repeat_s`` of its last acceptance is dropped (counted ``throttled``);
- stale ones are dropped: a narration older than ``max_age_s`` when its turn comes is skipped.

Output: ``SpeakerSink`` (sounddevice) or ``DirectorySink`` (one WAV per narration, written
atomically, named ``NNNNN_first_words.wav``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neon_ros.voice import audio as audio_io
from neon_ros.voice.vocabulary import normalize


@dataclass
class SpeechQueueConfig:
    """repeat_s: identical narrations within this many seconds are dropped.
    max_age_s: a narration waiting longer than this is stale and skipped.
    """

    repeat_s: float = 5.0
    max_age_s: float = 5.0

    def __post_init__(self):
        if self.repeat_s < 0 or self.max_age_s <= 0:
            raise ValueError("repeat_s must be >= 0 and max_age_s > 0")


@dataclass
class SpeechQueueStats:
    received: int = 0
    spoken: int = 0
    preempted: int = 0
    throttled: int = 0
    stale: int = 0
    failed: int = 0
    last_error: str = ""
    last_text: str = ""
    last_ready_s: float = float("nan")  # received -> audio ready
    last_output: str = ""


class DirectorySink:
    """One WAV per narration in a directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob("[0-9][0-9][0-9][0-9][0-9]_*.wav"))
        self.index = int(existing[-1].name[:5]) + 1 if existing else 0

    def describe(self) -> str:
        return f"WAV files in {self.directory}"

    def output(self, text: str, audio: np.ndarray, rate: int, cancel: threading.Event) -> str:
        slug = "_".join(re.sub(r"[^a-z0-9 ]+", "", text.lower()).split()[:6]) or "narration"
        path = audio_io.write_wav(self.directory / f"{self.index:05d}_{slug}.wav", audio, rate)
        self.index += 1
        return str(path)


class SpeakerSink:
    """The sound card (sounddevice); playback stops when pre-empted."""

    def __init__(self, device: str = ""):
        self.device = device or None
        self.name = audio_io.check_device(self.device, "output")

    def describe(self) -> str:
        return f"speaker {self.name!r}"

    def output(self, text: str, audio: np.ndarray, rate: int, cancel: threading.Event) -> str:
        audio_io.play(audio, rate, self.device, cancel)
        return self.name


class SpeechQueue:
    """Background worker: newest narration wins, repeats throttled, stale ones skipped."""

    def __init__(self, tts, sink, config: SpeechQueueConfig | None = None,
                 on_ready: Callable[[str, float], None] | None = None):
        self.tts, self.sink = tts, sink
        self.config = config or SpeechQueueConfig()
        self.stats = SpeechQueueStats()
        self.on_ready = on_ready  # (text, received -> ready seconds), for the benchmark
        self._cond = threading.Condition()
        self._pending: tuple[str, float] | None = None
        self._cancel = threading.Event()
        self._busy = False
        self._last_said: dict[str, float] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="speech_queue", daemon=True)
        self._thread.start()

    def submit(self, text: str, now: float | None = None) -> str:
        """'queued' | 'throttled' | 'empty'. Pre-empts whatever is waiting or in progress."""
        now = time.monotonic() if now is None else now
        key = normalize(text)
        with self._cond:
            self.stats.received += 1
            if not key:
                return "empty"
            last = self._last_said.get(key)
            if last is not None and now - last < self.config.repeat_s:
                self.stats.throttled += 1
                return "throttled"
            self._last_said[key] = now
            if self._pending is not None or self._busy:
                self.stats.preempted += 1
                self._cancel.set()
            self._pending = (text.strip(), now)
            self._cond.notify()
        return "queued"

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy or self._pending is not None

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stop = True
            self._cancel.set()
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                text, received = self._pending
                self._pending = None
                self._cancel = threading.Event()
                cancel = self._cancel
                self._busy = True
            try:
                self._speak(text, received, cancel)
            finally:
                with self._cond:
                    self._busy = False

    def _speak(self, text: str, received: float, cancel: threading.Event) -> None:
        if time.monotonic() - received > self.config.max_age_s:
            self.stats.stale += 1
            return
        try:
            result = self.tts.synthesize(text, cancel)
        except Exception as exc:  # a failing backend is reported in diagnostics, never fatal
            self.stats.failed += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            return
        if result is None or cancel.is_set():
            return  # pre-empted during synthesis (counted in submit)
        audio, rate = result
        ready = time.monotonic() - received
        if audio.size == 0:
            self.stats.failed += 1
            self.stats.last_error = "backend returned no audio"
            return
        try:
            out = self.sink.output(text, audio, rate, cancel)
        except Exception as exc:  # e.g. the sound card vanished
            self.stats.failed += 1
            self.stats.last_error = f"output failed: {exc}"
            return
        self.stats.spoken += 1
        self.stats.last_text, self.stats.last_ready_s, self.stats.last_output = text, ready, out
        if self.on_ready is not None:
            self.on_ready(text, ready)
