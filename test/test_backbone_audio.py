"""The backbone hears: the alignment rule (runtime/hearing.py), the utterance message's capture
time (voice/audio_msg.py) and ClipEncoder passing audio to tiny random Qwen2.5-Omni / TRIBE v2
(and not to Cosmos-Reason2, which has no audio path). No rclpy.init here."""

import numpy as np
import pytest

from neon_ros.backbones import load_backbone
from neon_ros.runtime.encoder import ClipEncoder
from neon_ros.runtime.hearing import (
    NS,
    PAIR_S,
    Match,
    UtteranceTracker,
    clip_span,
    match_clip,
    utterance_span,
)
from neon_ros.voice.audio_msg import AUDIO_LABEL, audio_to_msg, msg_end_ns, msg_to_audio

T0 = 1_700_000_000 * NS  # a ROS time


def beep(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000.0
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


# --- the rule ------------------------------------------------------------------------------------

def test_spans():
    assert utterance_span(16000, T0) == (T0 - NS, T0)
    assert utterance_span(8000, T0) == (T0 - NS // 2, T0)
    assert clip_span(T0, 1.0) == (T0 - NS, T0)


@pytest.mark.parametrize(("clip_end_s", "match"), [
    (-2.01, Match.BEFORE),  # clip [-3.01, -2.01] ends before the utterance [-2, 0] starts
    (-2.0, Match.HEARS),  # touches its start
    (-1.0, Match.HEARS),  # inside
    (0.5, Match.HEARS),  # overlaps its end
    (3.0 + 1.0, Match.HEARS),  # starts exactly hold (3 s) after its end
    (3.0 + 1.01, Match.EXPIRED),  # starts later than that
])
def test_match_clip(clip_end_s, match):
    utt = utterance_span(2 * 16000, T0)
    clip = clip_span(T0 + round(clip_end_s * NS), 1.0)
    assert match_clip(utt, clip, hold_s=3.0) is match


def test_tracker_uses_the_utterance_then_drops_it_for_good():
    tr = UtteranceTracker(hold_s=2.0)
    audio = beep(1.0)
    tr.on_audio(audio, received_ns=T0 + NS // 2, end_ns=T0)
    assert tr.take(clip_span(T0 - 3 * NS, 1.0)) is None and tr.held is not None  # an older clip: kept
    np.testing.assert_array_equal(tr.take(clip_span(T0, 1.0)), audio)
    np.testing.assert_array_equal(tr.take(clip_span(T0 + 3 * NS, 1.0)), audio)  # starts 2 s after: still
    assert tr.take(clip_span(T0 + 3 * NS + 1, 1.0)) is None and tr.held is None and tr.expired == 1
    assert tr.take(clip_span(T0, 1.0)) is None  # gone, whatever comes next


def test_tracker_without_capture_time_uses_receipt():
    tr = UtteranceTracker(hold_s=0.0)
    tr.on_audio(beep(0.5), received_ns=T0)
    assert tr.held.span == (T0 - NS // 2, T0)


@pytest.mark.parametrize("audio_first", [True, False])
def test_instruction_ties_to_its_utterance(audio_first):
    """The transcript (either order, within PAIR_S) keeps the audio; the next instruction drops it."""
    tr = UtteranceTracker(hold_s=5.0)
    gap = int(0.9 * PAIR_S * NS)
    if audio_first:
        tr.on_audio(beep(), received_ns=T0)
        tr.on_instruction(T0 + gap)
    else:
        tr.on_instruction(T0 - gap)
        tr.on_audio(beep(), received_ns=T0)
    assert tr.held is not None and tr.held.paired and tr.superseded == 0
    assert tr.take(clip_span(T0, 1.0)) is not None
    tr.on_instruction(T0 + 2 * gap)  # a newer instruction (typed, or an utterance whose audio was not sent)
    assert tr.held is None and tr.superseded == 1
    assert tr.take(clip_span(T0, 1.0)) is None


def test_unrelated_instruction_drops_an_unpaired_utterance():
    tr = UtteranceTracker(hold_s=5.0)
    tr.on_instruction(T0 - 2 * PAIR_S * NS)  # long before: not its transcript
    tr.on_audio(beep(), received_ns=T0)
    assert not tr.held.paired
    assert tr.take(clip_span(T0, 1.0)) is not None  # unpaired audio is still heard
    tr.on_instruction(T0 + 2 * PAIR_S * NS)  # long after: not its transcript either
    assert tr.held is None and tr.superseded == 1


def test_newest_utterance_replaces_the_held_one():
    tr = UtteranceTracker(hold_s=1.0)
    tr.on_audio(beep(hz=300), received_ns=T0)
    new = beep(hz=600)
    tr.on_audio(new, received_ns=T0 + NS)
    np.testing.assert_array_equal(tr.take(clip_span(T0 + NS, 1.0)), new)
    assert tr.received == 2 and tr.superseded == 1
    with pytest.raises(ValueError):
        UtteranceTracker(hold_s=-1.0)


# --- the message ---------------------------------------------------------------------------------

def test_message_carries_the_capture_time():
    audio = beep(0.25)
    m = audio_to_msg(audio, end_ns=T0)
    assert m.layout.dim[0].label == f"{AUDIO_LABEL};end_ns={T0}" and msg_end_ns(m) == T0
    np.testing.assert_array_equal(msg_to_audio(m), audio)
    plain = audio_to_msg(audio)  # what speech_in publishes today
    assert plain.layout.dim[0].label == AUDIO_LABEL and msg_end_ns(plain) is None
    np.testing.assert_array_equal(msg_to_audio(plain), audio)
    plain.layout.dim[0].label = f"{AUDIO_LABEL};end_ns=soon"
    with pytest.raises(ValueError, match="not an integer"):
        msg_end_ns(plain)
    plain.layout.dim[0].label = "samples_8000hz_mono"
    with pytest.raises(ValueError):
        msg_to_audio(plain)


# --- the encoder on tiny random configs of the real architectures --------------------------------

def _clip(bb, seed: int = 0) -> np.ndarray:
    h, w = bb.frame_size
    return np.random.default_rng(seed).integers(0, 256, (bb.num_frames, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("preset", ["qwen2_5_omni_3b", "tribe_v2"])
def test_encoder_gives_the_clip_its_utterance(preset):
    bb = load_backbone(preset, tiny=True, num_frames=4)
    enc = ClipEncoder(bb)
    assert enc.hears
    clip, audio = _clip(bb), beep()
    silent = enc.encode(clip, "pick up the red cup")
    heard = enc.encode(clip, "pick up the red cup", audio)
    assert heard.shape == silent.shape == (bb.width,) and np.all(np.isfinite(heard))
    assert not np.allclose(heard, silent)  # the same clip sounds different with the utterance
    np.testing.assert_array_equal(heard, bb.encode(clip, "pick up the red cup", audio))
    np.testing.assert_array_equal(silent, bb.encode(clip, "pick up the red cup"))
    assert enc.clips_with_audio == 1


def test_encoder_does_not_pass_audio_to_a_backbone_without_an_audio_path():
    bb = load_backbone("cosmos_reason2_2b", tiny=True, num_frames=2)
    enc = ClipEncoder(bb)
    assert not enc.hears
    clip = _clip(bb)
    np.testing.assert_array_equal(enc.encode(clip, "wave", beep()), enc.encode(clip, "wave"))
    assert enc.clips_with_audio == 0
