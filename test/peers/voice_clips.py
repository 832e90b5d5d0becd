"""Real test audio for the voice tests: espeak-ng speech, silence, white noise, clipping,
other sample rates and channel counts, written as WAV files."""

from pathlib import Path

import numpy as np

from neon_ros.voice.audio import resample, write_wav
from neon_ros.voice.tts import TtsConfig, make_tts

# The test 'speaker': an espeak-ng voice that Whisper tiny.en understands reliably.
SPEAKER = TtsConfig(voice="en-us+klatt2", rate_wpm=165, word_gap=4)
COMMANDS = ("pick up the red cup", "wave your left hand", "point at the cup")


def speak(text: str) -> tuple[np.ndarray, int]:
    audio, rate = make_tts(SPEAKER).synthesize(text)
    return audio, rate


def stereo(audio: np.ndarray) -> np.ndarray:
    """Two channels of different gain (the down-mix must average them)."""
    return np.stack([0.9 * audio, 0.5 * audio], axis=1)


def clipped(audio: np.ndarray, gain: float = 4.0) -> np.ndarray:
    return np.clip(audio * gain, -0.6, 0.6)


def white_noise(seconds: float, rate: int, std: float = 0.1, seed: int = 0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0.0, std, int(seconds * rate)), -1, 1).astype(np.float32)


def mixed_directory(directory: Path) -> list[str]:
    """Five files in name order; returns the commands expected from them, in order.

    01 speech 22.05 kHz mono, 02 silence, 03 speech clipped then 8 kHz stereo,
    04 white noise 44.1 kHz, 05 speech 48 kHz stereo.
    """
    pick, r1 = speak(COMMANDS[0])
    wave, r2 = speak(COMMANDS[1])
    point, r3 = speak(COMMANDS[2])
    write_wav(directory / "01_pick_22k_mono.wav", pick, r1)
    write_wav(directory / "02_silence_16k.wav", np.zeros(2 * 16000, np.float32), 16000)
    write_wav(directory / "03_wave_clipped_8k_stereo.wav", clipped(stereo(resample(wave, r2, 8000))), 8000)
    write_wav(directory / "04_noise_44k.wav", white_noise(2.0, 44100), 44100)
    write_wav(directory / "05_point_48k_stereo.wav", stereo(resample(point, r3, 48000)), 48000)
    return list(COMMANDS)
