"""faster_whisper decodes an utterance in a window of window_s seconds, not Whisper's 30 s: real
Whisper tiny.en, real espeak-ng speech; the encoder's input is recorded, nothing is timed
(the latency it saves: `neon-ros bench voice`)."""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros.voice.asr import AsrConfig, make_asr
from neon_ros.voice.audio import SAMPLE_RATE, prepare
from neon_ros.voice.tts import TtsConfig, make_tts
from neon_ros.voice.vocabulary import normalize

PHRASE = "pick up the red cup"


class EncoderSpy:
    """The CTranslate2 Whisper model, with the shape of every encoder input recorded."""

    def __init__(self, model):
        self._model = model
        self.shapes: list[tuple[int, ...]] = []

    def encode(self, features, *args, **kwargs):
        self.shapes.append(tuple(features.shape))
        return self._model.encode(features, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, rate = make_tts(TtsConfig()).synthesize(PHRASE)
    pad = np.zeros(SAMPLE_RATE // 2, np.float32)
    return np.concatenate([pad, prepare(audio, rate), pad])


def _asr(window_s: float):
    asr = make_asr(AsrConfig(window_s=window_s))
    spy = EncoderSpy(asr.model.model)
    asr.model.model = spy
    return asr, spy


@pytest.mark.timeout(300)
def test_an_utterance_is_encoded_in_the_window_and_heard_the_same(speech):
    windowed, spy = _asr(15.0)
    t = windowed.transcribe(speech)
    assert normalize(t.text) == PHRASE and t.no_speech_prob < 0.5 and t.avg_logprob > -1.0, t
    assert spy.shapes == [(1, 80, 1500)]  # 15 s of 10 ms mel frames
    assert "15 s window" in windowed.describe()

    whole, spy30 = _asr(0.0)
    assert normalize(whole.transcribe(speech).text) == PHRASE
    assert spy30.shapes == [(1, 80, 3000)]  # Whisper's own 30 s

    # longer than the window: Whisper's own 30 s windows
    long = np.concatenate([speech, np.zeros(16 * SAMPLE_RATE, np.float32)])
    spy.shapes.clear()
    assert normalize(windowed.transcribe(long).text) == PHRASE
    assert spy.shapes and all(s == (1, 80, 3000) for s in spy.shapes), spy.shapes


@pytest.mark.timeout(120)
def test_silence_in_the_window_is_no_speech():
    """Whisper's no-speech verdict comes out of the windowed decode (what speech_in's confidence
    and its silence rule read); the padding is audio silence, as the reference Whisper pads."""
    asr, _ = _asr(15.0)
    t = asr.transcribe(np.zeros(SAMPLE_RATE, np.float32))
    assert t.no_speech_prob > 0.9 and t.confidence < 0.1, t


@pytest.mark.parametrize("bad", [-1.0, 3.0, 7.9, 31.0])
def test_window_s_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="window_s"):
        AsrConfig(window_s=bad)
    assert AsrConfig(window_s=0.0).window_s == 0.0 and AsrConfig(window_s=8.0).window_s == 8.0
