"""A hostile loopback server on PersonaPlex's websocket path: handshake, then more than a client should hold.

Modes (after the 0x00 handshake):
- ``big``: one text message (kind 0x02) of ``--size`` bytes;
- ``flood``: 64 KiB text messages as fast as the socket takes them, up to ``--size`` bytes in all;
- ``audio``: ``--seconds`` of Ogg Opus audio (kind 0x01) at once, far more than a narration lasts.
``--tls-cert``/``--tls-key`` serve wss:// instead of ws://; ``--tickets N`` sends N TLS 1.3 session
tickets after each TLS handshake (OpenSSL sends 2), which the client reads while it writes its request.
Prints JSON lines: {"event": "listening", "port": P}, then one {"event": "session", "sent_bytes": N,
"ended": WHY} per connection.

    python -m test.peers.personaplex_flood_server --mode flood --size 1000000000
"""

import argparse
import asyncio
import json
import ssl

import numpy as np
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from neon_ros.voice.oggopus import OPUS_RATE, OggOpusWriter

CHUNK = 64 * 1024


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def opus_pages(seconds: float) -> list[bytes]:
    """``seconds`` of a 300 Hz tone as Ogg Opus pieces, one per 80 ms."""
    writer = OggOpusWriter(OPUS_RATE)
    n = int(seconds * OPUS_RATE)
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(n) / OPUS_RATE)).astype(np.float32)
    pieces = [writer.write(tone[i:i + 1920]) for i in range(0, n, 1920)]
    return [p for p in pieces if p]


async def session(ws, args, pages: list[bytes]) -> None:
    sent, ended = 0, "done"
    try:
        await ws.send(b"\x00")
        if args.mode == "big":
            await ws.send(b"\x02" + b"a" * args.size)
            sent = args.size + 1
        elif args.mode == "flood":
            chunk = b"\x02" + b"a" * CHUNK
            while sent < args.size:
                await ws.send(chunk)
                sent += len(chunk)
                # send() need not yield while the transport takes the bytes: without this the loop never
                # sees the client close, and the next client's handshake waits behind the flood
                await asyncio.sleep(0)
        else:
            for page in pages:
                await ws.send(b"\x01" + page)
                sent += len(page) + 1
        await ws.wait_closed()
    except ConnectionClosed as exc:
        ended = f"closed by client: {exc}"
    emit(event="session", mode=args.mode, sent_bytes=sent, ended=ended)


async def main_async(args) -> None:
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        tls.num_tickets = args.tickets
    pages = opus_pages(args.seconds) if args.mode == "audio" else []  # encoded before the first client comes
    async with serve(lambda ws: session(ws, args, pages), "127.0.0.1", 0, ssl=tls, compression=None,
                     max_size=None) as server:
        emit(event="listening", port=next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("big", "flood", "audio"), required=True)
    ap.add_argument("--size", type=int, default=100 << 20, help="bytes (big: the message; flood: in all)")
    ap.add_argument("--seconds", type=float, default=120.0, help="audio mode: seconds of audio sent")
    ap.add_argument("--tls-cert", default="")
    ap.add_argument("--tls-key", default="")
    ap.add_argument("--tickets", type=int, default=2, help="TLS 1.3 session tickets sent per connection")
    asyncio.run(main_async(ap.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
