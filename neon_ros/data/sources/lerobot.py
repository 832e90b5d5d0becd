"""LeRobot datasets, format v3.0 (as written by lerobot >= 0.4 and served on the Hub).

Layout read here::

    meta/info.json                         fps, robot_type, features, path templates
    meta/tasks.parquet                     task strings (pandas index) -> task_index
    meta/episodes/chunk-*/file-*.parquet   one row per episode: length, tasks, where its rows
                                           and video segment live (data/chunk_index, ...,
                                           videos/KEY/from_timestamp, to_timestamp)
    meta/stats.json                        per-feature min/max/mean/std (optional)
    data/chunk-*/file-*.parquet            frames of many episodes (episode_index column)
    videos/KEY/chunk-*/file-*.mp4          AV1 video, episodes concatenated in time

Options (soup ``options:``):
    camera: video feature key (default: the first video feature in info.json)
    embodiment: override the embodiment derived from ``robot_type``
    angle_unit: ``rad`` (default) or ``deg`` for joint columns
    state_key: joint-state column (default ``observation.state``)
    gripper: name of the gripper column in the state's names (default: the one containing
        "gripper"); closure is min/max-normalised with meta/stats.json
    ee_state_key: a column holding the hand pose (x, y, z, qx, qy, qz, qw) if the dataset
        has one: then FK is not needed (Franka datasets often do; default: the
        ``observation.ee_pose`` column when there is one)

Actions: hand motion is the future observed state (FK). G1 datasets (29 joint names of the
G1) supervise joint deltas from the ``action`` column (``action_key``: the commanded joint
positions, which lead the measured ones by the PD lag) minus the current state, and both
hands through the G1 FK; single-arm robots supervise the right hand's relative
end-effector motion (through their FK) and its gripper. A G1 dataset written by a scripted
expert may carry ``action.chunk`` (``chunk_key``; shape [16, 29]): the chunk the expert
would send from each frame's state, which then is the label itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from neon_ros.data.episode import EpisodeData, episode_samples
from neon_ros.data.lerobot_writer import EE_POSE
from neon_ros.data.registry import Source
from neon_ros.data.robots import embodiment_for, g1_hand_poses, quat_pose, single_arm_fk
from neon_ros.data.video import iter_frames
from neon_ros.g1 import JOINT_NAMES, NUM_JOINTS
from neon_ros.policy.schema import CorruptEpisodeError, Sample


class LeRobotSource(Source):
    type_name = "lerobot"

    def __init__(self, config):
        super().__init__(config)
        import pyarrow.parquet as pq

        info_path = self.path / "meta" / "info.json"
        try:
            self.info = json.loads(info_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptEpisodeError(info_path, f"unreadable LeRobot info.json ({exc})") from exc
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise ValueError(f"{info_path}: codebase_version {version!r}; this adapter reads v3.x")
        opts = config.options
        self.fps = float(self.info["fps"])
        features = self.info["features"]
        videos = [k for k, v in features.items() if v.get("dtype") == "video"]
        self.camera = opts.get("camera", videos[0] if videos else None)
        if self.camera not in features:
            raise ValueError(f"{info_path}: camera {self.camera!r} not among {videos}")
        self.embodiment = embodiment_for(self.info.get("robot_type"), opts.get("embodiment"))
        self.state_key = opts.get("state_key", "observation.state")
        self.action_key = opts.get("action_key", "action")
        self.action_names = list((features.get(self.action_key) or {}).get("names") or [])
        self.chunk_key = opts.get("chunk_key", "action.chunk")
        self.ee_key = opts.get("ee_state_key", EE_POSE if EE_POSE in features else None)
        self.scale = np.pi / 180.0 if opts.get("angle_unit", "rad") == "deg" else 1.0
        names = list(features[self.state_key].get("names") or [])
        self.state_names = names
        grip_name = opts.get("gripper") or next((n for n in names if "gripper" in n), None)
        self.grip_index = names.index(grip_name) if grip_name in names else None
        self.grip_range = self._grip_range()
        tasks_path = self.path / "meta" / "tasks.parquet"
        self.tasks: dict[int, str] = {}
        if tasks_path.exists():
            table = pq.read_table(tasks_path).to_pydict()
            text_col = next(k for k in table if k != "task_index")
            self.tasks = dict(zip(table["task_index"], table[text_col], strict=True))
        self._episodes: dict[str, dict] = {}
        vid = f"videos/{self.camera}"
        cols = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                f"{vid}/chunk_index", f"{vid}/file_index", f"{vid}/from_timestamp", f"{vid}/to_timestamp"]
        for f in sorted((self.path / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
            try:
                rows = pq.read_table(f, columns=cols).to_pylist()
            except Exception as exc:  # pyarrow raises its own error types
                self._skip(str(f), f"{f}: unreadable episodes metadata ({exc})")
                continue
            for row in rows:
                self._episodes[str(row["episode_index"])] = row

    def _grip_range(self) -> tuple[float, float]:
        rng = self.config.options.get("gripper_range")
        if rng:
            return float(rng[0]), float(rng[1])
        stats_path = self.path / "meta" / "stats.json"
        if self.grip_index is not None and stats_path.exists():
            st = json.loads(stats_path.read_text()).get(self.state_key, {})
            if "min" in st and "max" in st:
                return float(st["min"][self.grip_index]), float(st["max"][self.grip_index])
        return 0.0, 1.0

    def episodes(self) -> Iterator[str]:
        yield from sorted(self._episodes, key=int)

    def read(self, ref: str) -> Iterator[Sample]:
        import pyarrow.parquet as pq

        meta = self._episodes[ref]
        data_path = self.path / self.info["data_path"].format(
            chunk_index=meta["data/chunk_index"], file_index=meta["data/file_index"])
        use_action = self.embodiment == "g1" and self.action_key in self.info["features"]
        use_chunk = use_action and self.chunk_key in self.info["features"]
        cols = [self.state_key, "timestamp", "frame_index", "task_index"] + ([self.ee_key] if self.ee_key else []) + (
            [self.action_key] if use_action else []) + ([self.chunk_key] if use_chunk else [])
        try:
            table = pq.read_table(data_path, columns=cols, filters=[("episode_index", "=", int(ref))])
        except Exception as exc:
            raise CorruptEpisodeError(data_path, f"unreadable parquet ({type(exc).__name__}: {exc})") from exc
        if table.num_rows < 2:
            raise CorruptEpisodeError(data_path, f"episode {ref} has {table.num_rows} rows")
        cols_np = {c: table.column(c).to_pylist() for c in cols}
        order = np.argsort(cols_np["frame_index"])
        state = np.asarray(cols_np[self.state_key], dtype=np.float64)[order]
        times = np.asarray(cols_np["frame_index"], dtype=np.float64)[order] / self.fps
        task_idx = cols_np["task_index"][int(order[0])]
        instruction = self.tasks.get(task_idx) or (meta["tasks"] or [""])[0]
        video_path = self.path / self.info["video_path"].format(
            video_key=self.camera, chunk_index=meta[f"videos/{self.camera}/chunk_index"],
            file_index=meta[f"videos/{self.camera}/file_index"])
        frames = iter_frames(video_path, meta[f"videos/{self.camera}/from_timestamp"],
                             meta[f"videos/{self.camera}/to_timestamp"])
        chunk = None
        if use_chunk:
            steps = int(self.info["features"][self.chunk_key]["shape"][0])
            flat = np.asarray(cols_np[self.chunk_key], np.float64)[order]  # (N, S * D)
            rows = flat.reshape(len(flat) * steps, -1)
            chunk = self._g1_joints(rows, self.action_names).reshape(len(flat), steps, NUM_JOINTS)
        ep = self._episode_data(ref, times, state, instruction, frames,
                                np.asarray(cols_np[self.ee_key], np.float64)[order] if self.ee_key else None,
                                np.asarray(cols_np[self.action_key], np.float64)[order] if use_action else None,
                                chunk)
        yield from episode_samples(ep, **self.episode_kwargs())

    def _episode_data(self, ref, times, state, instruction, frames, ee_state, action=None,
                      chunk=None) -> EpisodeData:
        common = {"source": self.name, "episode": ref, "embodiment": self.embodiment, "times": times,
                  "instruction": instruction, "frames": frames}
        if self.embodiment == "g1":
            q = self._g1_joints(state)
            target = None if action is None else self._g1_joints(action, self.action_names)
            return EpisodeData(**common, g1_q=q, g1_q_target=target, g1_chunk=chunk, ee_pose=g1_hand_poses(q))
        joints = state * self.scale
        if self.grip_index is not None:
            joints = np.delete(joints, self.grip_index, axis=1)
        if ee_state is not None:
            right = quat_pose(ee_state)
        else:
            fk = single_arm_fk(self.embodiment)
            right = np.stack([fk(row) for row in joints])
        hands = np.tile(np.eye(4), (len(times), 2, 1, 1))
        hands[:, 1] = right
        grip = None
        if self.grip_index is not None:
            lo, hi = self.grip_range
            g = (state[:, self.grip_index] - lo) / (hi - lo if hi != lo else 1.0)
            grip = np.stack([np.zeros_like(g), g], axis=1)
        return EpisodeData(**common, ee_pose=hands, ee_valid=(False, True), grip=grip, grip_valid=(False, True),
                           robot_q=state[:, :NUM_JOINTS] * self.scale)

    def _g1_joints(self, state: np.ndarray, names: list[str] | None = None) -> np.ndarray:
        names = self.state_names if names is None else names
        if names and all(n in names for n in JOINT_NAMES):
            return state[:, [names.index(n) for n in JOINT_NAMES]] * self.scale
        if state.shape[1] < NUM_JOINTS:
            raise ValueError(f"{self.path}: G1 state needs {NUM_JOINTS} joints, has {state.shape[1]}")
        return state[:, :NUM_JOINTS] * self.scale
