"""The near-miss correction (neon_ros/voice/correction.py, FasterWhisperAsr): sound-alike words and
the candidates (no model), then real Whisper tiny.en on real espeak-ng speech: a near miss is
corrected when the audio supports it and kept when it does not, and a transcript with no unknown
words is passed through with no scoring pass at all."""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros.voice.asr import AsrConfig, make_asr
from neon_ros.voice.audio import SAMPLE_RATE, prepare
from neon_ros.voice.correction import Corrector, sound_distance, sound_key
from neon_ros.voice.tts import TtsConfig, make_tts
from neon_ros.voice.vocabulary import Vocabulary, load_vocabulary, normalize

KETTLE_OR_BOTTLE = Vocabulary.build(["pick up the kettle", "pick up the bottle"])
KETTLE = Vocabulary.build(["pick up the kettle"])


@pytest.fixture(scope="module")
def corrector() -> Corrector:
    return Corrector(load_vocabulary(), margin=3.0, limit=8)


def test_sound_alike_words(corrector):
    assert sound_key("boil") == sound_key("ball") == "bal" and sound_key("disk") == sound_key("desk")
    assert sound_key("kettle") == "katl" and sound_key("fetch") == "faC"
    assert sound_distance(sound_key("timer"), sound_key("hammer")) == 1.0
    assert sound_distance(sound_key("fash"), sound_key("fetch")) == 0.5  # s / ch: a near pair
    assert sound_distance(sound_key("banana"), sound_key("cup")) >= 3
    assert "ball" in corrector.near("boil") and "hammer" in corrector.near("timer")
    assert "fetch" in corrector.near("fash") and len(corrector.near("boil")) <= 3


def test_candidates(corrector):
    assert corrector.candidates(["Pick up the red cup."]) == []  # nothing unknown: nothing to score
    texts = [c.text for c in corrector.candidates(["Drop the boil on the floor.", "Drop the bowl on the floor.",
                                                   "Drop the boil on the floor!"])]
    assert texts[0] == "Drop the bowl on the floor."  # Whisper's own alternative, then the swaps
    assert "Drop the ball on the floor." in texts and "Drop the boil on the floor!" not in texts
    assert corrector.candidates(["Lock at the window."])[0].text == "Look at the window."  # the capital stays
    # an unknown word dropped, or turned into a function word, is no correction
    assert "Put the below on the bed." not in [c.text for c in corrector.candidates(
        ["Put the pillow on the bed.", "Put the below on the bed."])]
    # a whole sentence of unknown words is not a near miss (the vocabulary guard rejects it)
    assert corrector.candidates(["The weather in Paris is lovely this time of year."]) == []
    assert len(Corrector(load_vocabulary(), 3.0, limit=2).candidates(["Drop the boil on the floor."])) == 2


def test_the_margin_decides(corrector):
    candidates = corrector.candidates(["Fash the orange."])
    fetch = [c.text for c in candidates].index("Fetch the orange.")
    scores = [-99.0] * len(candidates)
    scores[fetch] = -12.5
    assert corrector.choose("Fash the orange.", -10.0, candidates, scores) == "Fetch the orange."
    scores[fetch] = -13.5  # more than 3 nats less likely than what Whisper wrote
    assert corrector.choose("Fash the orange.", -10.0, candidates, scores) == "Fash the orange."


def test_config_is_validated():
    with pytest.raises(ValueError, match="correction_margin"):
        AsrConfig(correction_margin=-1.0)
    with pytest.raises(ValueError, match="correction_candidates"):
        AsrConfig(correction_candidates=0)
    with pytest.raises(ValueError, match="margin"):
        Corrector(KETTLE, margin=-1.0, limit=8)


class AlignSpy:
    """The CTranslate2 Whisper model, with the batch size of every scoring pass (align) recorded."""

    def __init__(self, model):
        self._model = model
        self.batches: list[int] = []

    def align(self, features, start, tokens, *args, **kwargs):
        self.batches.append(len(tokens))
        return self._model.align(features, start, tokens, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def _asr(vocabulary: Vocabulary, **config):
    config.setdefault("reading_margin", 0.0)  # the correction alone (the reading: test_voice_asr_reading.py)
    asr = make_asr(AsrConfig(**config), vocabulary)
    spy = AlignSpy(asr.model.model)
    asr.model.model = spy
    return asr, spy


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    pad = np.zeros(SAMPLE_RATE // 2, np.float32)
    said = {}
    for text in ("pick up the kettle", "pick up the bottle", "pick up the candle", "pick up the red cup"):
        audio, rate = make_tts(TtsConfig()).synthesize(text)
        said[text] = np.concatenate([pad, prepare(audio, rate), pad])
    return said


@pytest.mark.timeout(300)
def test_the_audio_picks_between_sound_alike_words(speech):
    """'cattle' is as near to 'kettle' as to 'bottle' in spelling: only the audio can choose."""
    asr, spy = _asr(KETTLE_OR_BOTTLE)
    for said in ("pick up the kettle", "pick up the bottle"):
        audio = speech[said]
        got = asr._correct(asr._encode(audio, int(asr.config.window_s * SAMPLE_RATE)), audio.size,
                           ["Pick up the cattle."])
        assert normalize(got) == said, got
    assert len(spy.batches) == 2


@pytest.mark.timeout(300)
def test_a_near_miss_is_corrected_only_when_the_audio_supports_it(speech):
    """Whisper without the prompt writes 'Pick up the candle.' both for espeak-ng's 'pick up the
    kettle' and for 'pick up the candle' (measured). With only 'kettle' known, the same transcript
    is corrected for the first and kept for the second: 'kettle' scores 4 nats below 'candle' on
    the kettle audio, 12 below on the candle audio (the margin here is 5, between the two)."""
    asr, spy = _asr(KETTLE, correction_margin=5.0)
    kettle = asr.transcribe(speech["pick up the kettle"])
    assert normalize(kettle.text) == "pick up the kettle" and normalize(kettle.first_pass) == "pick up the candle"
    candle = asr.transcribe(speech["pick up the candle"])
    assert normalize(candle.text) == "pick up the candle" and candle.first_pass == "", candle
    assert spy.batches == [2, 2]  # both scored: the transcript and its one candidate

    loose, _ = _asr(KETTLE, correction_margin=50.0)  # the same, with the audio's veto lifted
    assert normalize(loose.transcribe(speech["pick up the candle"]).text) == "pick up the kettle"


@pytest.mark.timeout(300)
def test_known_words_pass_through_with_no_scoring(speech):
    vocabulary = load_vocabulary()
    asr, spy = _asr(vocabulary, initial_prompt=vocabulary.prompt)
    t = asr.transcribe(speech["pick up the red cup"])
    assert normalize(t.text) == "pick up the red cup" and t.first_pass == "" and spy.batches == [], (t, spy.batches)

    off, spy_off = _asr(KETTLE, correction_margin=0.0)  # no correction: no scoring even for unknown words
    t = off.transcribe(speech["pick up the bottle"])
    assert "kettle" not in normalize(t.text) and t.first_pass == "" and spy_off.batches == [], t


def test_them_for_an_object_is_doubted_and_swapped_for_each_object(corrector):
    """'Push them up' has no unknown word, but a command's object is never 'them': it counts as one,
    and the candidates are the transcript with 'them' and the next word made each object."""
    vocabulary = load_vocabulary()
    assert corrector.candidate("Push them up.").unknown == 1 and corrector.candidate("Push the box.").unknown == 0
    texts = [c.text for c in corrector.candidates(["Push them up."])]
    assert "Push the box." in texts and "Take the ball." in [c.text for c in corrector.candidates(["Take them all."])]
    assert len(texts) == len(vocabulary.objects)  # every object, not capped by `limit` (8)
    assert corrector.object_swaps("Give them.") == [f"Give the {o}." for o in vocabulary.objects]
    assert corrector.object_swaps("Push the box.") == []


@pytest.mark.timeout(300)
def test_them_is_corrected_to_the_object_the_audio_says():
    """espeak-ng's en+m3 at 170 wpm 'push the ball' reaches Whisper tiny.en (with the vocabulary
    prompt) as 'Push them all.'; scored on the audio, 'Push the ball.' is the likelier text of the
    23 object swaps and wins (a development-set phrase, not one of test_voice_asr_accuracy's)."""
    vocabulary = load_vocabulary()
    audio, rate = make_tts(TtsConfig(voice="en+m3", rate_wpm=170)).synthesize("push the ball")
    pad = np.zeros(SAMPLE_RATE // 2, np.float32)
    asr, spy = _asr(vocabulary, initial_prompt=vocabulary.prompt)
    t = asr.transcribe(np.concatenate([pad, prepare(audio, rate), pad]))
    assert normalize(t.first_pass) == "push them all" and normalize(t.text) == "push the ball", t
    assert spy.batches == [1 + len(vocabulary.objects)]
