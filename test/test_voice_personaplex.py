"""PersonaPlex client against a loopback server of its websocket protocol (test/peers/voice_personaplex_server.py),
plus the Ogg Opus framing checked against PyAV's own Ogg demuxer and muxer."""

from __future__ import annotations

import io
import json
import threading

import av
import numpy as np
import pytest
from support import Proc, python, ros_env, wait_for

from neon_ros.voice.oggopus import OggOpusReader, OggOpusWriter, ogg_crc, ogg_page
from neon_ros.voice.personaplex import (
    PersonaPlexClient,
    PersonaPlexConfig,
    PersonaPlexError,
    chat_url,
)
from neon_ros.voice.tts import PersonaPlexTts, TtsConfig, TtsUnavailableError, make_tts


def test_ogg_crc_and_page_layout():
    assert ogg_crc(b"") == 0
    assert ogg_crc(b"123456789") == 0x89A1897F  # CRC-32/MPEG-2 family with init 0 (Ogg's CRC)
    page = ogg_page(b"x" * 600, granule=960, serial=7, seq=3, bos=True)
    assert page[:4] == b"OggS" and page[5] == 0x02 and page[26] == 3 and list(page[27:30]) == [255, 255, 90]


def test_writer_stream_decodes_with_pyav():
    t = np.arange(24000) / 24000.0
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    w = OggOpusWriter()
    data = b"".join(w.write(tone[i:i + 1920]) for i in range(0, tone.size, 1920))
    with av.open(io.BytesIO(data), format="ogg") as c:
        assert c.streams.audio[0].codec_context.name == "opus"
        frames = [f.to_ndarray() for f in c.decode(audio=0)]
    pcm = np.concatenate(frames, axis=1)[0]
    assert abs(pcm.size - 48000) < 1000  # 1 s at 48 kHz, minus the pre-skip
    spectrum = np.abs(np.fft.rfft(pcm[4800:]))
    assert abs(np.argmax(spectrum) * 48000 / pcm[4800:].size - 440) < 5


def test_reader_handles_pyav_stream_split_anywhere():
    buf = io.BytesIO()
    out = av.open(buf, "w", format="ogg")
    stream = out.add_stream("libopus", rate=24000)
    stream.layout = "mono"
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(24000) / 24000) * 32767).astype(np.int16)
    for i in range(0, tone.size, 480):
        f = av.AudioFrame.from_ndarray(tone[None, i:i + 480], format="s16", layout="mono")
        f.sample_rate, f.pts = 24000, i
        for p in stream.encode(f):
            out.mux(p)
    for p in stream.encode(None):
        out.mux(p)
    out.close()
    data = buf.getvalue()
    r = OggOpusReader()
    rng = np.random.default_rng(1)
    pos, pcm = 0, []
    while pos < len(data):
        n = int(rng.integers(1, 700))
        pcm.append(r.feed(data[pos:pos + n]))
        pos += n
    pcm = np.concatenate(pcm)
    assert r.bad_crc == 0 and r.header_packets == 2 and pcm.size >= 47000
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    r2 = OggOpusReader()
    r2.feed(bytes(corrupt))
    assert r2.bad_crc == 1


def test_chat_url():
    url = chat_url(PersonaPlexConfig(url="https://robot.local:8998", seed=3), "Hi there.")
    assert url.startswith("wss://robot.local:8998/api/chat?text_prompt=") and "voice_prompt=NATF2.pt" in url
    assert "seed=3" in url and "Hi+there." in url
    with pytest.raises(ValueError):
        PersonaPlexConfig(url="ftp://x")


@pytest.fixture
def server(tmp_path):
    with Proc(python("-m", "test.peers.voice_personaplex_server", "--handshake-delay", "0.5"), ros_env(),
              tmp_path / "server.log") as proc:
        assert wait_for(lambda: '"listening"' in proc.output() or not proc.alive(), 30), proc.output()
        port = json.loads(proc.output().splitlines()[0])["port"]
        yield proc, port


def _sessions(proc) -> list[dict]:
    return [r for r in map(json.loads, proc.output().splitlines()) if r.get("event") == "session"]


@pytest.mark.timeout(60)
def test_client_speaks_through_the_protocol(server):
    proc, port = server
    text = "I see the red cup. Reaching for it now."
    client = PersonaPlexClient(PersonaPlexConfig(url=f"ws://127.0.0.1:{port}", pace=4.0, max_s=10.0))
    speech = client.speak(text)
    assert speech is not None and speech.text == text
    assert speech.handshake_s >= 0.5 and speech.messages[0] == 1 and speech.messages[1] > 5
    seconds = speech.audio.size / speech.rate
    assert 1.5 < seconds < 6.0, seconds  # espeak says it in ~2.5 s, then the client stops on quiet
    assert np.sqrt(np.mean(speech.audio**2)) > 0.02
    assert wait_for(lambda: _sessions(proc), 10), proc.output()
    s = _sessions(proc)[0]
    assert s["path"] == "/api/chat" and s["violations"] == [], s
    assert text in s["text_prompt"] and s["voice_prompt"] == "NATF2.pt"
    # every client message: 80 ms of audio = four 20 ms Opus packets, one per Ogg page, after the 2 header pages
    assert s["decode_error"] == "" and s["ogg_pages"] == 4 * s["client_messages"] + 2, s
    assert abs(s["decoded_samples"] - s["client_messages"] * 0.08 * 48000) <= 312, s  # minus the Opus pre-skip


@pytest.mark.timeout(60)
def test_cancel_and_tts_backend(server):
    proc, port = server
    cancel = threading.Event()
    client = PersonaPlexClient(PersonaPlexConfig(url=f"ws://127.0.0.1:{port}", max_s=10.0))
    threading.Timer(1.0, cancel.set).start()
    assert client.speak("Waving my left hand now.", cancel) is None
    tts = make_tts(TtsConfig(backend="personaplex", personaplex_url=f"http://127.0.0.1:{port}"))
    audio, rate = tts.synthesize("Pointing at the cup now.")
    assert rate == 48000 and audio.size > rate and np.abs(audio).max() > 0.1


def test_unreachable_server():
    with pytest.raises(TtsUnavailableError, match="no PersonaPlex server"):
        PersonaPlexTts(TtsConfig(backend="personaplex", personaplex_url="ws://127.0.0.1:9"))
    client = PersonaPlexClient(PersonaPlexConfig(url="ws://127.0.0.1:9", connect_timeout=1.0))
    with pytest.raises(PersonaPlexError, match="cannot connect"):
        client.speak("hello")


@pytest.mark.ros
@pytest.mark.timeout(90)
def test_speech_out_node_with_personaplex_backend(server, tmp_path):
    """speech_out (real node) -> PersonaPlex protocol (loopback test server) -> one WAV per narration."""
    import subprocess

    import soundfile as sf
    from support import REPO, script

    proc, port = server
    env = ros_env()
    out_dir = tmp_path / "spoken"
    args = ["--ros-args", "-p", "backend:=personaplex", "-p", f"personaplex_url:=ws://127.0.0.1:{port}",
            "-p", f"output:={out_dir}"]
    with Proc(script("speech_out") + args, env, tmp_path / "speech_out.log") as node:
        assert wait_for(lambda: "speaking with" in node.output() or not node.alive(), 60), node.output()
        subprocess.run(python("-m", "test.peers.voice_say", "--say", "Pointing at the cup now.", "0", "--seconds", "1"),
                       env=env, cwd=REPO, capture_output=True, timeout=60, check=True)
        assert wait_for(lambda: list(out_dir.glob("*.wav")), 30), node.output()
    audio, rate = sf.read(next(out_dir.glob("*.wav")), dtype="float32")
    assert rate == 48000 and 1.0 < audio.size / rate < 8.0 and np.abs(audio).max() > 0.1
    assert wait_for(lambda: _sessions(proc), 10)
    s = _sessions(proc)[0]
    assert s["violations"] == [] and "Pointing at the cup now." in s["text_prompt"], s
