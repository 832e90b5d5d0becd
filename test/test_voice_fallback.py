"""PersonaPlex degrades to espeak-ng (voice.tts.FallbackTts): a real PersonaPlexTts client against a real loopback
websocket server that fails in each way a server can, a real espeak-ng fallback, a back-off on an injected clock;
then the speech_out node (its own process) against a server that dies mid-sentence."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import threading
import time
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import soundfile as sf
from support import REPO, Proc, python, ros_env, script, wait_for
from websockets.asyncio.server import serve

from neon_ros.voice.personaplex import free_port
from neon_ros.voice.tts import EspeakTts, FallbackTts, PersonaPlexTts, TtsConfig, make_tts
from test.peers import voice_personaplex_server as peer

SENTENCE = "Reaching for the red cup now."
LATER = "Waving my left hand now."
LAST = "Pointing at the cup now."
PLEX_RATE = 48000  # what PersonaPlex's Opus decodes to; espeak-ng speaks at 22050 Hz


class PlexServer:
    """A loopback server of PersonaPlex's protocol in a thread of this process; ``mode`` picks how a session goes.

    speak: the test peer's faithful session (test/peers/voice_personaplex_server.py);
    die: handshake, about half the spoken sentence, then the TCP connection is aborted and the server stops
         listening (the process serving PersonaPlex died mid-sentence);
    close: the same half, then a websocket close (1011) while the sentence is still going;
    stall: the same half, then nothing more while the connection stays open;
    no_handshake: the connection is accepted, the 0x00 handshake never comes;
    malformed: handshake, then a text (not binary) message;
    over_limit: handshake, then one 2 MiB message (the client accepts at most 1 MiB).
    """

    def __init__(self, mode: str = "speak", port: int = 0):
        self.mode, self.port = mode, port
        self.sessions = 0
        self.half_sent = threading.Event()  # a session sent part of a sentence before failing
        self.loop = asyncio.new_event_loop()
        self._server = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.start()

    def start(self) -> None:
        async def listen():
            self._server = await serve(self._session, "127.0.0.1", self.port, compression=None, max_size=None)
            return next(iter(self._server.sockets)).getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(30)

    def stop_listening(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)

    async def _stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()

    def close(self) -> None:
        self.stop_listening()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _session(self, ws) -> None:
        self.sessions += 1
        mode = self.mode
        if mode == "speak":
            await peer.session(ws, 0.05)
            return
        if mode == "no_handshake":
            await ws.wait_closed()
            return
        await ws.send(b"\x00")
        if mode == "malformed":
            await ws.send("this is text, not a binary PersonaPlex message")
        elif mode == "over_limit":
            await ws.send(b"\x02" + b"a" * (2 << 20))
        else:
            await self._half_then_fail(ws, mode)
        await ws.wait_closed()

    async def _half_then_fail(self, ws, mode: str) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        sentence = re.search(r'"([^"]+)"', query["text_prompt"][0]).group(1)
        reply = await asyncio.to_thread(peer.spoken_reply, sentence)
        cut = max(1, len(reply) // 40)
        pos = 0
        async for _ in ws:  # one piece of the sentence per model step, as the real server paces it
            if pos >= len(reply) // 2:
                break
            await ws.send(b"\x01" + reply[pos:pos + cut])
            pos += cut
        self.half_sent.set()
        if mode == "die":
            server, self._server = self._server, None
            server.server.close()  # the listening socket goes first: from now on connections are refused
            ws.transport.abort()
            server.close(close_connections=False)
        elif mode == "close":
            await ws.close(1011, "model crashed")
        else:  # stall: keep reading what the client sends, answer nothing
            async for _ in ws:
                pass


class Clock:
    """Monotonic seconds that move only when the test says (the back-off, without waiting for it)."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


CONFIG = TtsConfig(backend="personaplex", timeout_s=4.0, personaplex_retry_s=30.0)


def fallback_speaker(url: str, clock: Clock) -> FallbackTts:
    config = TtsConfig(**{**CONFIG.__dict__, "personaplex_url": url})
    return FallbackTts(lambda: PersonaPlexTts(config), EspeakTts(config), config.personaplex_retry_s, clock=clock)


def espeak(text: str) -> tuple[np.ndarray, int]:
    return EspeakTts(CONFIG).synthesize(text)


def assert_espeak_said(result, text: str) -> None:
    """The whole sentence, once, in espeak-ng's voice: exactly what espeak-ng makes of it."""
    audio, rate = result
    ref, ref_rate = espeak(text)
    assert rate == ref_rate != PLEX_RATE and audio.size == ref.size and np.allclose(audio, ref), (rate, audio.size)


def assert_personaplex_said(result) -> None:
    audio, rate = result
    assert rate == PLEX_RATE and audio.size > rate // 2 and np.abs(audio).max() > 0.1, (rate, audio.size)


def assert_back_off_then_switch_back(tts: FallbackTts, server: PlexServer, clock: Clock) -> None:
    """While the back-off runs, a working server is left alone; after it, PersonaPlex speaks again."""
    server.mode = "speak"
    sessions = server.sessions
    assert_espeak_said(tts.synthesize(LATER), LATER)
    assert server.sessions == sessions and tts.speaking_with == "espeak-ng" and tts.fault
    clock.t += CONFIG.personaplex_retry_s
    assert tts.speaking_with == "personaplex"
    assert_personaplex_said(tts.synthesize(LAST))
    assert server.sessions == sessions + 1 and tts.fault == "", tts.fault
    assert tts.primary_spoken == 1 and tts.fallback_spoken == tts.primary_failures + 1


@pytest.fixture
def server():
    s = PlexServer()
    yield s
    s.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("mode", "reason"), [
    ("die", "connection to PersonaPlex failed|PersonaPlex closed the connection"),
    ("close", r"PersonaPlex closed the connection: received 1011 \(internal error\) model crashed"),
    ("stall", "stopped sending audio mid-sentence"),
    ("no_handshake", "no handshake from PersonaPlex within 4 s"),
    ("malformed", "protocol violation: expected binary messages, got str"),
    ("over_limit", "sent a message over max_message_bytes=1048576"),
])
def test_failed_sentence_is_spoken_by_espeak_then_personaplex_is_retried(server, mode, reason):
    clock = Clock()
    tts = fallback_speaker(server.url, clock)
    assert tts.fault == "" and tts.speaking_with == "personaplex"
    server.mode = mode
    assert_espeak_said(tts.synthesize(SENTENCE), SENTENCE)
    assert server.sessions == 1 and tts.primary_failures == 1
    assert tts.fault.startswith("personaplex unreachable: ") and tts.fault.endswith("; speaking with espeak-ng")
    assert re.search(reason, tts.fault), tts.fault
    if mode in ("die", "close", "stall"):  # PersonaPlex had said part of it: that part is discarded, never played
        assert server.half_sent.is_set()
    if mode == "die":  # the server is gone: connections are refused until it is back
        clock.t += CONFIG.personaplex_retry_s
        assert_espeak_said(tts.synthesize(SENTENCE + " Again."), SENTENCE + " Again.")
        assert "Connection refused" in tts.fault and tts.primary_failures == 2, tts.fault
        server.start()
    assert_back_off_then_switch_back(tts, server, clock)


@pytest.mark.timeout(120)
def test_unreachable_at_start_and_a_silent_tcp_peer(server):
    clock = Clock()
    port = server.port
    server.stop_listening()
    tts = fallback_speaker(f"ws://127.0.0.1:{port}", clock)  # nothing listens: built anyway, on espeak-ng
    assert tts.primary is None and "no PersonaPlex server" in tts.fault and tts.speaking_with == "espeak-ng"
    assert_espeak_said(tts.synthesize(SENTENCE), SENTENCE)
    assert tts.primary_failures == 1  # not tried again inside the back-off
    server.start()
    assert_back_off_then_switch_back(tts, server, clock)



@pytest.mark.timeout(60)
def test_peer_that_never_answers_the_upgrade_times_out_to_espeak():
    """TCP accepted (the kernel's backlog), the websocket upgrade never answered: the connect timeout."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        tts = fallback_speaker(f"ws://127.0.0.1:{mute.getsockname()[1]}", Clock())
        assert tts.fault == ""  # reachable, as far as a TCP connect can tell
        assert_espeak_said(tts.synthesize(SENTENCE), SENTENCE)
    assert "cannot connect to PersonaPlex" in tts.fault and "timed out" in tts.fault, tts.fault


@pytest.mark.timeout(60)
def test_cancelled_sentence_is_no_fault(server):
    cancel = threading.Event()
    tts = make_tts(TtsConfig(**{**CONFIG.__dict__, "personaplex_url": server.url}))
    assert isinstance(tts, FallbackTts) and "falling back to espeak-ng" in tts.describe()
    threading.Timer(0.5, cancel.set).start()
    assert tts.synthesize(SENTENCE, cancel) is None
    assert tts.fault == "" and tts.primary_failures == 0 and tts.fallback_spoken == 0


def _say(env, text: str, seconds: float) -> list[dict]:
    cmd = python("-m", "test.peers.voice_say", "--say", text, "0", "--seconds", str(seconds))
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=90, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_speech_out_node_falls_back_when_personaplex_dies_mid_sentence(tmp_path):
    """speech_out (real node) -> PersonaPlex server that dies mid-sentence: WAV by espeak-ng, WARN on /diagnostics;
    after the back-off, with the server back, PersonaPlex speaks again and /diagnostics is OK."""
    retry_s = 2.0
    server = PlexServer(mode="die", port=free_port())
    out_dir = tmp_path / "spoken"
    env = ros_env()
    args = ["--ros-args", "-p", "backend:=personaplex", "-p", f"personaplex_url:={server.url}",
            "-p", f"output:={out_dir}", "-p", f"personaplex_retry_s:={retry_s}", "-p", "timeout:=4.0"]
    try:
        with Proc(script("speech_out") + args, env, tmp_path / "speech_out.log") as node:
            assert wait_for(lambda: "speaking with" in node.output() or not node.alive(), 60), node.output()
            rows = _say(env, SENTENCE, seconds=6.0)
            assert wait_for(lambda: list(out_dir.glob("*.wav")), 30), node.output()
            assert server.half_sent.is_set() and server.sessions == 1
            warn = [r for r in rows if r.get("level") == 1]
            assert warn, rows
            v = warn[-1]["values"]
            assert re.fullmatch(r"personaplex unreachable: .+; speaking with espeak-ng", warn[-1]["message"]), warn[-1]
            assert (v["personaplex_failures"], v["espeak-ng_spoken"], v["personaplex_spoken"]) == ("1", "1", "0"), v
            server.mode = "speak"
            server.start()  # back on the same port
            time.sleep(retry_s + 0.5)  # let the back-off run out (the node is not asked anything meanwhile)
            rows = _say(env, LAST, seconds=6.0)
            assert wait_for(lambda: len(list(out_dir.glob("*.wav"))) == 2, 30), node.output()
            assert node.alive(), node.output()
            log = node.output()
    finally:
        server.close()
    first, second = sorted(out_dir.glob("*.wav"))
    audio, rate = sf.read(first, dtype="float32")
    ref, ref_rate = espeak(SENTENCE)
    assert "reaching_for_the_red_cup" in first.name and rate == ref_rate and audio.size == ref.size, (first, rate)
    assert np.abs(audio - ref).max() < 1e-3  # the whole sentence, once, in espeak-ng's voice
    audio, rate = sf.read(second, dtype="float32")
    assert "pointing_at_the_cup" in second.name and rate == PLEX_RATE and np.abs(audio).max() > 0.1, (second, rate)
    ok = [r for r in rows if "values" in r and r["values"].get("personaplex_spoken") == "1"]
    assert ok and ok[-1]["level"] == 0 and ok[-1]["values"]["speaking_with"] == "personaplex", rows
    assert "speaking with espeak-ng" in log and "works again" in log and "Traceback" not in log
