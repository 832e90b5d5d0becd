"""speech_in as a real node process: real audio files, real silero-vad, real Whisper tiny.en."""

from __future__ import annotations

import json
import subprocess

import pytest
from support import REPO, Proc, python, ros_env, script, wait_for

from neon_ros.runtime.timing import autogroup_enabled
from neon_ros.voice.vocabulary import normalize
from test.peers.voice_clips import mixed_directory

pytestmark = pytest.mark.ros


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _hear_folder(clips, tmp_path, echo_args: list[str], node_args: list[str]) -> tuple[list[dict], str]:
    """speech_in on a folder of audio files (as fast as it can read them) while test.peers.voice_echo
    listens; returns the peer's rows and the node's log."""
    env = ros_env()
    echo = subprocess.Popen(python("-m", "test.peers.voice_echo", *echo_args, "--diagnostics", "speech_in",
                                   "--match", f"audio_source={clips}"),
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert echo.stdout.readline().strip() == "READY"
        with Proc(script("speech_in") + ["--ros-args", "-p", f"audio_source:={clips}", "-p", "realtime:=0.0",
                                         *node_args], env, tmp_path / "speech_in.log") as node:
            out, _ = echo.communicate(timeout=100)
            assert node.alive(), node.output()
            log = node.output()
    finally:
        if echo.poll() is None:
            echo.kill()
    return _lines(out), log


@pytest.mark.timeout(120)
def test_commands_from_a_directory(tmp_path):
    """Three spoken commands among silence and noise, at 22.05/8/48 kHz, mono/stereo, one clipped."""
    clips = tmp_path / "clips"
    clips.mkdir()
    expected = mixed_directory(clips)
    rows, log = _hear_folder(clips, tmp_path, ["--seconds", "90", "--instructions", "3", "--audio"],
                             ["-p", "publish_audio:=true", "-p", "beam_size:=5"])
    said = [r["text"] for r in rows if r["topic"] == "instruction"]
    assert [normalize(s) for s in said] == expected, (said, log)
    audio = [r for r in rows if r["topic"] == "audio"]
    assert len(audio) == 3 and all(16000 * 0.8 < a["samples"] < 16000 * 6 and a["peak"] > 0.05 for a in audio), audio
    diags = [r for r in rows if r["topic"] == "diagnostics"]
    assert diags and all(d["level"] == 0 for d in diags), diags[-1:]
    # Whisper off the control path: speech_in's threads run at nice 10 (its default), still SCHED_OTHER,
    # and so does its session where the CPU is shared between sessions first (started in one of its own)
    session = ", session nice 10" if autogroup_enabled() else ""
    assert diags[-1]["values"]["scheduling"] == "normal priority, nice 10" + session, diags[-1]
    assert "Traceback" not in log


@pytest.mark.timeout(90)
def test_faults_are_diagnostics_not_crashes(tmp_path):
    """No sound card (mic source) and a missing openai-whisper model: ERROR diagnostics, nodes stay up."""
    import sounddevice as sd

    try:
        has_card = len(sd.query_devices()) > 0
    except sd.PortAudioError:
        has_card = False
    env = ros_env()
    mic = ["--ros-args", "-p", "audio_source:=mic", "-p", "retry_period:=1.0", "-p", "device:=no-such-card"]
    no_model = ["--ros-args", "-p", "backend:=openai_whisper", "-p", f"audio_source:={tmp_path}"]
    with Proc(script("speech_in") + mic, env, tmp_path / "mic.log") as a, \
            Proc(script("speech_in") + no_model, env, tmp_path / "no_model.log") as b:
        assert wait_for(lambda: "no microphone" in a.output() or not a.alive(), 60), a.output()
        assert wait_for(lambda: "unavailable" in b.output() or not b.alive(), 60), b.output()
        out = subprocess.run(python("-m", "test.peers.voice_echo", "--seconds", "4", "--diagnostics", "speech_in"),
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=40).stdout
        assert a.alive() and b.alive(), a.output() + b.output()
        logs = a.output() + b.output()
    diags = {r["values"]["audio_source"]: r for r in _lines(out) if r["topic"] == "diagnostics"}
    mic_diag, model_diag = diags.get("mic"), diags.get(str(tmp_path))
    assert mic_diag and mic_diag["level"] == 2 and "no microphone" in mic_diag["message"], diags
    if not has_card:
        assert "no sound card" in mic_diag["message"], mic_diag
    assert model_diag and model_diag["level"] == 2 and "needs a model" in model_diag["message"], diags
    assert "Traceback" not in logs


@pytest.mark.timeout(120)
def test_vocabulary_guard_and_confidence(tmp_path):
    """Fluent speech that is not a command is rejected (no instruction; the reason on /diagnostics);
    the command after it is published, its confidence on /diagnostics."""
    from neon_ros.voice.audio import write_wav
    from test.peers.voice_clips import speak

    clips = tmp_path / "clips"
    clips.mkdir()
    for name, text in (("01_chat", "the weather in paris is lovely this time of year"),
                       ("02_command", "pick up the red cup")):
        write_wav(clips / f"{name}.wav", *speak(text))
    # until the instruction and the diagnostics that tell of the rejection and of the instruction
    # (/diagnostics may arrive after the instruction)
    rows, log = _hear_folder(clips, tmp_path, ["--seconds", "60", "--instructions", "1", "--until", "last_rejection",
                                               "--until", "last_text"], [])
    assert [normalize(r["text"]) for r in rows if r["topic"] == "instruction"] == ["pick up the red cup"], log
    diags = [r["values"] for r in rows if r["topic"] == "diagnostics"]
    assert any("out of vocabulary" in d.get("last_rejection", "") and "paris" in d["last_rejection"]
               for d in diags), diags
    assert any(d.get("last_text") and 0.0 < float(d["last_confidence"]) <= 1.0 for d in diags), diags
    assert "out of vocabulary" in log and "confidence" in log and "Traceback" not in log
