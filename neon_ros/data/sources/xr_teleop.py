"""G1 teleoperation episodes in the JSON layout of Unitree's ``xr_teleoperate`` recorder.

Layout: ``ROOT/episode_NNNN/data.json`` + the images it names (``colors/*.jpg``)::

    {"info": {"image": {"fps": 30, ...}, "joint_names": {"left_arm": [...], "right_arm": [...]}},
     "text": {"goal": "pick up the red cup", "desc": ..., "steps": ...},
     "data": [{"idx": 0, "colors": {"color_0": "colors/000000_color_0.jpg"},
               "states": {"left_arm": {"qpos": [7]}, "right_arm": {"qpos": [7]},
                          "left_ee": {"qpos": [...]}, "right_ee": {"qpos": [...]},
                          "body": {"qpos": [...]}},
               "actions": {...same groups...}}, ...]}

Arm joints (7 per arm, the G1 SDK order unless ``joint_names`` says otherwise) supervise
the G1 arm joint deltas (only those joints are unmasked) and, through the G1 forward
kinematics with the rest of the body at the standing pose, both hands' relative motion.
Hand closure = mean |hand qpos| / ``hand_closed`` (option, rad, default 1.0), clipped to
0..1. The instruction is ``text.goal``. Options: ``camera`` (default ``color_0``),
``fps`` (used when info.image.fps is missing, default 30).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neon_ros.data.episode import EpisodeData, episode_samples, image_frames
from neon_ros.data.registry import Source
from neon_ros.data.robots import g1_hand_poses
from neon_ros.g1 import ARM_INDICES, JOINT_INDEX, NUM_JOINTS, STANDING_POSE
from neon_ros.policy.schema import CorruptEpisodeError, Sample


class XrTeleopSource(Source):
    type_name = "xr_teleop"

    def __init__(self, config):
        super().__init__(config)
        self.camera = config.options.get("camera", "color_0")
        self.fps = float(config.options.get("fps", 30))
        self.hand_closed = float(config.options.get("hand_closed", 1.0))

    def episodes(self) -> Iterator[str]:
        for f in sorted(self.path.glob("*/data.json")):
            yield f.parent.name

    def read(self, ref: str) -> Iterator[Sample]:
        root = self.path / ref
        path = root / "data.json"
        try:
            doc = json.loads(path.read_text())
            frames = doc["data"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorruptEpisodeError(path, f"unreadable xr_teleoperate episode ({type(exc).__name__}: {exc})") from exc
        info = doc.get("info") or {}
        fps = float((info.get("image") or {}).get("fps") or self.fps)
        names = info.get("joint_names") or {}
        columns = {side: self._columns(names.get(f"{side}_arm"), side) for side in ("left", "right")}
        n = len(frames)
        q = np.tile(STANDING_POSE, (n, 1))
        grip = np.zeros((n, 2))
        valid = np.zeros(NUM_JOINTS, bool)
        images: list[Path] = []
        try:
            for i, fr in enumerate(frames):
                states = fr["states"]
                for h, side in enumerate(("left", "right")):
                    arm = np.asarray(states[f"{side}_arm"]["qpos"], np.float64)
                    q[i, columns[side][: len(arm)]] = arm[: len(columns[side])]
                    valid[columns[side][: len(arm)]] = True
                    hand = np.asarray((states.get(f"{side}_ee") or {}).get("qpos") or [0.0], np.float64)
                    grip[i, h] = np.clip(np.mean(np.abs(hand)) / self.hand_closed, 0.0, 1.0)
                images.append(root / fr["colors"][self.camera])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptEpisodeError(path, f"frame {i}: bad state/colors entry ({type(exc).__name__}: {exc})") from exc
        if n < 2:
            raise CorruptEpisodeError(path, f"{n} frames")
        goal = str((doc.get("text") or {}).get("goal") or "")
        ep = EpisodeData(source=self.name, episode=ref, embodiment="g1", times=np.arange(n) / fps,
                         instruction=goal, frames=image_frames(images, fps),
                         g1_q=q, joint_valid=valid, ee_pose=g1_hand_poses(q), grip=grip)
        yield from episode_samples(ep, **self.episode_kwargs())

    @staticmethod
    def _columns(names, side: str) -> list[int]:
        if names and all(n in JOINT_INDEX for n in names):
            return [JOINT_INDEX[n] for n in names]
        if names:  # short names like "left_shoulder_pitch" without the _joint suffix
            full = [n if n in JOINT_INDEX else f"{n}_joint" for n in names]
            if all(n in JOINT_INDEX for n in full):
                return [JOINT_INDEX[n] for n in full]
        return list(ARM_INDICES[side])

