"""Child process of test_voice_mic.py: listen on a real sounddevice input, stop at the first utterance.

Runs in its own process because PortAudio lists the devices once, when sounddevice is imported:
the test's private audio server (and its environment) must exist before that happens, which
cannot be arranged inside a pytest process that may have imported sounddevice already.

    python test/voice_mic_probe.py DEVICE OUT.npz [MAX_SECONDS [RATE [CHANNELS]]]

Opens ``neon_ros.voice.audio.open_source("mic", device=DEVICE)`` (the speech_in node's path;
with RATE (and CHANNELS), ``MicSource(DEVICE, rate=RATE, channels=CHANNELS)``: the stream at
that rate and channel count, down-mixed and resampled by audio.py),
prints one JSON line ``{"ready": ...}`` when the first block has arrived (the stream runs), then
feeds every block to the real silero-vad ``Segmenter``. At the first utterance it writes
OUT.npz (``utterance``, ``captured``: all 16 kHz mono audio heard) and prints a JSON summary.
Gives up (exit 3) after MAX_SECONDS of *captured audio* without an utterance.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from neon_ros.voice.audio import SAMPLE_RATE, MicSource, open_source
from neon_ros.voice.vad import Segmenter, VadConfig


def main(argv: list[str]) -> int:
    device, out = argv[0], argv[1]
    max_samples = int(float(argv[2] if len(argv) > 2 else 30.0) * SAMPLE_RATE)
    rate = int(argv[3]) if len(argv) > 3 else 0
    channels = int(argv[4]) if len(argv) > 4 else 0
    source = (MicSource(device, block=512, rate=rate, channels=channels or None) if rate
              else open_source("mic", device=device, block=512))
    segmenter = Segmenter(VadConfig())
    captured: list[np.ndarray] = []
    heard = 0
    try:
        for block in source.blocks():
            if not captured:
                print(json.dumps({"ready": source.describe(), "rate": source.rate, "channels": source.channels}),
                      flush=True)
            captured.append(block)
            heard += block.size
            utterances = segmenter.feed(block)
            if utterances:
                u = utterances[0]
                np.savez(out, utterance=u.audio, captured=np.concatenate(captured))
                print(json.dumps({"utterances": len(utterances), "duration_s": u.duration_s,
                                  "start_s": u.start_s, "end_s": u.end_s, "peak_prob": u.peak_prob,
                                  "heard_s": heard / SAMPLE_RATE, "overflows": source.overflows,
                                  "device": source.describe()}), flush=True)
                return 0
            if heard >= max_samples:
                print(json.dumps({"error": f"no utterance in {heard / SAMPLE_RATE:.1f} s of audio",
                                  "peak": float(np.abs(np.concatenate(captured)).max())}), flush=True)
                return 3
    finally:
        source.close()
    print(json.dumps({"error": "the microphone stream ended"}), flush=True)
    return 4


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
