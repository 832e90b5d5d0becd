"""Streaming Ogg Opus, as PersonaPlex (Moshi) sends and expects it on its websocket.

PersonaPlex's server reads and writes audio with ``sphn.OpusStreamReader/Writer``: a plain
Ogg stream (RFC 3533) of Opus packets (RFC 7845: an ``OpusHead`` page, an ``OpusTags`` page,
then audio pages), mono at 24 kHz, split across websocket messages at arbitrary byte
boundaries. Here: Ogg page framing written and parsed in Python (CRC-32 of RFC 3533), Opus
packets encoded and decoded by PyAV's libopus / ffmpeg codecs (no sphn dependency).
"""

from __future__ import annotations

import struct

import numpy as np

OPUS_RATE = 24_000  # PersonaPlex's Mimi sample rate
GRANULE_RATE = 48_000  # Ogg Opus granule positions always count 48 kHz samples


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) & 0xFF) ^ b]
    return crc


def ogg_page(packet: bytes, granule: int, serial: int, seq: int, bos: bool = False, eos: bool = False) -> bytes:
    """One Ogg page holding one whole packet (lacing values of 255 ... then the remainder)."""
    if len(packet) > 255 * 254:
        raise ValueError(f"packet of {len(packet)} bytes does not fit one Ogg page")
    lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
    flags = (0x02 if bos else 0) | (0x04 if eos else 0)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing)) + bytes(lacing)
    page = bytearray(header + packet)
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


def opus_head(channels: int = 1, pre_skip: int = 312, rate: int = OPUS_RATE) -> bytes:
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, rate, 0, 0)


def opus_tags(vendor: str = "neon_ros") -> bytes:
    v = vendor.encode()
    return b"OpusTags" + struct.pack("<I", len(v)) + v + struct.pack("<I", 0)


class OggOpusWriter:
    """PCM float32 mono at 24 kHz in, Ogg Opus bytes out (headers first, one packet per page)."""

    def __init__(self, rate: int = OPUS_RATE, bitrate: int = 32_000, serial: int = 0x4E454F4E):
        import av

        self.rate = rate
        self.enc = av.CodecContext.create("libopus", "w")
        self.enc.sample_rate = rate
        self.enc.layout = "mono"
        self.enc.format = "s16"
        self.enc.bit_rate = bitrate
        self.enc.open()
        self.frame_size = int(self.enc.frame_size)  # 480 at 24 kHz (20 ms)
        self.serial = serial
        self.seq = 0
        self.samples = 0
        self._pending = np.zeros(0, np.float32)
        self._av = av
        self.pre_skip = 312
        self._headers = (ogg_page(opus_head(1, self.pre_skip, rate), 0, serial, 0, bos=True)
                         + ogg_page(opus_tags(), 0, serial, 1))
        self.seq = 2
        self._sent_headers = False
        self.packets = 0

    def _page(self, packet: bytes, eos: bool = False) -> bytes:
        granule = self.pre_skip + self.samples * (GRANULE_RATE // self.rate)
        page = ogg_page(packet, granule, self.serial, self.seq, eos=eos)
        self.seq += 1
        self.packets += 1
        return page

    def write(self, pcm: np.ndarray) -> bytes:
        """Encode what fills whole Opus frames; return the new Ogg bytes (maybe empty)."""
        out = bytearray()
        if not self._sent_headers:
            out += self._headers
            self._sent_headers = True
        self._pending = np.concatenate([self._pending, np.asarray(pcm, dtype=np.float32).reshape(-1)])
        fs = self.frame_size
        while self._pending.size >= fs:
            chunk, self._pending = self._pending[:fs], self._pending[fs:]
            pcm16 = (np.clip(chunk, -1.0, 1.0) * 32767.0).astype(np.int16)
            frame = self._av.AudioFrame.from_ndarray(pcm16[None, :], format="s16", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.samples
            for packet in self.enc.encode(frame):
                self.samples += fs
                out += self._page(bytes(packet))
        return bytes(out)


class OggOpusReader:
    """Ogg Opus bytes in (any split), decoded PCM float32 mono out (``rate`` = 48 kHz)."""

    rate = GRANULE_RATE

    def __init__(self):
        import av

        self.dec = av.CodecContext.create("opus", "r")
        self.dec.sample_rate = GRANULE_RATE
        self.dec.layout = "mono"
        self._av = av
        self._buf = bytearray()
        self._partial = bytearray()
        self.pages = 0
        self.packets = 0
        self.header_packets = 0
        self.bad_crc = 0

    def _pcm(self, packet: bytes) -> list[np.ndarray]:
        out = []
        for frame in self.dec.decode(self._av.Packet(packet)):
            a = frame.to_ndarray()
            a = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a.astype(np.float32)
            out.append(a.mean(axis=0) if a.ndim == 2 and a.shape[0] > 1 else a.reshape(-1))
        return out

    def feed(self, data: bytes) -> np.ndarray:
        """Append bytes; decode every complete page; return the new PCM (may be empty)."""
        self._buf += data
        pcm: list[np.ndarray] = []
        while True:
            start = self._buf.find(b"OggS")
            if start < 0:
                del self._buf[:-3]
                break
            if start:
                del self._buf[:start]
            if len(self._buf) < 27:
                break
            nseg = self._buf[26]
            if len(self._buf) < 27 + nseg:
                break
            lacing = self._buf[27:27 + nseg]
            size = 27 + nseg + sum(lacing)
            if len(self._buf) < size:
                break
            page = bytes(self._buf[:size])
            del self._buf[:size]
            check = bytearray(page)
            struct.pack_into("<I", check, 22, 0)
            if ogg_crc(bytes(check)) != struct.unpack_from("<I", page, 22)[0]:
                self.bad_crc += 1
                continue
            self.pages += 1
            pos = 27 + nseg
            for lace in lacing:
                self._partial += page[pos:pos + lace]
                pos += lace
                if lace < 255:
                    pcm += self._packet(bytes(self._partial))
                    self._partial.clear()
        return np.concatenate(pcm) if pcm else np.zeros(0, np.float32)

    def _packet(self, packet: bytes) -> list[np.ndarray]:
        if packet.startswith((b"OpusHead", b"OpusTags")):
            self.header_packets += 1
            return []
        self.packets += 1
        return self._pcm(packet)
