"""A loopback test server speaking PersonaPlex's websocket protocol (moshi.server, /api/chat).

It checks the client's side of the protocol and answers like the real server would:
- query must carry text_prompt and voice_prompt; the handshake byte 0x00 goes out after a delay
  (the real server processes its prompts first) and nothing may arrive before it;
- every client message must be binary kind 0x01 (audio); the concatenated payloads must form
  an Ogg Opus stream that PyAV's own demuxer decodes (independent of the client's code);
- the reply: the quoted sentence of the text prompt spoken by espeak-ng, resampled to 24 kHz,
  muxed to Ogg Opus by PyAV and sent in 0x01 messages cut at arbitrary byte offsets, plus its
  words as 0x02 text messages, paced by the audio the client sends (one model step per 80 ms).
Prints JSON lines: {"event": "listening", "port": P}, then one "session" record per connection.

    python -m test.peers.voice_personaplex_server [--handshake-delay 0.3]
"""

import argparse
import asyncio
import io
import json
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
import soundfile as sf
from websockets.asyncio.server import serve

from neon_ros.voice.audio import resample

REPLY_SECONDS = [0.0]


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def spoken_reply(text: str) -> bytes:
    """espeak-ng speech of ``text`` as an Ogg Opus stream (24 kHz mono), muxed by PyAV."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", "en-us"], input=text.encode(),
                         capture_output=True, check=True).stdout
    pcm, rate = sf.read(io.BytesIO(wav), dtype="float32")
    pcm = np.concatenate([resample(pcm, rate, 24000), np.zeros(24000, np.float32)])  # speech, then 1 s quiet
    REPLY_SECONDS[0] = pcm.size / 24000
    buf = io.BytesIO()
    out = av.open(buf, "w", format="ogg", options={"page_duration": "80000"})  # small pages, like sphn
    stream = out.add_stream("libopus", rate=24000)
    stream.layout = "mono"
    for i in range(0, pcm.size - 480 + 1, 480):
        frame = av.AudioFrame.from_ndarray((pcm[None, i:i + 480] * 32767).astype(np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 24000
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return buf.getvalue()


def decode_ogg(data: bytes) -> tuple[int, str]:
    """Samples PyAV decodes from the client's stream, and an error text ('' if fine)."""
    try:
        with av.open(io.BytesIO(data), format="ogg") as c:
            if c.streams.audio[0].codec_context.name != "opus":
                return 0, "not opus"
            return sum(f.samples for f in c.decode(audio=0)), ""
    except Exception as exc:  # report any demux/decode failure as the verdict
        return 0, f"{type(exc).__name__}: {exc}"


async def session(ws, handshake_delay: float) -> None:
    query = parse_qs(urlsplit(ws.request.path).query)
    rec = {"event": "session", "path": urlsplit(ws.request.path).path,
           "text_prompt": query.get("text_prompt", [""])[0], "voice_prompt": query.get("voice_prompt", [""])[0],
           "violations": [], "client_messages": 0, "audio_bytes": 0}
    for key in ("text_prompt", "voice_prompt"):
        if key not in query:
            rec["violations"].append(f"missing query {key}")
    m = re.search(r'"([^"]+)"', rec["text_prompt"])
    sentence = m.group(1) if m else rec["text_prompt"]
    reply = await asyncio.to_thread(spoken_reply, sentence)  # like the real server's prompt phase
    try:
        early = await asyncio.wait_for(ws.recv(), timeout=handshake_delay)
        rec["violations"].append(f"client sent {len(early)} bytes before the handshake")
    except asyncio.TimeoutError:
        pass
    await ws.send(b"\x00")
    words = sentence.split()
    received = bytearray()
    pos, step = 0, 0
    # one model step (80 ms of audio) per client message, cut at byte offsets that ignore page bounds
    cut = max(1, int(len(reply) * 0.08 / (REPLY_SECONDS[0] or 1.0)))
    try:
        async for msg in ws:
            rec["client_messages"] += 1
            if not isinstance(msg, bytes) or not msg or msg[0] != 0x01:
                rec["violations"].append(f"bad client message {msg[:8]!r}")
                continue
            received += msg[1:]
            step += 1
            if pos < len(reply):  # one 'model step' per client message: some audio out
                await ws.send(b"\x01" + reply[pos:pos + cut])
                pos += cut
            if words and step % 2 == 0:
                await ws.send(b"\x02" + (" " + words.pop(0)).encode())
    except Exception as exc:  # connection reset by a cancelling client is fine, record it
        rec["closed"] = type(exc).__name__
    rec["audio_bytes"] = len(received)
    rec["ogg_pages"] = bytes(received).count(b"OggS")
    rec["decoded_samples"], rec["decode_error"] = decode_ogg(bytes(received))
    rec["reply_bytes_sent"] = min(pos, len(reply))
    emit(**rec)


async def main_async(args) -> None:
    async with serve(lambda ws: session(ws, args.handshake_delay), "127.0.0.1", 0, compression=None,
                     max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        emit(event="listening", port=port)
        await asyncio.Future()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--handshake-delay", type=float, default=0.3)
    asyncio.run(main_async(ap.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
