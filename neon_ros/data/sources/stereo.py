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

import numpy as np

from neon_ros.data.episode import EpisodeData, episode_samples, image_frames
from neon_ros.data.registry import Source
from neon_ros.policy.schema import CorruptEpisodeError, Sample

VIEW_PAIRS = (("left", "right"), ("rgb", "depth"))


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
