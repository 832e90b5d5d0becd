"""Text-to-speech backends for narration (registry ``TTS_BACKENDS``): text -> mono float32 audio.

- ``espeak`` (default, local): the ``espeak-ng`` command line (Debian package espeak-ng),
  WAV on stdout. Text goes in on stdin, never on the command line.
- ``piper`` (optional, local): the ``piper`` command line with a voice model (.onnx). Piper
  is GPL: it is only ever run as a separate program, never imported.
- ``personaplex``: NVIDIA PersonaPlex over its websocket protocol (neon_ros/voice/personaplex.py),
  a server URL, or a server started from the installed package (``local_server_args``), always
  behind ``FallbackTts`` with espeak-ng as the local fallback (see there).

Every ``synthesize(text, cancel)`` can be cancelled (a newer narration pre-empts the one in
progress): it returns None then. A backend that cannot run raises ``TtsUnavailableError`` at
construction with the reason (missing program, missing model, unreachable server).
"""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neon_ros.errors import UnavailableError


class TtsUnavailableError(UnavailableError, RuntimeError):
    """The backend cannot run here; the message says why and what to install or set."""


@dataclass
class TtsConfig:
    """Narration voice settings.

    backend: a key of TTS_BACKENDS.
    voice: espeak-ng voice (e.g. en-us, en-gb, en-us+klatt2).
    rate_wpm: espeak-ng speed in words per minute.
    pitch: espeak-ng pitch 0..99.
    word_gap: espeak-ng extra pause between words, in units of 10 ms.
    executable: program for espeak / piper ('' = espeak-ng / piper on PATH).
    piper_model: Piper voice model (.onnx with its .onnx.json beside it).
    personaplex_url: PersonaPlex server (ws://, wss://, http(s)://).
    personaplex_voice: voice prompt file name on that server.
    local_server_args: if set, start PersonaPlex's own server from the installed package
        with these arguments (weights paths etc.) instead of using personaplex_url.
    timeout_s: longest a synthesis may take (PersonaPlex: also the longest wait for its handshake).
    personaplex_tls_ca_file: wss:// only: a PEM file of certificates to trust besides the system's
        (the self-signed certificate of a server started with --ssl); '' = the system store.
    personaplex_insecure_tls: wss:// only: accept any certificate and host name (a test server on a
        network you control; never the default).
    personaplex_retry_s: after PersonaPlex failed, s during which sentences go straight to the
        local fallback before PersonaPlex is tried again.
    """

    backend: str = "espeak"
    voice: str = "en-us"
    rate_wpm: int = 165
    pitch: int = 50
    word_gap: int = 0
    executable: str = ""
    piper_model: str = ""
    personaplex_url: str = "ws://127.0.0.1:8998"
    personaplex_voice: str = "NATF2.pt"
    local_server_args: list[str] = field(default_factory=list)
    timeout_s: float = 20.0
    personaplex_tls_ca_file: str = ""
    personaplex_insecure_tls: bool = False
    personaplex_retry_s: float = 30.0

    def __post_init__(self):
        if self.backend not in TTS_BACKENDS:
            raise ValueError(f"unknown TTS backend {self.backend!r}; choose one of {sorted(TTS_BACKENDS)}")
        if not 80 <= self.rate_wpm <= 450:
            raise ValueError(f"rate_wpm must be in 80..450, got {self.rate_wpm}")
        if not 0 <= self.pitch <= 99:
            raise ValueError(f"pitch must be in 0..99, got {self.pitch}")
        if not 0 <= self.word_gap <= 100:
            raise ValueError(f"word_gap must be in 0..100, got {self.word_gap}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.personaplex_retry_s < 0:
            raise ValueError("personaplex_retry_s must be >= 0")


def _find_program(name: str, package_hint: str) -> str:
    path = shutil.which(name) if not Path(name).is_absolute() else (name if Path(name).is_file() else None)
    if not path:
        raise TtsUnavailableError(f"{name!r} not found on PATH ({package_hint})")
    return path


def _run(cmd: list[str], stdin: bytes, timeout: float, cancel: threading.Event | None) -> bytes | None:
    """Run a program, killable by ``cancel``; stdout bytes, None if cancelled."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err)
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                if cancel is not None and cancel.is_set():
                    return None
                raise RuntimeError(f"{Path(cmd[0]).name} took longer than {timeout:g} s")
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd[:3])} ... failed ({proc.returncode}): "
                               f"{err.read().decode(errors='replace').strip()[:300]}")
        return out.read()


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    from neon_ros.voice.audio import to_mono

    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return to_mono(audio).astype(np.float32), int(rate)


class EspeakTts:
    """espeak-ng through its command line."""

    name = "espeak"

    def __init__(self, config: TtsConfig):
        self.config = config
        self.program = _find_program(config.executable or "espeak-ng", "Debian: apt install espeak-ng")

    def describe(self) -> str:
        return f"espeak-ng voice {self.config.voice} at {self.config.rate_wpm} wpm"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> tuple[np.ndarray, int] | None:
        c = self.config
        cmd = [self.program, "--stdout", "-b", "1", "-v", c.voice, "-s", str(c.rate_wpm), "-p", str(c.pitch),
               "-g", str(c.word_gap)]
        data = _run(cmd, text.encode("utf-8"), c.timeout_s, cancel)
        return None if data is None else _decode_wav(data)


class PiperTts:
    """Piper through its command line (GPL: a separate process, never imported)."""

    name = "piper"

    def __init__(self, config: TtsConfig):
        self.config = config
        self.program = _find_program(config.executable or "piper",
                                     "install the Piper program (github.com/rhasspy/piper) separately")
        if not config.piper_model:
            raise TtsUnavailableError("backend piper needs piper_model: a voice .onnx file")
        self.model = Path(config.piper_model).expanduser()
        if not self.model.is_file():
            raise TtsUnavailableError(f"Piper voice model {self.model} does not exist")

    def describe(self) -> str:
        return f"piper {self.model.name}"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> tuple[np.ndarray, int] | None:
        with tempfile.TemporaryDirectory() as d:
            wav = Path(d) / "out.wav"
            cmd = [self.program, "--model", str(self.model), "--output_file", str(wav)]
            if _run(cmd, text.encode("utf-8") + b"\n", self.config.timeout_s, cancel) is None:
                return None
            if not wav.is_file():
                raise RuntimeError("piper wrote no audio")
            return _decode_wav(wav.read_bytes())


class PersonaPlexTts:
    """PersonaPlex: a server over its websocket protocol, or one started from the installed package."""

    name = "personaplex"

    def __init__(self, config: TtsConfig):
        from neon_ros.voice.personaplex import (
            PersonaPlexClient,
            PersonaPlexConfig,
            PersonaPlexError,
            PersonaPlexLocal,
        )

        self.config = config
        self.local = None
        url = config.personaplex_url
        if config.local_server_args:
            try:
                self.local = PersonaPlexLocal(list(config.local_server_args))
            except PersonaPlexError as exc:
                raise TtsUnavailableError(str(exc)) from exc
            url = self.local.url
        else:
            self._check_reachable(url)
        self.client = PersonaPlexClient(PersonaPlexConfig(
            url=url, voice_prompt=config.personaplex_voice, max_s=min(config.timeout_s, 30.0),
            connect_timeout=min(config.timeout_s, 5.0), handshake_timeout=config.timeout_s,
            tls_ca_file=config.personaplex_tls_ca_file, insecure_skip_tls_verify=config.personaplex_insecure_tls))
        self._error = PersonaPlexError

    @staticmethod
    def _check_reachable(url: str) -> None:
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2.0):
                pass
        except OSError as exc:
            raise TtsUnavailableError(f"no PersonaPlex server at {url} ({exc}); start one "
                                      "(python -m moshi.server from NVIDIA/personaplex) or use backend espeak") from exc

    def describe(self) -> str:
        return f"PersonaPlex at {self.client.config.url} voice {self.config.personaplex_voice}"

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> tuple[np.ndarray, int] | None:
        try:
            speech = self.client.speak(text, cancel)
        except self._error as exc:
            raise RuntimeError(str(exc)) from exc
        return None if speech is None else (speech.audio, speech.rate)

    def close(self) -> None:
        if self.local is not None:
            self.local.close()


class FallbackTts:
    """A remote backend (PersonaPlex) while it works, a local one (espeak-ng) for every sentence it does not deliver.

    - The primary is built with ``make_primary()`` (which raises TtsUnavailableError when, e.g., its
      server is unreachable) at construction and again whenever a retry is due.
    - Each sentence goes to the primary while it is up. If building it or its ``synthesize`` raises
      (refused or timed-out connection, no handshake, connection closed mid-sentence, malformed or
      over-limit data, a stalled server), the same sentence is synthesized by the fallback instead,
      ``fault`` says why, and the primary is left alone for ``retry_s`` (fixed back-off): sentences
      in that time go straight to the fallback. The first sentence after it tries the primary
      again; when that works the fault clears and the primary speaks again.
    - A half-delivered sentence: the primary's audio is collected in full before anything is
      played, so audio from a session that failed part-way is discarded unplayed and the whole
      sentence is spoken once by the fallback: never lost, never said twice.
    - Cancelled (pre-empted by a newer narration): None, from either backend, and no fault.

    ``clock`` (monotonic seconds) is injectable so the back-off can be tested without waiting.
    """

    def __init__(self, make_primary: Callable[[], object], fallback, retry_s: float,
                 names: tuple[str, str] = ("personaplex", "espeak-ng"), clock: Callable[[], float] = time.monotonic):
        self.make_primary, self.fallback, self.retry_s, self.clock = make_primary, fallback, retry_s, clock
        self.primary_name, self.fallback_name = names
        self.primary = None
        self.fault = ""  # why the primary is out; '' while it works
        self.primary_spoken = 0
        self.fallback_spoken = 0
        self.primary_failures = 0
        self._lock = threading.Lock()
        self._retry_at = clock()
        self._build_primary()

    def _build_primary(self) -> None:
        try:
            self.primary = self.make_primary()
        except TtsUnavailableError as exc:
            self._failed(str(exc))

    def _failed(self, reason: str) -> None:
        with self._lock:
            self.primary_failures += 1
            self.fault = f"{self.primary_name} unreachable: {reason}; speaking with {self.fallback_name}"
            self._retry_at = self.clock() + self.retry_s

    def describe(self) -> str:
        primary = self.primary.describe() if self.primary is not None else f"{self.primary_name} (not reached yet)"
        return f"{primary}, falling back to {self.fallback.describe()}"

    @property
    def speaking_with(self) -> str:
        """The backend the next sentence goes to (as far as known now)."""
        with self._lock:
            return self.fallback_name if self.fault and self.clock() < self._retry_at else self.primary_name

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> tuple[np.ndarray, int] | None:
        with self._lock:
            try_primary = not self.fault or self.clock() >= self._retry_at
        if try_primary and self.primary is None:
            self._build_primary()
        if try_primary and self.primary is not None:
            try:
                result = self.primary.synthesize(text, cancel)
            except Exception as exc:  # any failure of the remote voice: this sentence goes to the fallback
                self._failed(str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}")
            else:
                if result is not None:
                    with self._lock:
                        self.fault = ""
                        self.primary_spoken += 1
                return result
        if cancel is not None and cancel.is_set():
            return None
        result = self.fallback.synthesize(text, cancel)
        if result is not None:
            with self._lock:
                self.fallback_spoken += 1
        return result

    def close(self) -> None:
        close = getattr(self.primary, "close", None)
        if close is not None:
            close()


TTS_BACKENDS: dict[str, type] = {
    "espeak": EspeakTts,
    "piper": PiperTts,
    "personaplex": PersonaPlexTts,
}


def make_tts(config: TtsConfig):
    """Build the configured backend; TtsUnavailableError says why it cannot run.

    ``personaplex`` comes as a FallbackTts over espeak-ng (which must be installed): it is
    built even when the PersonaPlex server is unreachable, and says so in its ``fault``.
    """
    if config.backend == "personaplex":
        try:
            local = EspeakTts(config)
        except TtsUnavailableError as exc:
            raise TtsUnavailableError(f"backend personaplex needs espeak-ng as its local fallback: {exc}") from exc
        return FallbackTts(lambda: PersonaPlexTts(config), local, config.personaplex_retry_s)
    return TTS_BACKENDS[config.backend](config)
