"""Narration text: templates per phase, object extraction, backbone generation fallback."""

from __future__ import annotations

import pytest

from neon_ros.voice import narration
from neon_ros.voice.narration import compose, narrate


def test_example_sentence():
    assert compose("pick up the red cup", "reaching", ["red cup"]) == "I see the red cup. Reaching for it now."


@pytest.mark.parametrize("instruction,phase,expected", [
    ("pick up the red cup", "reaching", "Reaching for the red cup now."),
    ("wave your left hand", "waving", "Waving my left hand now."),
    ("point at the cup", "pointing", "Pointing at the cup now."),
    ("put the cup on the table", "placing", "Putting the cup down."),
    ("pick up the red cup", "Grasp", "Grasping the red cup."),
    ("", "idle", "Ready when you are."),
])
def test_known_phases(instruction, phase, expected):
    assert compose(instruction, phase) == expected


def test_every_known_phase_is_short_first_person_sentence():
    for phase in narration.PHASE_TEMPLATES:
        text = compose("pick up the red cup", phase, ["red cup"])
        assert text.startswith("I see the red cup.")
        assert text.endswith((".", "!"))
        assert len(text.split()) <= 16
        assert "{" not in text


@pytest.mark.parametrize("phase", ["look_around", "Calibrating", "", "???"])
def test_unknown_phase_falls_back(phase):
    text = compose("pick up the red cup", phase)
    assert text and text[0].isupper() and text.endswith(".")


def test_object_phrase_and_person():
    assert narration.object_phrase("Please hand me your blue bottle.") == "my blue bottle"
    assert narration.object_phrase("wave") is None
    assert narration.to_first_person("wave your hand at me") == "wave my hand at you"


class _Generator:
    can_generate = True

    def __init__(self, reply):
        self.reply = reply
        self.prompts = []

    def generate_text(self, frames, prompt):
        self.prompts.append(prompt)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_narrate_uses_generated_text():
    gen = _Generator("I see a red cup on the table and I am reaching for it. <|im_end|> extra words")
    out = narrate(gen, frames=[0], instruction="pick up the red cup", phase="reaching")
    assert out.startswith("I see a red cup on the table and I am reaching for it.")
    assert "pick up the red cup" in gen.prompts[0] and "reaching" in gen.prompts[0]


@pytest.mark.parametrize("reply", ["", "   ...  ", RuntimeError("OOM"), " ".join(["word"] * 80)])
def test_narrate_falls_back(reply):
    gen = _Generator(reply)
    assert narrate(gen, [0], "pick up the red cup", "reaching") == "Reaching for the red cup now."


def test_narrate_without_generation():
    class NoGen:
        can_generate = False
    assert narrate(NoGen(), [0], "point at the cup", "pointing", ["cup"]) == "I see the cup. Pointing at it now."
    assert narrate(None, None, "point at the cup", "pointing") == "Pointing at the cup now."
