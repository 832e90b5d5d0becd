"""Audio I/O for the voice nodes: any rate / channel count in, 16 kHz mono float32 out.

- ``to_float``, ``to_mono``, ``resample``, ``prepare``: format conversion (polyphase
  resampling with scipy, channel average for the down-mix),
- ``read_wav`` / ``write_wav`` (atomic: a reader of the output directory never sees half a file),
- ``StreamResampler``: the same polyphase filter as ``resample``, fed block by block with its
  state kept, so a stream resampled in blocks equals the whole signal resampled at once (no
  edge effects at block joins, no drift from rounding each block's length),
- sources that yield fixed-size 16 kHz mono blocks: ``FileSource`` (one WAV, or a directory of
  WAVs played once in name order) and ``MicSource`` (sounddevice: asks the device for 16 kHz
  mono, else takes its native rate / the fewest channels it offers and converts);
  ``open_source`` picks one,
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


def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR that scipy.signal.resample_poly designs by default (gain ``up``)."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    half_len = 10 * max_rate
    return (firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up).astype(np.float64)


class StreamResampler:
    """Streaming polyphase resampling, mono float32: ``feed(block)`` returns what is complete.

    Output sample n is ``sum_i h[n*down + half_len - i*up] * x[i]`` with resample_poly's own
    filter and alignment, so concatenated outputs equal ``resample(whole signal)`` except the
    last ~half filter length, which waits for input that has not arrived yet (a few ms).
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE):
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        ratio = Fraction(int(rate_out), int(rate_in))
        self.up, self.down = ratio.numerator, ratio.denominator
        self.passthrough = self.up == self.down == 1
        if self.passthrough:
            return
        h = _polyphase_filter(self.up, self.down)
        self._half = (h.size - 1) // 2
        self._taps = -(-h.size // self.up)  # input samples one output sample spans
        padded = np.zeros(self._taps * self.up, np.float64)
        padded[: h.size] = h
        self._phases = padded.reshape(self._taps, self.up).T  # [phase, t] = h[phase + t*up]
        # input history: x[self._base:], with taps-1 zeros before the stream start
        self._base = -(self._taps - 1)
        self._buf = np.zeros(self._taps - 1, np.float64)
        self._next = 0  # index of the next output sample

    def feed(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64)])
        newest = self._base + self._buf.size - 1  # index of the newest input sample
        # output n is complete once input floor((n*down + half)/up) has arrived
        last = (newest * self.up - self._half) // self.down
        if last < self._next:
            return np.zeros(0, np.float32)
        n = np.arange(self._next, last + 1, dtype=np.int64)
        j = n * self.down + self._half
        phase, i0 = j % self.up, j // self.up - self._base  # i0: buffer index of the newest input used
        windows = self._buf[i0[:, None] - np.arange(self._taps)[None, :]]
        out = np.einsum("nt,nt->n", self._phases[phase], windows)
        self._next = int(last) + 1
        keep_from = (self._next * self.down + self._half) // self.up - (self._taps - 1)
        drop = keep_from - self._base
        if drop > 0:
            self._buf = self._buf[drop:]
            self._base = keep_from
        return out.astype(np.float32)


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


def negotiate_input(device: str | int | None, rate: int | None = None,
                    channels: int | None = None) -> tuple[int, int]:
    """(sample rate, channels) to open an input device with: 16 kHz mono where it takes that
    (ALSA ``default``/``plug``, PulseAudio and PipeWire convert for us), else the device's
    native rate and the fewest channels it accepts (a bare ``hw:`` card, a mic array), which
    ``MicSource`` down-mixes and resamples itself. ``rate`` / ``channels`` force one value.
    AudioDeviceError if nothing opens."""
    sd = _sounddevice()
    dev = _device_arg(device)
    info = sd.query_devices(dev, kind="input")
    native = int(info["default_samplerate"])
    max_ch = max(1, int(info["max_input_channels"]))
    rates = [int(rate)] if rate else list(dict.fromkeys([SAMPLE_RATE, native]))
    channels = [int(channels)] if channels else list(dict.fromkeys(c for c in (1, 2, max_ch) if c <= max_ch))
    errors = []
    for r in rates:
        for ch in channels:
            try:
                sd.check_input_settings(device=dev, samplerate=r, channels=ch, dtype="float32")
            except (ValueError, sd.PortAudioError) as exc:
                errors.append(f"{r} Hz x {ch}: {exc}")
                continue
            return r, ch
    raise AudioDeviceError(f"input device {info['name']!r} accepts none of the tried settings "
                           f"(float32; {'; '.join(errors)})")


class MicSource:
    """Blocks of 16 kHz mono float32 from a microphone (sounddevice).

    The stream is opened at 16 kHz mono where the device accepts it, else at its native rate
    and fewest channels (``negotiate_input``); then the channels are averaged and a
    ``StreamResampler`` (stateful: no clicks at block joins, no drift) brings it to 16 kHz.
    """

    def __init__(self, device: str | int | None = None, block: int = 512, rate: int | None = None,
                 channels: int | None = None):
        if block <= 0:
            raise ValueError("block must be positive")
        self.device_name = check_device(device, "input")
        sd = _sounddevice()
        self.rate, self.channels = negotiate_input(device, rate, channels)
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

        try:
            self._stream = sd.InputStream(device=_device_arg(device), channels=self.channels,
                                          samplerate=self.rate, dtype="float32", callback=callback,
                                          blocksize=max(1, int(self.rate * block / SAMPLE_RATE)))
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open input device {self.device_name!r} at {self.rate} Hz x "
                                   f"{self.channels}: {exc}") from exc

    def describe(self) -> str:
        conv = [f"{self.channels} channels down-mixed"] if self.channels > 1 else []
        conv += [f"resampled to {SAMPLE_RATE} Hz"] if self.rate != SAMPLE_RATE else []
        return f"microphone {self.device_name!r} at {self.rate} Hz" + (f" ({', '.join(conv)})" if conv else "")

    def close(self) -> None:
        self._stop.set()

    def blocks(self) -> Iterator[np.ndarray]:
        resampler = StreamResampler(self.rate, SAMPLE_RATE)
        pending = np.zeros(0, np.float32)
        with self._stream:
            while not self._stop.is_set():
                try:
                    raw = self._q.get(timeout=0.2)
                except queue.Empty:
                    continue
                pending = np.concatenate([pending, resampler.feed(to_mono(to_float(raw)))])
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
