"""speech_out as a real node process: real espeak-ng, WAV files per narration, pre-emption,
throttling, a missing backend reported on /diagnostics, an unreachable PersonaPlex replaced by espeak-ng."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
from support import REPO, Proc, python, ros_env, script, wait_for

pytestmark = pytest.mark.ros

FIRST = "I see the red cup. Reaching for it now."
STALE = "Holding the red cup."
NEWER = "Waving my left hand now."


def _say(env, *pairs: tuple[str, float], seconds: float = 3.0, subscribers: int = 1) -> list[dict]:
    cmd = python("-m", "test.peers.voice_say", "--seconds", str(seconds), "--subscribers", str(subscribers))
    for text, delay in pairs:
        cmd += ["--say", text, str(delay)]
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=90)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.timeout(120)
def test_narrations_to_wav_files(tmp_path):
    out_dir = tmp_path / "spoken"
    env = ros_env()
    with Proc(script("speech_out") + ["--ros-args", "-p", f"output:={out_dir}", "-p", "repeat_s:=30.0"],
              env, tmp_path / "speech_out.log") as node:
        assert wait_for(lambda: "speaking with" in node.output() or not node.alive(), 60), node.output()
        # one narration; then a stale one pre-empted by a newer one sent in the same instant;
        # then the newer one repeated (throttled)
        rows = _say(env, (FIRST, 0.0), (STALE, 2.0), (NEWER, 0.0), (NEWER, 0.5), seconds=3.0)
        assert node.alive(), node.output()
        log = node.output()
    wavs = sorted(out_dir.glob("*.wav"))
    names = [w.name for w in wavs]
    assert len(wavs) == 2, (names, log)
    assert "i_see_the_red_cup" in names[0] and "waving_my_left_hand" in names[1], names
    for w, text in zip(wavs, (FIRST, NEWER), strict=True):
        audio, rate = sf.read(w, dtype="float32")
        seconds = audio.size / rate
        words = len(text.split())
        assert 0.15 * words < seconds < 1.0 * words + 1.0, (w.name, seconds)  # ~0.36 s/word at 165 wpm
        assert np.sqrt(np.mean(audio**2)) > 0.02 and np.abs(audio).max() > 0.2, w.name
    diag = [r for r in rows if "values" in r and r["values"].get("output") == str(out_dir)][-1]
    v = diag["values"]
    assert (v["received"], v["spoken"], v["preempted"], v["throttled"]) == ("4", "2", "1", "1"), v
    assert diag["level"] == 0 and int(v["last_ready_ms"]) > 0, diag
    assert "Traceback" not in log


@pytest.mark.timeout(90)
def test_missing_backend_is_reported(tmp_path):
    """piper not installed, no sound card: ERROR diagnostics saying so, nodes stay up. No PersonaPlex server:
    WARN saying so, and espeak-ng speaks instead."""
    import sounddevice as sd

    try:
        has_card = len(sd.query_devices()) > 0
    except sd.PortAudioError:
        has_card = False
    env = ros_env()
    piper = ["--ros-args", "-p", "backend:=piper", "-p", f"output:={tmp_path / 'a'}"]
    plex = ["--ros-args", "-p", "backend:=personaplex", "-p", "personaplex_url:=ws://127.0.0.1:9",
            "-p", f"output:={tmp_path / 'b'}"]
    speaker = ["--ros-args", "-p", "output:=speaker", "-p", "device:=no-such-card"]
    with Proc(script("speech_out") + piper, env, tmp_path / "piper.log") as a, \
            Proc(script("speech_out") + plex, env, tmp_path / "plex.log") as b, \
            Proc(script("speech_out") + speaker, env, tmp_path / "speaker.log") as c:
        for p in (a, c):
            assert wait_for(lambda p=p: "[ERROR]" in p.output() or not p.alive(), 60), p.output()
        assert wait_for(lambda: "speaking with" in b.output() or not b.alive(), 60), b.output()
        rows = _say(env, ("Reaching for the cup now.", 0.0), seconds=2.5, subscribers=3)
        assert a.alive() and b.alive() and c.alive(), a.output() + b.output() + c.output()
    diags = {r["values"]["output"]: r for r in rows if "values" in r}
    d_piper, d_plex, d_speaker = diags[str(tmp_path / "a")], diags[str(tmp_path / "b")], diags["speaker"]
    assert d_piper["level"] == 2 and "'piper' not found" in d_piper["message"], d_piper
    assert d_plex["level"] == 1 and d_plex["message"].startswith("personaplex unreachable: no PersonaPlex server"), d_plex
    assert d_plex["message"].endswith("; speaking with espeak-ng") and d_plex["values"]["espeak-ng_spoken"] == "1", d_plex
    assert d_speaker["level"] == 2 and "no speaker" in d_speaker["message"], d_speaker
    if not has_card:
        assert "no sound card" in d_speaker["message"], d_speaker
    assert d_piper["values"]["unspoken"] == "1", d_piper
    assert not list((tmp_path / "a").glob("*.wav"))
    assert [w.name for w in (tmp_path / "b").glob("*.wav")] == ["00000_reaching_for_the_cup_now.wav"]
