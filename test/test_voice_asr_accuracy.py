"""Recognition of robot commands nobody tuned on: real espeak-ng speech, real silero-vad, real
Whisper tiny.en (the bundled weights) primed with the robot's vocabulary, and its guards.

The phrases below were written after the vocabulary and the prompt were fixed (only the
`actions` list was added to the prompt after a first run; the count stayed the same). Four
espeak-ng voices at 130-170 wpm; nothing is timed (latency: `neon-ros bench voice`).

Issue 13's target is 9 in 10 exact; Whisper tiny.en primed with the vocabulary reaches 19/24
here (14/24 without the prompt), and still 19/24 with the near-miss correction of unknown words
(neon_ros/voice/correction.py, developed on its own set of 44 other commands in six voices, where
it lifted 61/88 to 70/88): here it corrected one first-pass word, to another miss, and the other
misses are vocabulary words heard as other vocabulary words, which it does not touch. Since
2026-12-04 the correction also doubts 'them' where a command has its object (developed on 32 other
b/p-object commands) and plurals of known words are known (a 'plates' rejected on a development
set): 20/24 here. The vocabulary reading of 2026-12-05 (neon_ros/voice/reading.py, developed on
two sets of 40 and 30 other commands: 58 -> 65 of 80, 45 -> 49 of 60) mends wrong words in two of
the misses here ('Start the block' -> 'Stack the block') but no whole command: still 20/24. So the
floor asserted is what the pipeline really does, and it fails if the prompt or the guards stop
working.
"""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros.voice.asr import AsrConfig, make_asr
from neon_ros.voice.audio import load, write_wav
from neon_ros.voice.listener import Heard, SpeechListener
from neon_ros.voice.tts import TtsConfig, make_tts
from neon_ros.voice.vad import Segmenter, Utterance, VadConfig
from neon_ros.voice.vocabulary import load_vocabulary, normalize

HELD_OUT = (
    "pick up the yellow ball", "put the fork in the drawer", "give me the phone", "open the cabinet slowly",
    "place the mug on the shelf", "drop the sponge in the sink", "raise your left arm", "bring me the keys",
    "push the button", "move the box to the floor", "look at the door", "stack the blocks on the tray",
    "take the knife off the table", "wipe the counter", "hold the plate with both hands",
    "point at the green bottle", "close the fridge", "lift the basket", "put the apple on the plate",
    "hand me the remote", "walk backward three steps", "pull the drawer open", "wait here",
    "pour the water into the glass",
)
MIN_EXACT = 18  # of 24; measured 20 with the vocabulary prompt and the correction (issue 13 asks for 22, not reached by tiny.en)
VOICES = (("en-us", 150), ("en-gb", 130), ("en+f3", 160), ("en+m3", 170))
NOT_COMMANDS = (
    "the weather in paris is lovely this time of year",  # fluent English, not for the robot
    "pick up the cup pick up the cup pick up the cup",   # a phrase in a loop
)


def _speak(text: str, i: int, directory) -> np.ndarray:
    """espeak-ng -> WAV file -> 16 kHz mono, with half a second of silence either side."""
    voice, wpm = VOICES[i % len(VOICES)]
    audio, rate = make_tts(TtsConfig(voice=voice, rate_wpm=wpm)).synthesize(text)
    path = write_wav(directory / f"{i:02d}.wav", audio, rate)
    pad = np.zeros(8000, np.float32)
    return np.concatenate([pad, load(path), pad])


@pytest.fixture(scope="module")
def listener() -> SpeechListener:
    vocabulary = load_vocabulary()
    cfg = AsrConfig(initial_prompt=vocabulary.prompt)
    asr = make_asr(cfg, vocabulary)
    asr.warm_up()
    return SpeechListener(asr, Segmenter(VadConfig(min_silence_ms=300)), cfg, lambda _h: None,
                          vocabulary=vocabulary)


def _hear(listener: SpeechListener, audio: np.ndarray) -> list[Heard]:
    """The utterances the VAD cuts from ``audio``, recognized and judged (as in speech_in)."""
    listener.segmenter.reset()
    heard = listener.feed(audio)
    return heard + [listener.recognize(u) for u in listener.segmenter.flush()]


@pytest.mark.timeout(600)
def test_held_out_commands(listener, tmp_path):
    results = []
    for i, phrase in enumerate(HELD_OUT):
        heard = _hear(listener, _speak(phrase, i, tmp_path))
        got = " | ".join(h.text if h.accepted else f"<rejected: {h.reason}>" for h in heard)
        results.append((phrase, got))
    exact = sum(normalize(got) == phrase for phrase, got in results)
    misses = [(p, g) for p, g in results if normalize(g) != p]
    assert exact >= MIN_EXACT, f"{exact}/{len(HELD_OUT)} exact; misses: {misses}"


@pytest.mark.timeout(300)
def test_not_commands_are_rejected_with_the_reason(listener, tmp_path):
    """Out-of-vocabulary speech, a phrase in a loop, silence and hiss publish nothing and say why."""
    reasons = []
    for i, text in enumerate(NOT_COMMANDS):
        heard = _hear(listener, _speak(text, i, tmp_path))
        assert heard and not any(h.accepted for h in heard), [(h.transcript.text, h.reason) for h in heard]
        reasons.append(heard[0].reason)
    assert reasons[0].startswith("out of vocabulary"), reasons
    assert reasons[1].startswith("repeated phrase"), reasons
    # silence never reaches Whisper (the VAD cuts nothing out of it) ...
    assert _hear(listener, np.zeros(3 * 16000, np.float32)) == []
    # ... and when silence or faint hiss does reach it, Whisper's verdict and the guards reject it
    for audio in (np.zeros(16000, np.float32),
                  np.random.default_rng(1).normal(0, 0.003, 2 * 16000).astype(np.float32)):
        h = listener.recognize(Utterance(audio, 0.0, audio.size / 16000))
        assert not h.accepted and h.reason and h.text == "", (h.transcript, h.reason)
