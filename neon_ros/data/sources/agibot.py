"""AgiBot World (Alpha/Beta) episodes, in the layout of the published dataset::

    task_info/task_{TASK}.json                       a list of episodes: episode_id, task_name,
                                                     init_scene_text, label_info.action_config
                                                     [{start_frame, end_frame, action_text}]
    observations/{TASK}/{EPISODE}/videos/{CAM}.mp4   head_color, hand_left_color, ... (30 fps)
    proprio_stats/{TASK}/{EPISODE}/proprio_stats.h5  timestamp (ns), state/... and action/...:
        state/end/position (N, 2, 3), state/end/orientation (N, 2, 4: x, y, z, w),
        state/effector/position (N, 2) gripper, state/joint/position (N, 14),
        action/robot/velocity (N, 2: forward m/s, yaw rad/s) when the base moved

Supervises (embodiment ``agibot_a2d``): both hands' relative end-effector motion from the
measured end poses, both grippers, and the base velocity when present. The A2D's joints
are not a G1's, so joint deltas stay unmasked-off. The instruction at a frame is the
annotated sub-skill (``action_text``) whose range contains it, else the task name.

Options: ``camera`` (default ``head_color``), ``fps`` (default 30, used when the h5 has no
timestamps), ``gripper_max`` (effector value meaning fully closed, default 1.0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from neon_ros.data.episode import EpisodeData, episode_samples
from neon_ros.data.registry import Source
from neon_ros.data.robots import quat_pose
from neon_ros.data.video import iter_frames
from neon_ros.policy.schema import CorruptEpisodeError, Sample


class AgiBotSource(Source):
    type_name = "agibot"

    def __init__(self, config):
        super().__init__(config)
        opts = config.options
        self.camera = opts.get("camera", "head_color")
        self.fps = float(opts.get("fps", 30))
        self.gripper_max = float(opts.get("gripper_max", 1.0))
        self._meta: dict[str, dict] = {}

    def episodes(self) -> Iterator[str]:
        for info in sorted((self.path / "task_info").glob("task_*.json")):
            task = info.stem.removeprefix("task_")
            try:
                entries = json.loads(info.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                self._skip(str(info), f"{info}: unreadable task info ({exc})")
                continue
            for entry in entries:
                ref = f"{task}/{entry['episode_id']}"
                self._meta[ref] = entry
                yield ref

    def read(self, ref: str) -> Iterator[Sample]:
        import h5py

        task, episode = ref.split("/")
        meta = self._meta.get(ref, {})
        h5_path = self.path / "proprio_stats" / task / episode / "proprio_stats.h5"
        try:
            with h5py.File(h5_path, "r") as f:
                pos = np.asarray(f["state/end/position"], np.float64)
                quat = np.asarray(f["state/end/orientation"], np.float64)
                grip = np.asarray(f["state/effector/position"], np.float64) if "state/effector/position" in f else None
                vel = np.asarray(f["action/robot/velocity"], np.float64) if "action/robot/velocity" in f else None
                stamps = np.asarray(f["timestamp"], np.float64) if "timestamp" in f else None
        except (OSError, KeyError) as exc:
            raise CorruptEpisodeError(h5_path, f"unreadable proprio_stats.h5 ({type(exc).__name__}: {exc})") from exc
        n = len(pos)
        if n < 2 or pos.shape[1:] != (2, 3) or quat.shape != (n, 2, 4):
            raise CorruptEpisodeError(h5_path, f"state/end shapes {pos.shape} {quat.shape}, want (N,2,3) (N,2,4)")
        times = (stamps - stamps[0]) * 1e-9 if stamps is not None and len(stamps) == n else np.arange(n) / self.fps
        poses = np.stack([quat_pose(np.concatenate([pos[:, a], quat[:, a]], axis=1)) for a in range(2)], axis=1)
        loco = None
        if vel is not None and len(vel) == n:
            loco = np.stack([vel[:, 0], np.zeros(n), vel[:, -1]], axis=1)
        video = self.path / "observations" / task / episode / "videos" / f"{self.camera}.mp4"
        ep = EpisodeData(
            source=self.name, episode=f"{task}_{episode}", embodiment="agibot_a2d", times=times,
            instruction=self._instruction(meta, times), frames=iter_frames(video),
            ee_pose=poses, grip=None if grip is None else grip / self.gripper_max, loco=loco)
        yield from episode_samples(ep, **self.episode_kwargs())

    def _instruction(self, meta: dict, times: np.ndarray):
        default = meta.get("task_name") or meta.get("init_scene_text") or ""
        segments = (meta.get("label_info") or {}).get("action_config") or []
        fps = self.fps

        def at(t: float) -> str:
            frame = int(round(t * fps))
            for seg in segments:
                if int(seg.get("start_frame", 0)) <= frame <= int(seg.get("end_frame", -1)):
                    return str(seg.get("action_text") or default)
            return default

        return at if segments else default
