"""The vocabulary reading (neon_ros/voice/reading.py): Whisper tiny.en's decoder, stepped in
PyTorch with only the vocabulary's words allowed, rereads an utterance whose transcript has
out-of-vocabulary words; ``Corrector.accept_reading`` keeps the reading only when it looks like
a whole command and the audio does not veto it. Real espeak-ng speech, the bundled weights.
The phrases are development-set commands and non-commands, none of test_voice_asr_accuracy's."""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros.voice.asr import AsrConfig, make_asr
from neon_ros.voice.audio import SAMPLE_RATE, prepare
from neon_ros.voice.correction import READING_MIN_LOGPROB, Corrector
from neon_ros.voice.listener import SpeechListener
from neon_ros.voice.reading import PUNCTUATION, Reading, WordTrie, plural, reading_words
from neon_ros.voice.tts import TtsConfig, make_tts
from neon_ros.voice.vad import Segmenter, VadConfig
from neon_ros.voice.vocabulary import load_vocabulary, normalize

PAD = np.zeros(SAMPLE_RATE // 2, np.float32)


def _say(text: str, voice: str, wpm: int) -> np.ndarray:
    audio, rate = make_tts(TtsConfig(voice=voice, rate_wpm=wpm)).synthesize(text)
    return np.concatenate([PAD, prepare(audio, rate), PAD])


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary()


@pytest.fixture(scope="module")
def asr(vocabulary):
    return make_asr(AsrConfig(initial_prompt=vocabulary.prompt), vocabulary)


def test_config_is_validated():
    with pytest.raises(ValueError, match="reading_margin"):
        AsrConfig(reading_margin=-1.0)


def test_the_trie_spells_the_vocabulary_and_nothing_else(asr, vocabulary):
    tok = asr._tokenizer
    words = reading_words(vocabulary)
    assert {"cup", "cups", "boxes", "the", "kitchen"} <= set(words) and plural("berry") == "berries"
    trie = asr._reader.trie
    assert trie.spells(tok.encode(" Carry the box to the kitchen."))
    assert trie.spells(tok.encode(" Stack the cups, then wave."))
    assert not trie.spells(tok.encode(" Carry the marks to the kitchen."))  # 'marks' is no vocabulary word
    assert trie.spells(tok.encode(" Carry the box to the"))  # whole words: the gate, not the trie, refuses this
    assert not trie.spells(tok.encode(" Wave.."))  # one mark after a word
    assert not trie.spells(tok.encode(" Carry the bo"))  # a word cut short
    small = WordTrie(tok.encode, ["cup"], [tok.encode(p)[0] for p in PUNCTUATION], tok.eot)
    assert small.spells(tok.encode(" Cup cup.")) and not small.spells(tok.encode(" Cups"))


def test_the_gate_keeps_a_reading_only_when_it_looks_like_a_whole_command(vocabulary):
    c = Corrector(vocabulary, margin=3.0, limit=8, reading_margin=8.0)
    heard = "Carry the marks to the kitchen."
    good = Reading("Carry the box to the kitchen.", READING_MIN_LOGPROB * 7 + 1)  # 6 words and the end
    assert c.accept_reading(heard, -20.0, good, -27.5)
    assert not c.accept_reading(heard, -20.0, good, -28.5)  # the audio's veto: more than 8 nats below
    assert not c.accept_reading(heard, -20.0, good._replace(logprob=READING_MIN_LOGPROB * 7 - 1), -20.0)  # unlikely
    assert not c.accept_reading("Carry the marks.", -9.0, Reading("Carry the box to the", -1.0), -9.0)  # cut off
    assert c.accept_reading("Carry the marks.", -9.0, Reading("Carry the box to the sink", -1.0), -9.0)  # whole
    assert not c.accept_reading(heard, -20.0, Reading("Carry the box.", -1.0), -20.0)  # content words dropped
    assert not c.accept_reading("Take the lid off the part.", -9.0, Reading(  # a sentence said twice
        "Take the lid off the pot. Take the lid off my pot.", -5.0), -9.0)
    assert c.accept_reading("Close the camera.", -9.0, Reading("Push the chair back.", -1.0), -12.0)  # one more
    assert not c.accept_reading("Carry the box.", -5.0, Reading("Carry the box!", -1.0), -5.0)  # the same words
    assert not c.accept_reading("Carry the cup to the kitchen.", -5.0, good, 0.0)  # nothing unknown to fix
    assert not Corrector(vocabulary, 3.0, 8).accept_reading(heard, -20.0, good, -20.0)  # reading_margin 0: off
    with pytest.raises(ValueError, match="reading_margin"):
        Corrector(vocabulary, 3.0, 8, reading_margin=-1.0)


@pytest.mark.timeout(300)
def test_a_reading_fixes_words_the_correction_cannot(vocabulary, asr):
    """Transcripts tiny.en wrote for these (measured, development set): the spelling-based
    correction keeps them, the reading hears the vocabulary word (2-3 nats either side)."""
    off = make_asr(AsrConfig(initial_prompt=vocabulary.prompt, reading_margin=0.0), vocabulary)
    assert off._reader is None
    for said, voice, wpm, heard in (("shake the bottle", "en+f4", 155, "Shape the bottle."),
                                    ("set the mug on the shelf", "en-us", 175, "Set the mud on the shelf.")):
        audio = _say(said, voice, wpm)
        encoded = asr._encode(audio, int(asr.config.window_s * SAMPLE_RATE))
        assert normalize(asr._correct(encoded, audio.size, [heard])) == said
        assert normalize(off._correct(encoded, audio.size, [heard])) == normalize(heard)


@pytest.mark.timeout(300)
def test_speech_that_is_no_command_is_not_read_into_one(vocabulary, asr):
    """The reading of these is made of vocabulary words ('Take me out your.', 'Leave the chair.',
    'Open the glass.'); the gate refuses every one (the audio scores them 6-21 nats lower, or
    Whisper found them unlikely), so the listener still rejects the utterance as out of vocabulary."""
    listener = SpeechListener(asr, Segmenter(VadConfig(min_silence_ms=300)), asr.config, lambda _h: None,
                              vocabulary=vocabulary)
    for text, voice, wpm in (("tell me a joke", "en+m2", 150), ("what time is it", "en+f1", 160),
                             ("I need a haircut", "en+m2", 150), ("please order a pizza", "en+m4", 170),
                             ("send an email to John", "en+f1", 160), ("I forgot my password", "en-gb", 155)):
        audio = _say(text, voice, wpm)
        encoded = asr._encode(audio, int(asr.config.window_s * SAMPLE_RATE))
        readings = asr._reader.read(asr._cut(encoded, audio.size), list(asr._prompt))
        assert readings and not vocabulary.unknown_words(readings[0].text)[1], readings  # a vocabulary text ...
        listener.segmenter.reset()
        heard = listener.feed(audio) + [listener.recognize(u) for u in listener.segmenter.flush()]
        assert heard and not any(h.accepted for h in heard), [(h.text, h.reason) for h in heard]  # ... refused


def test_without_pytorch_the_correction_runs_without_the_reading(vocabulary, monkeypatch):
    """PyTorch or openai-whisper missing: speech_in still hears, without the reading, and says so."""
    import builtins

    real_import = builtins.__import__

    def no_whisper(name, *args, **kwargs):
        if name.split(".")[0] == "whisper":  # openai-whisper and its submodules
            raise ImportError("No module named 'whisper'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_whisper)
    asr = make_asr(AsrConfig(initial_prompt=vocabulary.prompt), vocabulary)
    assert asr._reader is None and asr._corrector is not None
    assert "no vocabulary reading: No module named 'whisper'" in asr.describe()
    audio = _say("shake the bottle", "en+f4", 155)
    encoded = asr._encode(audio, int(asr.config.window_s * SAMPLE_RATE))
    assert normalize(asr._correct(encoded, audio.size, ["Shape the bottle."])) == "shape the bottle"
