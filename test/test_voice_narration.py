"""The narration table (neon_ros.runtime.narration): templates per phase, object extraction."""

from __future__ import annotations

import pytest

from neon_ros.runtime import narration
from neon_ros.runtime.narration import compose


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


def test_every_phase_the_head_reports_has_its_own_sentence():
    for phase in (*narration.PHASES, "thinking"):
        assert narration.normalize_phase(phase) in narration.PHASE_TEMPLATES
