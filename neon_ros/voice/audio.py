"""Audio I/O for the voice nodes: any rate / channel count in, 16 kHz mono float32 out.

- ``to_float``, ``to_mono``, ``resample``, ``prepare``: format conversion (polyphase
  resampling with scipy, channel average for the down-mix),
- ``read_wav`` / ``write_wav`` (atomic: a reader of the output directory never sees half a file),
- sources that yield fixed-size 16 kHz mono blocks: ``FileSource`` (one WAV, or a directory of
  WAVs played once in name order) and ``MicSource`` (sounddevice); ``open_source`` picks one,
- ``play`` on the speaker (sounddevice), interruptible.

No sound card is reported as ``AudioDeviceError`` with a message that says so; nothing here
imports rclpy.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from neon_ros.errors import UnavailableError

SAMPLE_RATE = 16_000  # Hz: what silero-vad and Whisper consume
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class AudioDeviceError(UnavailableError, RuntimeError):
    """No usable sound device (no card, no PortAudio, bad device index/name)."""


def to_float(audio: np.ndarray) -> np.ndarray:
    """Integer PCM (int16/int32/uint8) or float -> float32 in [-1, 1] (non-finite -> 0)."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        out = a.astype(np.float32) / 32768.0
    elif a.dtype == np.int32:
        out = a.astype(np.float32) / 2147483648.0
    elif a.dtype == np.uint8:
        out = (a.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32, copy=False)
    else:
        raise ValueError(f"unsupported audio sample type {a.dtype}")
    if not np.all(np.isfinite(out)):
        out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(out, -1.0, 1.0)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> (n,) by averaging the channels."""
    a = np.asarray(audio)
    if a.ndim == 1:
        return a
    if a.ndim == 2:
        return a.mean(axis=1, dtype=np.float32) if a.shape[1] > 1 else a[:, 0]
    raise ValueError(f"audio must be (samples,) or (samples, channels), got shape {a.shape}")


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) of a mono float signal."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    a = np.asarray(audio, dtype=np.float32)
    if rate_in == rate_out or a.size == 0:
        return a
    from scipy.signal import resample_poly

    ratio = Fraction(int(rate_out), int(rate_in))
    return resample_poly(a, ratio.numerator, ratio.denominator).astype(np.float32)


def prepare(audio: np.ndarray, rate: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Any PCM array at any rate / channel count -> mono float32 at ``rate_out``."""
    return resample(to_mono(to_float(audio)), rate, rate_out)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples float32, shape (n,) or (n, channels)), sample rate. Clear error for bad files."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError) as exc:  # soundfile raises these for unreadable files
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc
    return data, int(rate)


def load(path: str | Path, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """An audio file -> mono float32 at ``rate_out``."""
    data, rate = read_wav(path)
    return prepare(data, rate, rate_out)


def write_wav(path: str | Path, audio: np.ndarray, rate: int) -> Path:
    """Write 16-bit PCM atomically (temp file in the same directory, then rename)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".wav", dir=str(path.parent))
    os.close(fd)
    try:
        sf.write(tmp, np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), int(rate), subtype="PCM_16")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def audio_files(source: str | Path) -> list[Path]:
    """A file -> [file]; a directory -> its audio files in name order; clear error otherwise."""
    p = Path(source).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"audio directory {p} holds no {'/'.join(AUDIO_EXTENSIONS)} files")
        return files
    raise FileNotFoundError(f"audio source {p} is neither 'mic', an audio file nor a directory")


# --- sources ---------------------------------------------------------------------------------

class FileSource:
    """Blocks of 16 kHz mono float32 from one audio file or a directory of them (name order).

    ``realtime``: 1.0 paces blocks like a microphone would; 0 delivers them as fast as the
    consumer takes them. ``gap_s`` of silence is played after each file (so an utterance that
    ends a file is closed by the VAD), ``lead_s`` before the first.
    """

    def __init__(self, source: str | Path, block: int = 512, realtime: float = 1.0,
                 gap_s: float = 1.0, lead_s: float = 0.3):
        if block <= 0:
            raise ValueError("block must be positive")
        if realtime < 0:
            raise ValueError("realtime must be >= 0")
        self.files = audio_files(source)
        self.block, self.realtime, self.gap_s, self.lead_s = block, realtime, gap_s, lead_s
        self.current: Path | None = None
        self.started_at = float("nan")  # time.monotonic() of stream time 0 (first block)
        self._stop = threading.Event()

    def describe(self) -> str:
        return f"{len(self.files)} file(s) from {self.files[0].parent if len(self.files) > 1 else self.files[0]}"

    def close(self) -> None:
        self._stop.set()

    def _clips(self) -> Iterator[np.ndarray]:
        yield np.zeros(int(self.lead_s * SAMPLE_RATE), np.float32)
        for f in self.files:
            self.current = f
            yield load(f)
            yield np.zeros(int(self.gap_s * SAMPLE_RATE), np.float32)

    def blocks(self) -> Iterator[np.ndarray]:
        t0 = self.started_at = time.monotonic()
        sent = 0
        pending = np.zeros(0, np.float32)
        for clip in self._clips():
            pending = np.concatenate([pending, clip])
            while pending.size >= self.block:
                if self._stop.is_set():
                    return
                out, pending = pending[: self.block], pending[self.block:]
                if self.realtime > 0:
                    due = t0 + sent / (SAMPLE_RATE * self.realtime)
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                sent += self.block
                yield out
        if pending.size:
            yield np.concatenate([pending, np.zeros(self.block - pending.size, np.float32)])


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise AudioDeviceError(f"no sound support: PortAudio could not be loaded ({exc})") from exc
    return sd


def _device_arg(device: str | int | None):
    if device in (None, "", "default"):
        return None
    if isinstance(device, str) and device.lstrip("-").isdigit():
        return int(device)
    return device


def check_device(device: str | int | None, kind: str) -> str:
    """Name of the input/output device to use; AudioDeviceError with the reason otherwise."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(_device_arg(device), kind=kind)
    except (ValueError, sd.PortAudioError) as exc:
        try:
            count = len(sd.query_devices())
        except sd.PortAudioError:
            count = 0
        what = "no sound card found (PortAudio lists 0 devices)" if count == 0 else \
            f"{kind} device {device!r} not usable ({count} devices listed; see `python -m sounddevice`)"
        raise AudioDeviceError(f"{what}: {exc}") from exc
    return str(info["name"])


class MicSource:
    """Blocks of 16 kHz mono float32 from a microphone (sounddevice, native rate resampled)."""

    def __init__(self, device: str | int | None = None, block: int = 512, rate: int | None = None):
        self.device_name = check_device(device, "input")
        sd = _sounddevice()
        info = sd.query_devices(_device_arg(device), kind="input")
        self.rate = int(rate or info["default_samplerate"])
        self.block = block
        self._q: queue.Queue[np.ndarray] = queue.Queue(maxsize=200)
        self.overflows = 0
        self._stop = threading.Event()

        def callback(indata, _frames, _time, status):
            if status:
                self.overflows += 1
            try:
                self._q.put_nowait(indata.copy())
            except queue.Full:
                self.overflows += 1

        self._stream = sd.InputStream(device=_device_arg(device), channels=1, samplerate=self.rate,
                                      dtype="float32", callback=callback,
                                      blocksize=max(1, int(self.rate * block / SAMPLE_RATE)))

    def describe(self) -> str:
        return f"microphone {self.device_name!r} at {self.rate} Hz"

    def close(self) -> None:
        self._stop.set()

    def blocks(self) -> Iterator[np.ndarray]:
        pending = np.zeros(0, np.float32)
        with self._stream:
            while not self._stop.is_set():
                try:
                    raw = self._q.get(timeout=0.2)
                except queue.Empty:
                    continue
                pending = np.concatenate([pending, prepare(raw, self.rate)])
                while pending.size >= self.block:
                    out, pending = pending[: self.block], pending[self.block:]
                    yield out


def open_source(source: str, device: str = "", block: int = 512, realtime: float = 1.0):
    """'mic' -> MicSource(device); a file or directory -> FileSource."""
    if source == "mic":
        return MicSource(device or None, block=block)
    return FileSource(source, block=block, realtime=realtime)


# --- playback ----------------------------------------------------------------------------------

def play(audio: np.ndarray, rate: int, device: str | int | None = None,
         cancel: threading.Event | None = None) -> bool:
    """Play on the speaker; returns False when ``cancel`` was set before the end."""
    sd = _sounddevice()
    check_device(device, "output")
    sd.play(np.asarray(audio, dtype=np.float32), int(rate), device=_device_arg(device))
    duration = len(audio) / float(rate)
    t_end = time.monotonic() + duration + 0.2
    while time.monotonic() < t_end:
        if cancel is not None and cancel.wait(0.02):
            sd.stop()
            return False
        if cancel is None:
            time.sleep(0.02)
    sd.wait()
    return True
