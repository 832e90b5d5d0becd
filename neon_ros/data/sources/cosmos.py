"""Cosmos synthetic video: generated mp4 clips, each with a sidecar JSON of the same stem.

Layout: ``ROOT/**/NAME.mp4`` + ``ROOT/**/NAME.json``. The sidecar holds the generation
prompt and, when an inverse-dynamics model or the generator labelled the clip, pseudo-
actions on the video's frame clock::

    {"prompt": "the robot picks up the red cup",      # also accepted: instruction, caption
     "fps": 16,                                        # optional, default: the video's
     "embodiment": "g1",                               # optional, default g1 if joints given
     "pseudo_actions": {                               # optional
        "joint_positions": [[29 floats], ...],         # G1 joints, SDK order, rad
        "ee_poses": [[[x, y, z, qx, qy, qz, qw], [..right..]], ...],
        "gripper": [[left, right], ...]}}              # closure 0..1

Without pseudo-actions a clip is video + text only (embodiment ``generic``): it supervises
no action component and only conditions the feature statistics; with them, the
pseudo-actions are converted to the relative representation like real demonstrations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from neon_ros.data.episode import EpisodeData, episode_samples
from neon_ros.data.registry import Source
from neon_ros.data.robots import g1_hand_poses, quat_pose
from neon_ros.data.video import iter_frames, video_info
from neon_ros.policy.schema import CorruptEpisodeError, Sample


class CosmosSource(Source):
    type_name = "cosmos"

    def episodes(self) -> Iterator[str]:
        for mp4 in sorted(self.path.rglob("*.mp4")):
            yield str(mp4.relative_to(self.path).with_suffix(""))

    def read(self, ref: str) -> Iterator[Sample]:
        video = self.path / f"{ref}.mp4"
        sidecar = video.with_suffix(".json")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptEpisodeError(sidecar, f"missing or invalid sidecar JSON ({exc})") from exc
        prompt = meta.get("prompt") or meta.get("instruction") or meta.get("caption")
        if not isinstance(prompt, str) or not prompt:
            raise CorruptEpisodeError(sidecar, "no prompt/instruction/caption string")
        fps, count = video_info(video)
        fps = float(meta.get("fps") or fps or 0)
        if fps <= 0:
            raise CorruptEpisodeError(video, "unknown frame rate (set fps in the sidecar)")
        acts = meta.get("pseudo_actions") or {}
        kwargs: dict = {}
        n = 0
        if "joint_positions" in acts:
            q = np.asarray(acts["joint_positions"], np.float64)
            kwargs.update(g1_q=q, ee_pose=g1_hand_poses(q))
            n = len(q)
        elif "ee_poses" in acts:
            p = np.asarray(acts["ee_poses"], np.float64)
            if p.ndim != 3 or p.shape[1:] != (2, 7):
                raise CorruptEpisodeError(sidecar, f"ee_poses must be (N, 2, 7), got {p.shape}")
            kwargs.update(ee_pose=np.stack([quat_pose(p[:, 0]), quat_pose(p[:, 1])], axis=1))
            n = len(p)
        if "gripper" in acts:
            kwargs["grip"] = np.asarray(acts["gripper"], np.float64)
            n = n or len(kwargs["grip"])
        embodiment = meta.get("embodiment") or ("g1" if "joint_positions" in acts else
                                                "generic" if not acts else "g1")
        n = n or max(count, 2)
        ep = EpisodeData(source=self.name, episode=ref.replace("/", "_"), embodiment=embodiment,
                         times=np.arange(n) / fps, instruction=prompt, frames=iter_frames(video), **kwargs)
        yield from episode_samples(ep, **self.episode_kwargs())
