"""Voice core without ROS: format conversion, sources, silero-vad segmentation, Whisper on real
speech, and the speech queue's pre-emption / throttling with real espeak-ng."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from neon_ros.voice import audio
from neon_ros.voice.asr import (
    AsrConfig,
    AsrUnavailableError,
    Transcript,
    bundled_tiny_en,
    make_asr,
    normalize,
)
from neon_ros.voice.speech_queue import DirectorySink, SpeechQueue, SpeechQueueConfig
from neon_ros.voice.tts import TtsConfig, make_tts
from neon_ros.voice.vad import Segmenter, VadConfig
from test.peers.voice_clips import COMMANDS, clipped, speak, stereo, white_noise


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * rate / x.size)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resample_and_downmix(rate):
    x = stereo(_tone(440.0, rate))
    y = audio.prepare(x, rate)
    assert y.dtype == np.float32 and y.ndim == 1 and abs(y.size - 16000) <= 1
    assert abs(_peak_hz(y, 16000) - 440.0) < 2.0
    assert abs(np.abs(y[1000:-1000]).max() - 0.35) < 0.02  # mean of the 0.9 and 0.5 gains x 0.5


def test_integer_pcm_and_bad_values():
    assert audio.to_float(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert audio.to_float(np.array([0, 128, 255], np.uint8))[1] == 0.0
    assert audio.to_float(np.array([np.nan, np.inf, -np.inf, 3.0], np.float32)).tolist() == [0.0, 1.0, -1.0, 1.0]
    with pytest.raises(ValueError):
        audio.to_mono(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        audio.resample(np.zeros(10), 0)


def test_file_source_order_and_errors(tmp_path):
    for name, rate in (("b.wav", 8000), ("a.wav", 44100)):
        audio.write_wav(tmp_path / name, _tone(300, rate, 0.5), rate)
    (tmp_path / "notes.txt").write_text("not audio")
    src = audio.FileSource(tmp_path, block=512, realtime=0, gap_s=0.0, lead_s=0.0)
    assert [f.name for f in src.files] == ["a.wav", "b.wav"]
    blocks = list(src.blocks())
    assert all(b.size == 512 for b in blocks) and abs(sum(b.size for b in blocks) - 16000) <= 512
    with pytest.raises(FileNotFoundError, match="neither"):
        audio.audio_files(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        audio.audio_files(empty)


def test_no_sound_card_is_a_clear_error():
    import sounddevice as sd

    try:
        if len(sd.query_devices()) > 0:
            pytest.skip("this machine has a sound device")
    except sd.PortAudioError:
        pass
    with pytest.raises(audio.AudioDeviceError, match="no sound card"):
        audio.MicSource()


_SEGMENTER: list[Segmenter] = []


def _segments(x: np.ndarray, rate: int) -> list:
    if not _SEGMENTER:
        _SEGMENTER.append(Segmenter(VadConfig()))
    seg = _SEGMENTER[0]
    seg.reset()
    x = audio.prepare(x, rate)
    x = np.concatenate([np.zeros(8000, np.float32), x, np.zeros(16000, np.float32)])
    out = []
    for i in range(0, x.size, 700):  # blocks that are not multiples of the VAD window
        out += seg.feed(x[i:i + 700])
    return out + seg.flush()


def test_vad_ignores_silence_and_noise_finds_speech():
    assert _segments(np.zeros(48000, np.float32), 16000) == []
    assert _segments(white_noise(3.0, 44100, std=0.1), 44100) == []
    assert _segments(white_noise(3.0, 16000, std=0.5), 16000) == []
    speech, rate = speak(COMMANDS[0])
    utts = _segments(speech, rate)
    assert len(utts) == 1
    assert abs(utts[0].duration_s - speech.size / rate) < 0.8 and utts[0].peak_prob > 0.9


def test_vad_config_validation():
    with pytest.raises(ValueError):
        VadConfig(threshold=1.5)
    with pytest.raises(ValueError):
        VadConfig(max_utterance_s=0.5)


@pytest.fixture(scope="module")
def whisper():
    cfg = AsrConfig()
    return cfg, make_asr(cfg)


def test_bundled_weights_live_in_site_packages():
    path = bundled_tiny_en()
    assert "site-packages" in str(path) and (path / "model.bin").stat().st_size > 50e6


def test_whisper_on_clipped_and_resampled_speech(whisper):
    cfg, asr = whisper
    wave, rate = speak(COMMANDS[1])
    t = asr.transcribe(audio.prepare(clipped(stereo(audio.resample(wave, rate, 8000))), 8000))
    assert normalize(t.text) == COMMANDS[1] and not t.rejection(cfg)
    square = np.sign(_tone(200, 16000, 1.5)).astype(np.float32)  # full-scale, fully clipped: must not crash
    asr.transcribe(square)
    with pytest.raises(ValueError, match="empty"):
        asr.transcribe(np.zeros(0, np.float32))


def test_whisper_silence_rule():
    cfg = AsrConfig()
    assert Transcript("Thank you.", 0.9, -1.5, 0.1, 1.0).rejection(cfg)
    assert not Transcript("Pick up the cup.", 0.9, -0.3, 0.1, 1.0).rejection(cfg)
    assert Transcript(" ... ", 0.0, -0.1, 0.1, 1.0).rejection(cfg)
    assert normalize("Point at the CUP!") == "point at the cup"
    with pytest.raises(ValueError, match="unknown ASR backend"):
        AsrConfig(backend="nope")
    with pytest.raises(AsrUnavailableError, match="needs a model"):
        make_asr(AsrConfig(backend="openai_whisper"))


def test_speech_queue_preempts_throttles_and_drops_stale(tmp_path: Path):
    tts = make_tts(TtsConfig())
    n = SpeechQueue(tts, DirectorySink(tmp_path), SpeechQueueConfig(repeat_s=10.0, max_age_s=5.0))
    try:
        assert n.submit("Holding the red cup.") == "queued"
        assert n.submit("Waving my left hand now.") == "queued"  # pre-empts the first
        assert n.submit("waving my LEFT hand now!") == "throttled"
        assert n.submit("   ") == "empty"
        deadline = time.monotonic() + 20
        while n.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert n.submit("Reaching for the cup now.", now=time.monotonic() - 10.0) == "queued"  # already stale
        while n.busy and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        n.close()
    s = n.stats
    assert (s.received, s.spoken, s.preempted, s.throttled, s.stale, s.failed) == (5, 1, 1, 1, 1, 0), s
    assert [p.name for p in sorted(tmp_path.glob("*.wav"))] == ["00000_waving_my_left_hand_now.wav"]


@pytest.mark.timeout(180)
def test_openai_whisper_backend_on_the_real_weights(tmp_path):
    """Second backend: the bundled tiny.en converted to an openai-whisper checkpoint, then real transcription."""
    from neon_ros.voice.ct2_whisper import convert, read_ct2

    spec, variables = read_ct2(bundled_tiny_en() / "model.bin")
    assert spec == "WhisperSpec" and variables["decoder/embeddings/weight"].shape == (51864, 384)
    convert(bundled_tiny_en(), tmp_path / "tiny.en.pt")
    cfg = AsrConfig(backend="openai_whisper", model=str(tmp_path), beam_size=1, threads=2)
    asr = make_asr(cfg)
    speech, rate = speak(COMMANDS[2])
    t = asr.transcribe(audio.prepare(speech, rate))
    assert normalize(t.text) == COMMANDS[2] and not t.rejection(cfg), t
