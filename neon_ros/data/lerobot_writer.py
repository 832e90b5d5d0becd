"""Write LeRobot v3.0 datasets (the layout lerobot 0.4 writes and the Hub serves).

Used by the simulated-demonstration generator (:mod:`neon_ros.data.sim_expert`) and by the
tests, which build their own v3 fixtures. One data file, one video file per camera (all
episodes concatenated, AV1), per-episode metadata with each episode's row range and video
time window, tasks.parquet indexed by task string, and stats.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neon_ros.data.video import LOSSLESS, write_video

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


EE_POSE = "observation.ee_pose"  # the hand pose column, when written
EE_POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")


@dataclass
class EpisodeRecord:
    """One episode to write: frames (N, H, W, 3) uint8, state/action (N, D), the task text;
    optionally ``action_chunk`` (N, S, D): the whole chunk a scripted expert would send from
    each frame's state (column ``action.chunk``); optionally ``ee_pose`` (N, 7): the hand pose
    x, y, z, qx, qy, qz, qw in the robot's base frame (column ``observation.ee_pose``, read with
    the LeRobot source's ``ee_state_key``)."""

    frames: np.ndarray
    state: np.ndarray
    action: np.ndarray
    task: str
    action_chunk: np.ndarray | None = None
    ee_pose: np.ndarray | None = None


def _stats(x: np.ndarray) -> dict:
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [int(len(x))]}


def write_lerobot_v3(root: Path, episodes: list[EpisodeRecord], fps: int, robot_type: str,
                     state_names: list[str], camera: str = "observation.images.head",
                     codec: str = "libsvtav1") -> Path:
    """Write ``episodes`` as a LeRobot v3.0 dataset under ``root``; returns ``root``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not episodes:
        raise ValueError("write_lerobot_v3: no episodes")
    root = Path(root)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    dim = len(state_names)
    h, w = episodes[0].frames.shape[1:3]
    tasks = list(dict.fromkeys(e.task for e in episodes))
    cols: dict[str, list] = {k: [] for k in ("observation.state", "action", "action.chunk", EE_POSE, "timestamp",
                                            "frame_index", "episode_index", "index", "task_index")}
    with_chunks = {e.action_chunk is not None for e in episodes}
    if len(with_chunks) != 1:
        raise ValueError("write_lerobot_v3: either every episode has an action_chunk or none has")
    chunk_shape = None if episodes[0].action_chunk is None else episodes[0].action_chunk.shape[1:]
    if len({e.ee_pose is not None for e in episodes}) != 1:
        raise ValueError("write_lerobot_v3: either every episode has an ee_pose or none has")
    with_ee = episodes[0].ee_pose is not None
    ep_rows = []
    start = 0
    all_frames = []
    for e_idx, ep in enumerate(episodes):
        n = len(ep.state)
        if ep.frames.shape[0] != n or ep.action.shape != (n, dim) or ep.state.shape != (n, dim):
            raise ValueError(f"episode {e_idx}: frames/state/action lengths or widths disagree")
        all_frames.append(ep.frames)
        cols["observation.state"] += ep.state.astype(np.float32).tolist()
        cols["action"] += ep.action.astype(np.float32).tolist()
        if chunk_shape is not None:
            if ep.action_chunk.shape != (n, *chunk_shape) or chunk_shape[1] != dim:
                raise ValueError(f"episode {e_idx}: action_chunk is {ep.action_chunk.shape}, want ({n}, S, {dim})")
            cols["action.chunk"] += ep.action_chunk.reshape(n, -1).astype(np.float32).tolist()
        if with_ee:
            if ep.ee_pose.shape != (n, 7):
                raise ValueError(f"episode {e_idx}: ee_pose is {ep.ee_pose.shape}, want ({n}, 7)")
            cols[EE_POSE] += ep.ee_pose.astype(np.float32).tolist()
        cols["timestamp"] += (np.arange(n, dtype=np.float32) / fps).tolist()
        cols["frame_index"] += list(range(n))
        cols["episode_index"] += [e_idx] * n
        cols["index"] += list(range(start, start + n))
        cols["task_index"] += [tasks.index(ep.task)] * n
        vid = f"videos/{camera}"
        ep_rows.append({
            "episode_index": e_idx, "tasks": [ep.task], "length": n,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": start, "dataset_to_index": start + n,
            f"{vid}/chunk_index": 0, f"{vid}/file_index": 0,
            f"{vid}/from_timestamp": start / fps, f"{vid}/to_timestamp": (start + n) / fps,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
        })
        start += n
    vec = pa.list_(pa.float32(), dim)
    chunk_col = {} if chunk_shape is None else {
        "action.chunk": pa.array(cols["action.chunk"], type=pa.list_(pa.float32(), int(np.prod(chunk_shape))))}
    table = pa.table({
        "observation.state": pa.array(cols["observation.state"], type=vec),
        "action": pa.array(cols["action"], type=vec),
        **chunk_col,
        **({EE_POSE: pa.array(cols[EE_POSE], type=pa.list_(pa.float32(), 7))} if with_ee else {}),
        "timestamp": pa.array(cols["timestamp"], type=pa.float32()),
        "frame_index": pa.array(cols["frame_index"], type=pa.int64()),
        "episode_index": pa.array(cols["episode_index"], type=pa.int64()),
        "index": pa.array(cols["index"], type=pa.int64()),
        "task_index": pa.array(cols["task_index"], type=pa.int64()),
    })
    data_file = root / DATA_PATH.format(chunk_index=0, file_index=0)
    data_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, data_file)
    pq.write_table(pa.Table.from_pylist(ep_rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": pa.array(range(len(tasks)), type=pa.int64()),
                             "__index_level_0__": pa.array(tasks, type=pa.large_string())}),
                   root / "meta" / "tasks.parquet")
    write_video(root / VIDEO_PATH.format(video_key=camera, chunk_index=0, file_index=0),
                np.concatenate(all_frames), fps, codec=codec)
    state = np.asarray(cols["observation.state"], np.float64)
    (root / "meta" / "stats.json").write_text(json.dumps({
        "observation.state": _stats(state), "action": _stats(np.asarray(cols["action"], np.float64))}))
    scalar = {"dtype": "float32", "shape": [1], "names": None}
    index = {"dtype": "int64", "shape": [1], "names": None}
    info = {
        "codebase_version": "v3.0", "robot_type": robot_type, "total_episodes": len(episodes),
        "total_frames": start, "total_tasks": len(tasks), "chunks_size": 1000,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
        "features": {
            camera: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                     "info": {"video.height": h, "video.width": w,
                              "video.codec": LOSSLESS.get(codec, "av1"),
                              "video.pix_fmt": "rgb24" if codec in LOSSLESS else "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                              "video.channels": 3, "has_audio": False}},
            "observation.state": {"dtype": "float32", "shape": [dim], "names": list(state_names)},
            "action": {"dtype": "float32", "shape": [dim], "names": list(state_names)},
            **({} if chunk_shape is None else {"action.chunk": {
                "dtype": "float32", "shape": [int(chunk_shape[0]), dim], "names": list(state_names)}}),
            **({EE_POSE: {"dtype": "float32", "shape": [7], "names": list(EE_POSE_NAMES)}} if with_ee else {}),
            "timestamp": scalar, "frame_index": index, "episode_index": index, "index": index,
            "task_index": index,
        },
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return root
