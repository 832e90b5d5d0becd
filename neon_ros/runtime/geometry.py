"""Clip geometry (frames per clip, frame height and width) from parameters or a backbone preset."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ClipGeometry:
    """num_frames: T frames per clip; height, width: pixels of each frame after resizing."""

    num_frames: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.height < 1 or self.width < 1:
            raise ValueError(f"clip geometry must be positive, got T={self.num_frames} "
                             f"H={self.height} W={self.width}")

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)


def preset_geometry(preset: str, **overrides) -> ClipGeometry:
    """The input geometry a backbone preset expects (T, H, W), read from its configuration.

    Reads the preset's configuration only (``neon_ros.backbones.load_config``): no weights.
    """
    backbones = importlib.import_module("neon_ros.backbones")
    config = backbones.load_config(preset, **overrides)
    h, w = config.frame_size
    return ClipGeometry(int(config.num_frames), int(h), int(w))


def resolve_geometry(preset: str, num_frames: int, height: int, width: int, **overrides) -> ClipGeometry:
    """Explicit values (> 0) win; zeros are filled from the preset."""
    if num_frames > 0 and height > 0 and width > 0:
        return ClipGeometry(num_frames, height, width)
    if not preset:
        raise ValueError("set num_frames, frame_height and frame_width, or name a backbone preset")
    base = preset_geometry(preset, **overrides)
    return ClipGeometry(num_frames if num_frames > 0 else base.num_frames,
                        height if height > 0 else base.height,
                        width if width > 0 else base.width)
