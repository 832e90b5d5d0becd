"""Spoken voice commands: audio clips + a transcript manifest, streamed line by line.

Manifest: JSON Lines in the NVIDIA NeMo ASR layout (one object per clip)::

    {"audio_filepath": "clips/000001.wav", "text": "reach for the red cup", "duration": 1.9,
     "scene": "scenes/kitchen.png"}        # optional: the camera view the command was given in

``path`` is the manifest file (or a folder holding ``manifest.jsonl``); audio paths are
relative to the manifest's folder. The manifest is never loaded whole: episodes are byte
offsets found by one streaming pass, so 50,000 clips cost a list of 50,000 integers.

What they train: each clip yields a pair of samples of the same scene: the spoken
command (audio, empty text) and the written one (transcript, no audio), linked by
``pair_key``. The trainer's consistency loss makes the head act the same on both, so a
spoken "reach for the red cup" drives the arm like the typed one. Without a ``scene``,
the clip is shown over a neutral grey frame (``frame_size`` option, default 64).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from neon_ros.data.episode import load_image
from neon_ros.data.registry import Source
from neon_ros.policy.schema import PROPRIO_DIM, CorruptEpisodeError, Sample

AUDIO_RATE = 16000  # Hz, what the speech encoders and Whisper take


def load_audio(path, rate: int = AUDIO_RATE) -> np.ndarray:
    """Mono float32 at ``rate`` Hz (linear resampling when the file differs)."""
    import soundfile

    try:
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise CorruptEpisodeError(path, f"unreadable audio ({exc})") from exc
    if len(data) == 0:
        raise CorruptEpisodeError(path, "empty audio")
    mono = data.mean(axis=1)
    if sr != rate:
        t_out = np.arange(int(len(mono) * rate / sr)) / rate
        mono = np.interp(t_out, np.arange(len(mono)) / sr, mono).astype(np.float32)
    return mono


class VoiceCommandSource(Source):
    type_name = "voice"

    def __init__(self, config):
        super().__init__(config)
        self.manifest = self.path / "manifest.jsonl" if self.path.is_dir() else self.path
        if not self.manifest.is_file():
            raise FileNotFoundError(f"source {self.name}: no manifest at {self.manifest}")
        self.frame_size = int(config.options.get("frame_size", 64))

    def episodes(self) -> Iterator[str]:
        with open(self.manifest, "rb") as f:
            offset = 0
            for line in iter(f.readline, b""):
                if line.strip():
                    yield str(offset)
                offset += len(line)

    def read(self, ref: str) -> Iterator[Sample]:
        with open(self.manifest, "rb") as f:
            f.seek(int(ref))
            line = f.readline()
        try:
            entry = json.loads(line)
            audio_rel, text = entry["audio_filepath"], str(entry["text"]).strip()
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorruptEpisodeError(self.manifest, f"bad manifest line at byte {ref} ({exc})") from exc
        if not text:
            raise CorruptEpisodeError(self.manifest, f"empty transcript at byte {ref}")
        base = self.manifest.parent
        audio = load_audio(base / audio_rel)
        if entry.get("scene"):
            frame = load_image(base / entry["scene"])
        else:
            frame = np.full((self.frame_size, self.frame_size, 3), 128, np.uint8)
        clip = np.repeat(frame[None], self.config.clip_frames, axis=0)
        episode = f"clip{int(ref):012d}"
        zeros = np.zeros(PROPRIO_DIM, np.float32)
        spoken = Sample(sample_id=f"{self.name}/{episode}/spoken", source=self.name, embodiment="generic",
                        instruction="", frames=clip, proprio=zeros, proprio_mask=zeros, audio=audio,
                        audio_rate=AUDIO_RATE, episode=episode)
        written = Sample(sample_id=f"{self.name}/{episode}/written", source=self.name, embodiment="generic",
                         instruction=text, frames=clip, proprio=zeros.copy(), proprio_mask=zeros.copy(),
                         episode=episode)
        spoken.pair_key, written.pair_key = written.sample_id, spoken.sample_id
        yield spoken
        yield written
