"""The source registry: one adapter class per on-disk format, chosen by ``type:`` in a soup.

An adapter subclasses :class:`Source`: ``episodes()`` lists episode references cheaply
(file names, manifest lines), ``read(ref)`` streams that episode's samples. Reading errors
raise :class:`~neon_ros.policy.schema.CorruptEpisodeError` naming the file;
:meth:`Source.samples` turns them into a skipped episode, never a failed run.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neon_ros.policy.schema import EE_FRAMES, CorruptEpisodeError, Sample

log = logging.getLogger("neon_ros.data")

# type name -> "module:Class" (imported only when a soup uses it).
SOURCE_TYPES: dict[str, str] = {
    "lerobot": "neon_ros.data.sources.lerobot:LeRobotSource",
    "agibot": "neon_ros.data.sources.agibot:AgiBotSource",
    "cosmos": "neon_ros.data.sources.cosmos:CosmosSource",
    "stereo": "neon_ros.data.sources.stereo:StereoDepthSource",
    "voice": "neon_ros.data.sources.voice:VoiceCommandSource",
    "g1_rosbag": "neon_ros.data.sources.g1_rosbag:G1RosbagSource",
    "xr_teleop": "neon_ros.data.sources.xr_teleop:XrTeleopSource",
}


@dataclass
class SourceConfig:
    """One entry of a soup YAML.

    name: unique name in the soup (sample ids start with it).
    type: a key of SOURCE_TYPES.
    path: dataset root (relative paths resolve against the soup file's folder).
    weight: relative sampling weight (> 0); normalised over the soup's sources.
    stride: seconds between sample anchors within an episode.
    clip_frames: frames per clip, evenly spaced over the ``clip_seconds`` before its end.
    clip_seconds: the time a clip spans: match the robot's camera ring (clip_frames newest
        frames at the camera rate: 8 frames at 10 Hz span 0.8 s).
    clip_lag: s from a clip's end to the anchor its joints and labels are taken at: the age
        features have when the head uses them on the robot (backbone latency and waiting).
    clip_lag_max: 0 = every clip lags by clip_lag; else each anchor's lag is drawn uniformly
        from [clip_lag, clip_lag_max] (seeded per episode): a head for backbones of any speed
        in that range (a slow preset's features are 1-2 s old; see `expected_latency_s`).
    max_side: frames are downscaled (integer stride) so the longer side is <= this.
    ee_frame: "hand" (relative actions, DESIGN.md section 4: what lets any robot's data teach the
        G1) or "base" (absolute hand poses in the robot's base frame: only for measuring what the
        relative representation buys; every source of a soup must agree).
    max_episodes: read at most this many episodes (0 = all).
    options: adapter-specific settings (documented in each adapter's module).
    """

    name: str
    type: str
    path: Path
    weight: float = 1.0
    stride: float = 0.25
    clip_frames: int = 8
    clip_seconds: float = 1.0
    clip_lag: float = 0.0
    clip_lag_max: float = 0.0
    max_side: int = 256
    ee_frame: str = "hand"
    max_episodes: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"source name must be non-empty without '/', got {self.name!r}")
        if self.type not in SOURCE_TYPES:
            raise ValueError(f"source {self.name}: unknown type {self.type!r}; known: {sorted(SOURCE_TYPES)}")
        if not self.weight > 0:
            raise ValueError(f"source {self.name}: weight must be > 0, got {self.weight}")
        if not self.stride > 0 or self.clip_frames < 1 or self.max_side < 8 or self.max_episodes < 0:
            raise ValueError(f"source {self.name}: need stride > 0, clip_frames >= 1, max_side >= 8, "
                             "max_episodes >= 0")
        if not (0 < self.clip_seconds <= 10 and 0 <= self.clip_lag <= 5):
            raise ValueError(f"source {self.name}: need clip_seconds in (0, 10] and clip_lag in [0, 5] s, got "
                             f"{self.clip_seconds}, {self.clip_lag}")
        if self.clip_lag_max and not self.clip_lag <= self.clip_lag_max <= 5:
            raise ValueError(f"source {self.name}: clip_lag_max must be 0 or in [clip_lag, 5] s, got "
                             f"{self.clip_lag_max}")
        if self.ee_frame not in EE_FRAMES:
            raise ValueError(f"source {self.name}: ee_frame must be one of {EE_FRAMES}, got {self.ee_frame!r}")
        self.path = Path(self.path)


@dataclass
class SkipRecord:
    source: str
    episode: str
    error: str


class Source(abc.ABC):
    """Base class of every adapter. Subclasses set ``type_name`` and implement the two methods."""

    type_name = ""

    def __init__(self, config: SourceConfig):
        self.config = config
        self.name = config.name
        self.path = config.path
        self.skipped: list[SkipRecord] = []
        if not self.path.exists():
            raise FileNotFoundError(f"source {self.name}: {self.path} does not exist")

    @abc.abstractmethod
    def episodes(self) -> Iterator[str]:
        """References of the episodes this source holds (paths, bag names, ...)."""

    @abc.abstractmethod
    def read(self, ref: str) -> Iterator[Sample]:
        """The samples of one episode; CorruptEpisodeError if its files are damaged."""

    def samples(self) -> Iterator[Sample]:
        """Every sample of every episode; a corrupt episode is logged, recorded and skipped.

        An episode's samples are collected before any is yielded, so a file that breaks
        halfway leaves no partial episode behind.
        """
        for n, ref in enumerate(self.episodes()):
            if self.config.max_episodes and n >= self.config.max_episodes:
                break
            try:
                batch = list(self.read(ref))
            except CorruptEpisodeError as exc:
                self._skip(ref, str(exc))
                continue
            except (OSError, ValueError, KeyError, IndexError, RuntimeError, EOFError) as exc:
                self._skip(ref, f"{ref}: {type(exc).__name__}: {exc}")
                continue
            yield from batch

    def _skip(self, ref: str, message: str) -> None:
        log.warning("source %s: skipping episode %s: %s", self.name, ref, message)
        self.skipped.append(SkipRecord(self.name, ref, message))

    def episode_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {"stride": c.stride, "clip_frames": c.clip_frames, "clip_seconds": c.clip_seconds,
                "clip_lag": c.clip_lag, "clip_lag_max": c.clip_lag_max, "max_side": c.max_side,
                "ee_frame": c.ee_frame}


def open_source(config: SourceConfig) -> Source:
    module_name, cls_name = SOURCE_TYPES[config.type].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config)
