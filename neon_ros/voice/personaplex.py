"""PersonaPlex (NVIDIA's full-duplex speech model) as a narration voice.

Protocol implemented (PersonaPlex's ``moshi.server``, NVIDIA/personaplex, a Kyutai Moshi fork):

- websocket ``GET {ws|wss}://HOST:8998/api/chat?text_prompt=...&voice_prompt=NATF2.pt[&seed=N]``;
  ``text_prompt`` is the role prompt (the server wraps it in ``<system> ... <system>``),
  ``voice_prompt`` names a voice file in the server's voice directory (required by the server).
  The server uses a self-signed certificate when started with ``--ssl``: give the client that
  certificate (``tls_ca_file``) so it is verified like any other; ``insecure_skip_tls_verify``
  turns verification off (a man in the middle then reads and writes the session).
- every websocket message is binary: one kind byte, then the payload.
  ``0x00`` handshake (server -> client, once the system prompts are processed; nothing may
  be sent before it), ``0x01`` audio: a piece of an Ogg Opus stream, 24 kHz mono, split at
  any byte (both directions), ``0x02`` text: a UTF-8 piece of the model's own words
  (server -> client). Other kinds are ignored by the server; Kyutai's protocol also names
  ``0x05`` error (UTF-8 text), which this client reports.
- full duplex: the server steps the model once per 80 ms (1920 samples) of audio it
  receives, so output flows only while input flows. To narrate, the client streams
  silence (paced at ``pace`` x real time) with the narration in the role prompt, and
  collects the model's speech until it has spoken and gone quiet for ``quiet_s``, or
  ``max_s`` passes. The server sends audio every model step, so a narration is a failure
  (PersonaPlexError) when no speech came within ``max_s``, or when audio stopped coming
  after speech began (the server stalled mid-sentence); the connection closing before the
  end is one too. Callers (voice.tts.FallbackTts) then say the sentence another way.

Untrusted input is bounded: a websocket message (and frame) larger than ``max_message_bytes``,
more than ``max_session_bytes`` received in one narration, or more decoded audio than the
narration can last (``max_s`` + ``AUDIO_SLACK_S``) ends the session with a PersonaPlexError and
closes the connection. The websocket library buffers at most ``RECV_QUEUE_FRAMES`` frames, so a
flooding server costs at most about ``(RECV_QUEUE_FRAMES + 1) * max_message_bytes +
max_session_bytes`` of memory.

``PersonaPlexLocal`` runs the server from an installed PersonaPlex package (module
``moshi`` of NVIDIA/personaplex; import-guarded, it needs a large GPU and local weights)
on loopback and talks to it with the same client.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np

from neon_ros.errors import NeonError
from neon_ros.voice.oggopus import OPUS_RATE, OggOpusReader, OggOpusWriter

KIND_HANDSHAKE = 0x00
KIND_AUDIO = 0x01
KIND_TEXT = 0x02
KIND_ERROR = 0x05
CLOSE_MESSAGE_TOO_BIG = 1009  # websocket close code the library sends for a message over max_size
FRAME_SAMPLES = 1920  # 80 ms at 24 kHz: one model step
RECV_QUEUE_FRAMES = 16  # frames the websocket library buffers before it stops reading the socket
AUDIO_SLACK_S = 2.0  # decoded audio allowed beyond max_s (codec delay, the last model steps)
LOUD_RMS = 0.01  # decoded output above this RMS counts as speech
STALL_SLACK_S = 1.0  # after speech, no audio message for quiet_s + this many s of model steps = a stalled server
DEFAULT_PROMPT = ("You are Neon, a humanoid robot that narrates what it does. "
                  "Say exactly this sentence, then stay silent: \"{text}\"")


class PersonaPlexError(NeonError, RuntimeError):
    """Connection, handshake or protocol failure (message says which)."""


@dataclass
class PersonaPlexConfig:
    """Client settings.

    url: server base URL (ws://, wss://, http:// or https://); /api/chat is appended if absent.
    voice_prompt: voice file name on the server (e.g. NATF2.pt).
    prompt: role prompt template; {text} is replaced by the narration.
    seed: model sampling seed sent to the server (-1 = server default).
    tls_ca_file: a PEM file of certificates to trust for wss:// besides the system's (e.g. the
        self-signed certificate of a PersonaPlex server started with --ssl); '' = system store only.
    insecure_skip_tls_verify: accept any wss:// certificate and host name (no protection against
        a man in the middle; only for a test server on a network you control).
    max_message_bytes: largest websocket message or frame accepted (PersonaPlex sends Ogg pages
        of a few hundred bytes and short text pieces).
    max_session_bytes: most payload bytes received in one narration (8 s of Opus is ~64 KB).
    connect_timeout / handshake_timeout: s to open the socket / to get the handshake
        (the server processes the voice and role prompts first).
    max_s: longest narration collected (s of model time); quiet_s: silence after speech that ends it.
    pace: input streaming speed relative to real time (1 = like a microphone).
    """

    url: str = "ws://127.0.0.1:8998"
    voice_prompt: str = "NATF2.pt"
    prompt: str = DEFAULT_PROMPT
    seed: int = -1
    tls_ca_file: str = ""
    insecure_skip_tls_verify: bool = False
    max_message_bytes: int = 1 << 20
    max_session_bytes: int = 16 << 20
    connect_timeout: float = 5.0
    handshake_timeout: float = 30.0
    max_s: float = 8.0
    quiet_s: float = 0.8
    pace: float = 1.0

    def __post_init__(self):
        scheme = urlsplit(self.url).scheme
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"PersonaPlex url must be ws://, wss://, http:// or https://, got {self.url!r}")
        if self.max_s <= 0 or self.quiet_s <= 0 or self.pace <= 0:
            raise ValueError("max_s, quiet_s and pace must be positive")
        if "{text}" not in self.prompt:
            raise ValueError("prompt must contain {text}")
        if self.max_message_bytes <= 0 or self.max_session_bytes <= 0:
            raise ValueError("max_message_bytes and max_session_bytes must be positive (they bound what a server "
                             "can make this client hold)")


@dataclass
class Speech:
    """What the server said: 48 kHz mono float32 audio and its own text."""

    audio: np.ndarray
    rate: int
    text: str
    handshake_s: float
    first_audio_s: float  # after the handshake; nan if no audio came
    messages: dict[int, int] = field(default_factory=dict)  # kind -> count received


def chat_url(config: PersonaPlexConfig, text: str) -> str:
    parts = urlsplit(config.url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/api/chat"):
        path += "/api/chat"
    query = {"text_prompt": config.prompt.format(text=text), "voice_prompt": config.voice_prompt}
    if config.seed >= 0:
        query["seed"] = str(config.seed)
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def ssl_context(config: PersonaPlexConfig, url: str) -> ssl.SSLContext | None:
    """The TLS context for ``url`` (None for ws://): verifies the certificate and host name unless
    ``config.insecure_skip_tls_verify``; trusts ``config.tls_ca_file`` besides the system store."""
    if not url.startswith("wss://"):
        return None
    ctx = ssl.create_default_context()
    if config.tls_ca_file:
        ctx.load_verify_locations(cafile=config.tls_ca_file)
    if config.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class PersonaPlexClient:
    """Blocking client: ``speak(text)`` -> Speech. One websocket session per narration."""

    def __init__(self, config: PersonaPlexConfig | None = None):
        self.config = config or PersonaPlexConfig()

    def speak(self, text: str, cancel: threading.Event | None = None) -> Speech | None:
        """None when ``cancel`` is set before the narration is complete.

        The session runs on an event loop of its own in the calling thread, so one thread reads and
        writes the socket. (websockets' threaded client reads in a second thread while the caller
        writes, and one OpenSSL connection must not be read and written at once: with TLS 1.3 a
        wss:// request written while the reader took the server's session tickets was lost, and
        the server closed the connection unanswered: "did not receive a valid HTTP response".)
        """
        return asyncio.run(self._speak(text, cancel))

    async def _speak(self, text: str, cancel: threading.Event | None) -> Speech | None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        c = self.config
        url = chat_url(c, text)
        t0 = time.monotonic()
        counts: dict[int, int] = {}
        received = [0]  # message bytes received in this session
        connected = False
        try:
            async with connect(url, ssl=ssl_context(c, url), open_timeout=c.connect_timeout,
                               max_size=(c.max_message_bytes, c.max_message_bytes), max_queue=RECV_QUEUE_FRAMES,
                               compression=None, ping_interval=None, close_timeout=2) as ws:
                connected = True
                await self._await_handshake(ws, counts, received, cancel)
                handshake_s = time.monotonic() - t0
                result = await self._converse(ws, counts, received, cancel)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CLOSE_MESSAGE_TOO_BIG:
                raise PersonaPlexError(
                    f"PersonaPlex at {c.url} sent a message over max_message_bytes={c.max_message_bytes}: "
                    "connection closed (raise the limit only for a server you trust)") from exc
            raise PersonaPlexError(f"PersonaPlex closed the connection: {exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise PersonaPlexError(
                f"cannot connect to PersonaPlex at {c.url}: its TLS certificate is not trusted ({exc.verify_message}); "
                "pass the server's certificate as tls_ca_file (or install its CA), or, only for a test server on "
                "a network you control, set insecure_skip_tls_verify") from exc
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            what = "connection to PersonaPlex failed" if connected else "cannot connect to PersonaPlex"
            # asyncio words a refusal "[Errno 111] Connect call failed (...)": say what the errno means
            reason = os.strerror(exc.errno) if isinstance(exc, ConnectionError) and exc.errno else exc
            raise PersonaPlexError(f"{what} at {c.url}: {reason}") from exc
        if result is None:
            return None
        audio, words, first = result
        return Speech(audio, OggOpusReader.rate, "".join(words).strip(), handshake_s, first, counts)

    @staticmethod
    async def _recv(ws, timeout: float):
        """The next message, or TimeoutError after ``timeout`` s (at least 1 ms, so that a message
        already queued is still taken when the caller is behind its schedule)."""
        return await asyncio.wait_for(ws.recv(), max(timeout, 1e-3))  # cancelling recv() loses nothing

    async def _await_handshake(self, ws, counts: dict[int, int], received: list[int], cancel) -> None:
        deadline = time.monotonic() + self.config.handshake_timeout
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                return
            try:
                msg = await self._recv(ws, 0.1)
            except TimeoutError:
                continue
            kind, payload = self._take(msg, counts, received)
            if kind == KIND_HANDSHAKE:
                return
            if kind == KIND_ERROR:
                raise PersonaPlexError(f"PersonaPlex error: {payload.decode(errors='replace')}")
        raise PersonaPlexError(f"no handshake from PersonaPlex within {self.config.handshake_timeout:g} s")

    def _take(self, msg, counts: dict[int, int], received: list[int]) -> tuple[int, bytes]:
        """(kind, payload) of one message, counted; PersonaPlexError once the session's bytes exceed the limit."""
        if isinstance(msg, str) or len(msg) == 0:
            raise PersonaPlexError(f"protocol violation: expected binary messages, got {type(msg).__name__}"
                                   f" of length {len(msg)}")
        received[0] += len(msg)
        if received[0] > self.config.max_session_bytes:
            raise PersonaPlexError(f"PersonaPlex at {self.config.url} sent more than max_session_bytes="
                                   f"{self.config.max_session_bytes} in one narration: connection closed")
        kind = msg[0]
        counts[kind] = counts.get(kind, 0) + 1
        return kind, bytes(msg[1:])

    async def _converse(self, ws, counts: dict[int, int], received: list[int], cancel):
        c = self.config
        writer, reader = OggOpusWriter(OPUS_RATE), OggOpusReader()
        silence = np.zeros(FRAME_SAMPLES, np.float32)
        chunks: list[np.ndarray] = []
        words: list[str] = []
        spoke, last_audio, quiet_audio, first = False, 0, 0.0, float("nan")
        samples, max_samples = 0, int((c.max_s + AUDIO_SLACK_S) * reader.rate)
        t_start = time.monotonic()
        frames = int(np.ceil(c.max_s * OPUS_RATE / FRAME_SAMPLES))
        for n in range(frames):
            if cancel is not None and cancel.is_set():
                return None
            data = writer.write(silence)
            if data:
                await ws.send(bytes([KIND_AUDIO]) + data)
            due = t_start + (n + 1) * FRAME_SAMPLES / OPUS_RATE / c.pace
            while True:
                timeout = max(0.0, due - time.monotonic())
                try:
                    msg = await self._recv(ws, timeout)
                except TimeoutError:
                    break
                kind, payload = self._take(msg, counts, received)
                if kind == KIND_AUDIO:
                    last_audio = n
                    pcm = reader.feed(payload)
                    samples += pcm.size
                    if samples > max_samples:
                        raise PersonaPlexError(f"PersonaPlex at {c.url} sent more than {max_samples / reader.rate:g} s "
                                               f"of audio for a narration of at most {c.max_s:g} s: connection closed")
                    if pcm.size:
                        if not chunks:
                            first = time.monotonic() - t_start
                        chunks.append(pcm)
                        if float(np.sqrt(np.mean(pcm * pcm))) > LOUD_RMS:
                            spoke, quiet_audio = True, 0.0
                        else:
                            quiet_audio += pcm.size / reader.rate
                elif kind == KIND_TEXT:
                    words.append(payload.decode("utf-8", errors="replace"))
                elif kind == KIND_ERROR:
                    raise PersonaPlexError(f"PersonaPlex error: {payload.decode(errors='replace')}")
            if spoke and quiet_audio >= c.quiet_s:
                break  # spoke, then quiet_s of quiet audio: the sentence is complete
            if spoke and (n - last_audio) * FRAME_SAMPLES / OPUS_RATE >= c.quiet_s + STALL_SLACK_S:
                raise PersonaPlexError(f"PersonaPlex at {c.url} stopped sending audio mid-sentence "
                                       f"(nothing for {c.quiet_s + STALL_SLACK_S:g} s of model steps)")
        if not spoke:
            raise PersonaPlexError(f"PersonaPlex at {c.url} said nothing within max_s={c.max_s:g} s")
        audio = np.concatenate(chunks)
        return audio, words, first


def personaplex_installed() -> bool:
    """True when NVIDIA PersonaPlex's server package (module ``moshi``) is importable."""
    return importlib.util.find_spec("moshi") is not None and importlib.util.find_spec("moshi.server") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PersonaPlexLocal:
    """Start PersonaPlex's own server (installed package, local weights) on loopback.

    ``server_args`` are passed through (e.g. ``--moshi-weight``, ``--mimi-weight``,
    ``--tokenizer``, ``--voice-prompt-dir``, ``--device``, ``--cpu-offload``).
    """

    def __init__(self, server_args: list[str], startup_timeout: float = 600.0):
        if not personaplex_installed():
            raise PersonaPlexError("PersonaPlex is not installed here (its module `moshi` with `moshi.server`; "
                                   "see github.com/NVIDIA/personaplex, needs an NVIDIA GPU)")
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "moshi.server", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--static", "none", *server_args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PersonaPlexError(f"PersonaPlex server exited with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            self.close()
            raise PersonaPlexError(f"PersonaPlex server did not listen within {startup_timeout:g} s")
        self.url = f"ws://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
