"""The command vocabulary and the hallucination guards (no model), and the model size presets."""

from __future__ import annotations

import pytest

from neon_ros.data.sim_expert import TASKS
from neon_ros.voice.asr import ASR_PRESETS, AsrConfig, AsrUnavailableError, Transcript, make_asr
from neon_ros.voice.vocabulary import Vocabulary, load_vocabulary, repeated_phrase


def test_vocabulary_holds_the_task_registry_and_the_file():
    v = load_vocabulary()
    assert set(TASKS.values()) <= set(v.commands)
    assert v.commands[-len(TASKS):] == tuple(TASKS.values())  # last: what Whisper keeps of a long prompt
    assert {"sink", "bottle", "drawer", "pour"} <= v.words
    assert v.prompt.startswith("Actions: pick up, put") and v.prompt.endswith("Raise both hands. Stand still.")
    only_tasks = load_vocabulary("")
    assert only_tasks.commands == tuple(TASKS.values()) and "sink" not in only_tasks.words


@pytest.mark.parametrize(("text", "reason"), [
    ("Pick up the red cup.", ""),
    ("Put the cups in the sink.", ""),  # plural of a known word
    ("Close the door slowly.", ""),  # a mishearing made of known words passes (the prompt's job)
    ("But I can't be missing.", "out of vocabulary: 1 of 1"),
    ("And meet the green bottle.", ""),  # 1 of 3 unknown: not 'most'
    ("The weather in Paris is lovely.", "out of vocabulary: 3 of 3"),
    ("You", "no command words"),
    ("Thank you.", "out of vocabulary"),
    ("stop stop stop", ""),
    ("stop stop stop stop", "repeated phrase 'stop'"),
    ("Pick up the cup. Pick up the cup.", "repeated phrase 'pick up the cup'"),
    ("turn left turn left turn left", "repeated phrase 'turn left'"),
])
def test_rejection_reasons(text, reason):
    got = load_vocabulary().rejection(text, max_unknown=0.5)
    assert got.startswith(reason) if reason else got == "", got


def test_plurals_of_known_words_are_known():
    """Each singular a plural may have is tried: stripping 'es' alone made 'plates' 'plat', unknown,
    and 'stack the plates on the counter', heard right, was rejected as 2 of 3 words unknown."""
    v = load_vocabulary()
    _, unknown = v.unknown_words("Stack the plates and the boxes on the counters, then the cups and the glasses")
    assert unknown == []
    assert v.unknown_words("Stack the plats")[1] == ["plats"]


def test_unknown_fraction_is_a_parameter():
    v = load_vocabulary()
    assert v.rejection("And meet the green bottle.", 0.3).startswith("out of vocabulary: 1 of 3")
    assert v.rejection("But I can't be missing.", 1.0) == ""


def test_repeated_phrase():
    assert repeated_phrase("put the cup on the table") == ""
    assert repeated_phrase("the cup the cup") == ""  # two short repeats: could be said
    assert repeated_phrase("la la la la la la") == "la"


def test_bad_vocabulary_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.yaml"):
        load_vocabulary("no_such.yaml")
    bad = tmp_path / "v.yaml"
    bad.write_text("nouns: [cup]\n")
    with pytest.raises(ValueError, match="unknown sections"):
        load_vocabulary(str(bad))
    bad.write_text("objects: cup\n")
    with pytest.raises(ValueError, match="must be a list"):
        load_vocabulary(str(bad))
    bad.write_text("objects: [cup\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_vocabulary(str(bad))
    ok = tmp_path / "ok.yaml"
    ok.write_text("objects: [Teapot]\ncommands: [pour the tea]\n")
    v = load_vocabulary(str(ok), tasks=["stand still"])
    assert v == Vocabulary(("pour the tea", "stand still"), objects=("teapot",),
                           words=frozenset({"teapot", "pour", "the", "tea", "stand", "still"}), source=str(ok))


def test_transcript_confidence_and_rejection():
    cfg = AsrConfig()
    sure = Transcript("Pick up the cup.", 0.01, -0.1, 0.1, 1.0)
    assert sure.rejection(cfg) == "" and 0.89 < sure.confidence < 0.9
    assert Transcript("Thank you.", 0.9, -1.5, 0.1, 1.0).rejection(cfg).startswith("no speech")
    assert Transcript(" ... ", 0.0, -0.1, 0.1, 1.0).rejection(cfg) == "no words recognized"


def test_presets():
    assert AsrConfig().beam == ASR_PRESETS["tiny.en"].beam_size == 5
    assert AsrConfig(name="small.en").beam == 1 and AsrConfig(name="small.en", beam_size=3).beam == 3
    with pytest.raises(ValueError, match="unknown Whisper model size 'huge'"):
        AsrConfig(name="huge")


def test_a_preset_that_is_not_here_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing is downloaded either
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AsrUnavailableError, match="preset small.en needs the CTranslate2 model "
                       "Systran/faster-whisper-small.en, which is not in the Hugging Face cache"):
        make_asr(AsrConfig(name="small.en"))
