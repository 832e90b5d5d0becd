"""Stereo / depth recordings from kitchen cameras: image sequences with no actions.

Layout: ``ROOT/EPISODE/left/*.png`` + ``ROOT/EPISODE/right/*.png`` (a rectified pair, as
written by stereo camera SDKs and KITTI-style datasets), or ``ROOT/EPISODE/rgb/*.png`` +
``ROOT/EPISODE/depth/*.png`` (16-bit depth in millimetres, as RealSense/TUM-RGBD store
it). Frames are taken in file-name order at ``fps`` (option, default 15). An optional
``ROOT/EPISODE/instruction.txt`` gives the scene's instruction (default: ``""``).

What they train: **an auxiliary view-consistency objective.** Each anchor yields two
samples of the same moment, one per view (left/right, or colour/depth rendered as a grey
image), linked by ``pair_key``. They supervise no action component; the trainer adds
``||head(f_view_a) - head(f_view_b)||^2`` (weight ``aux_weight``), teaching the head to
act the same when the camera moves a few centimetres or the backbone sees depth instead
of colour, the robustness a real kitchen camera rig needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neon_ros.data.episode import EpisodeData, episode_samples
from neon_ros.data.registry import Source
from neon_ros.policy.schema import CorruptEpisodeError, Sample

VIEW_PAIRS = (("left", "right"), ("rgb", "depth"))


def load_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 from an 8-bit colour/grey PNG/JPEG or a 16-bit depth PNG (mm -> grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I", "F"):
                depth = np.asarray(img, dtype=np.float64)
                valid = depth[depth > 0]
                top = float(np.percentile(valid, 99)) if valid.size else 1.0
                grey = np.clip(255.0 * (1.0 - depth / max(top, 1.0)), 0, 255) * (depth > 0)
                return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise CorruptEpisodeError(path, f"unreadable image ({exc})") from exc


def image_frames(files: list[Path], fps: float) -> Iterator[tuple[float, np.ndarray]]:
    for i, f in enumerate(files):
        yield i / fps, load_image(f)


class StereoDepthSource(Source):
    type_name = "stereo"

    def __init__(self, config):
        super().__init__(config)
        self.fps = float(config.options.get("fps", 15))

    def episodes(self) -> Iterator[str]:
        for d in sorted(p for p in self.path.iterdir() if p.is_dir()):
            yield d.name

    def read(self, ref: str) -> Iterator[Sample]:
        root = self.path / ref
        pair = next(((a, b) for a, b in VIEW_PAIRS if (root / a).is_dir() and (root / b).is_dir()), None)
        if pair is None:
            raise CorruptEpisodeError(root, "needs left/ + right/ or rgb/ + depth/ image folders")
        files = [sorted(p for p in (root / v).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
                 for v in pair]
        n = min(len(f) for f in files)
        if n < 2 or len(files[0]) != len(files[1]):
            raise CorruptEpisodeError(root, f"view folders hold {len(files[0])} and {len(files[1])} images")
        text_file = root / "instruction.txt"
        instruction = text_file.read_text().strip() if text_file.exists() else ""
        views = []
        for view, view_files in zip(pair, files, strict=True):
            ep = EpisodeData(source=self.name, episode=f"{ref}_{view}", embodiment="generic",
                             times=np.arange(n) / self.fps, instruction=instruction,
                             frames=image_frames(view_files, self.fps))
            views.append(list(episode_samples(ep, **self.episode_kwargs())))
        for a, b in zip(*views, strict=True):
            a.pair_key, b.pair_key = b.sample_id, a.sample_id
            a.episode = b.episode = ref
            yield a
            yield b
