"""The VAD's speculative cut (VadConfig.early_ms): offered once the silence starts, with the same
start and end as the utterance that closes min_silence_ms later, so its transcript can be used."""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros.voice.audio import resample
from neon_ros.voice.vad import WINDOW, Segmenter, VadConfig
from test.peers.voice_clips import speak


def test_early_cut_matches_the_final_utterance():
    audio, rate = speak("put the cup on the table")
    stream = np.concatenate([np.zeros(8000, np.float32), resample(audio, rate), np.zeros(16000, np.float32)])
    seg = Segmenter(VadConfig(min_silence_ms=300, early_ms=128))
    early, final = [], []
    for i in range(0, stream.size, WINDOW):
        final += seg.feed(stream[i:i + WINDOW])
        if seg.early is not None:
            early.append((seg.early, len(final)))
            seg.early = None
    assert len(final) == 1 and len(early) >= 1, (final, early)
    cut, finals_before = early[-1]
    assert finals_before == 0  # offered before the utterance closed
    assert (cut.start_s, cut.end_s) == (final[0].start_s, final[0].end_s)
    # the same speech; the final one only keeps more of the trailing silence (speech_pad_ms)
    n = cut.audio.size
    assert 0 < final[0].audio.size - n <= 0.2 * 16000 and np.array_equal(cut.audio, final[0].audio[:n])


def test_early_ms_must_be_below_min_silence():
    with pytest.raises(ValueError, match="early_ms"):
        VadConfig(min_silence_ms=300, early_ms=300)
    assert Segmenter(VadConfig(early_ms=0)).early is None
