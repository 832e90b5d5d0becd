"""Each source adapter reads a small fixture written in its real on-disk format.

Fixtures are built here (tiny: a few 32x32 frames), so the tests pass on any machine;
the LeRobot fixture written by lerobot itself is read too where it exists. Corrupt or
truncated files give an error naming the file and only that episode is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neon_ros import g1
from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
from neon_ros.data.registry import SourceConfig, open_source
from neon_ros.data.video import write_video

SHARED_LEROBOT = Path("/work/shared/fixtures/lerobot_v3_so100")
SO100_NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def frames(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    return np.repeat(base, n, axis=0) + np.arange(n, dtype=np.uint8)[:, None, None, None]


def read(kind: str, path: Path, **kw):
    src = open_source(SourceConfig("src", kind, path, **kw))
    return src, list(src.samples())


def so100_dataset(root: Path, episodes: int = 2, n: int = 20) -> Path:
    rng = np.random.default_rng(1)
    eps = []
    for e in range(episodes):
        q = np.cumsum(rng.normal(0, 0.02, (n, 6)), axis=0)
        eps.append(EpisodeRecord(frames(n, e), q, q + 0.01, f"task {e}"))
    return write_lerobot_v3(root, eps, fps=10, robot_type="so100", state_names=SO100_NAMES)


def test_lerobot_v3_written_to_the_layout(tmp_path):
    root = so100_dataset(tmp_path / "so100")
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and (root / info["data_path"].format(chunk_index=0, file_index=0)).exists()
    src, samples = read("lerobot", root, stride=0.5, clip_frames=4)
    assert {s.instruction for s in samples} == {"task 0", "task 1"}
    s = samples[0]
    assert s.embodiment == "so100" and s.frames.shape == (4, 32, 32, 3)
    assert s.supervised() == ["ee", "grip"]
    assert s.masks["ee"].tolist() == [0.0, 1.0] and s.masks["joint_delta"].sum() == 0
    assert s.proprio_mask.sum() == 12  # 6 positions + 6 velocities
    np.testing.assert_allclose(s.targets["ee"][0, 1], [0, 0, 0, 1, 0, 0, 0, 1, 0], atol=1e-6)  # step 0 = now
    assert not src.skipped


@pytest.mark.skipif(not SHARED_LEROBOT.exists(), reason="lerobot-written fixture not present on this machine")
def test_lerobot_fixture_written_by_lerobot_itself():
    _, samples = read("lerobot", SHARED_LEROBOT, stride=0.5)
    assert {s.instruction for s in samples} == {"pick up the red cube", "push the block to the left", "wave hello"}
    assert all(s.frames.shape[1:] == (96, 128, 3) for s in samples)
    moving = [s for s in samples if np.abs(s.targets["ee"][-1, 1, :3]).max() > 1e-3]
    assert moving  # the arm moves: FK turns joint motion into hand displacement


def test_g1_lerobot_supervises_joints_and_both_hands(tmp_path):
    n = 20
    q = np.tile(g1.STANDING_POSE, (n, 1))
    q[:, g1.JOINT_INDEX["left_elbow_joint"]] += np.linspace(0, 0.5, n)
    root = write_lerobot_v3(tmp_path / "g1", [EpisodeRecord(frames(n), q, q, "bend the left elbow")], 10,
                            "unitree_g1", list(g1.JOINT_NAMES))
    _, samples = read("lerobot", root, stride=0.5)
    s = samples[0]
    assert s.embodiment == "g1" and s.supervised() == ["joint_delta", "ee"]
    k = g1.JOINT_INDEX["left_elbow_joint"]
    assert s.targets["joint_delta"][5, k] == pytest.approx(0.5 / 19 * 5 * 0.5, rel=1e-3)  # 5 steps of 50 ms
    assert np.abs(s.targets["ee"][-1, 0, :3]).max() > 0.01 and np.abs(s.targets["ee"][-1, 1, :3]).max() < 1e-9


def agibot_episode(root: Path, task: int, episode: int, n: int = 20, corrupt: bool = False) -> None:
    import h5py

    write_video(root / f"observations/{task}/{episode}/videos/head_color.mp4", frames(n), 30, codec="mpeg4")
    h5 = root / f"proprio_stats/{task}/{episode}/proprio_stats.h5"
    h5.parent.mkdir(parents=True, exist_ok=True)
    if corrupt:
        h5.write_bytes(b"not an hdf5 file")
        return
    with h5py.File(h5, "w") as f:
        pos = np.zeros((n, 2, 3))
        pos[:, :, 0] = np.linspace(0, 0.1, n)[:, None]
        quat = np.zeros((n, 2, 4))
        quat[..., 3] = 1.0
        f["timestamp"] = (np.arange(n) * 1e9 / 30).astype(np.int64)
        f["state/end/position"], f["state/end/orientation"] = pos, quat
        f["state/effector/position"] = np.linspace(0, 1, n)[:, None].repeat(2, 1)
        f["state/joint/position"] = np.zeros((n, 14))
        f["action/robot/velocity"] = np.full((n, 2), 0.2)


def test_agibot_world(tmp_path):
    root = tmp_path / "agibot"
    agibot_episode(root, 327, 1)
    agibot_episode(root, 327, 2, corrupt=True)
    (root / "task_info").mkdir()
    (root / "task_info/task_327.json").write_text(json.dumps([
        {"episode_id": 1, "task_name": "clear the table",
         "label_info": {"action_config": [{"start_frame": 0, "end_frame": 9, "action_text": "pick up the cup"},
                                          {"start_frame": 10, "end_frame": 19, "action_text": "place it"}]}},
        {"episode_id": 2, "task_name": "broken"}]))
    src, samples = read("agibot", root, stride=0.1)
    assert samples and all(s.embodiment == "agibot_a2d" for s in samples)
    assert samples[0].instruction == "pick up the cup" and samples[-1].instruction == "place it"
    s = samples[0]
    assert s.supervised() == ["ee", "grip", "loco"]
    assert s.targets["ee"][3, 0, 0] == pytest.approx(0.1 / 19 * 30 * 0.15, rel=1e-3)  # 150 ms ahead at 30 fps
    np.testing.assert_allclose(s.targets["loco"][:, 0], 0.2)
    assert len(src.skipped) == 1 and "proprio_stats/327/2/proprio_stats.h5" in src.skipped[0].error


def test_cosmos_video_with_and_without_pseudo_actions(tmp_path):
    n = 16
    write_video(tmp_path / "a.mp4", frames(n), 8, codec="mpeg4")
    q = np.tile(g1.STANDING_POSE, (n, 1))
    q[:, g1.JOINT_INDEX["right_shoulder_pitch_joint"]] -= np.linspace(0, 0.4, n)
    (tmp_path / "a.json").write_text(json.dumps({"prompt": "raise the right arm",
                                                 "pseudo_actions": {"joint_positions": q.tolist()}}))
    write_video(tmp_path / "b.mp4", frames(n, 1), 8, codec="mpeg4")
    (tmp_path / "b.json").write_text(json.dumps({"caption": "a kitchen"}))
    write_video(tmp_path / "c.mp4", frames(n, 2), 8, codec="mpeg4")
    (tmp_path / "c.mp4").write_bytes((tmp_path / "c.mp4").read_bytes()[:300])  # truncated
    (tmp_path / "c.json").write_text(json.dumps({"prompt": "x"}))
    src, samples = read("cosmos", tmp_path, stride=0.5)
    by = {}
    for s in samples:
        by.setdefault(s.episode, []).append(s)
    assert set(by) == {"a", "b"}
    assert by["a"][0].supervised() == ["joint_delta", "ee"] and by["a"][0].instruction == "raise the right arm"
    assert by["b"][0].supervised() == [] and by["b"][0].embodiment == "generic"
    assert len(src.skipped) == 1 and "c.mp4" in src.skipped[0].error


def test_stereo_pairs_views(tmp_path):
    from PIL import Image

    for view, seed in (("left", 0), ("right", 1)):
        d = tmp_path / "kitchen0" / view
        d.mkdir(parents=True)
        for i, img in enumerate(frames(10, seed)):
            Image.fromarray(img).save(d / f"{i:04d}.png")
    d = tmp_path / "kitchen1"
    (d / "rgb").mkdir(parents=True)
    (d / "depth").mkdir()
    for i, img in enumerate(frames(10)):
        Image.fromarray(img).save(d / "rgb" / f"{i:04d}.png")
        Image.fromarray(np.full((32, 32), 500 + i, np.uint16)).save(d / "depth" / f"{i:04d}.png")
    _, samples = read("stereo", tmp_path, stride=0.2, options={"fps": 10})
    ids = {s.sample_id: s for s in samples}
    assert len(samples) > 4 and all(s.supervised() == [] for s in samples)
    for s in samples:
        assert ids[s.pair_key].pair_key == s.sample_id and ids[s.pair_key].episode == s.episode
    assert {s.episode for s in samples} == {"kitchen0", "kitchen1"}


def test_voice_manifest_streams_pairs_and_skips_bad_lines(tmp_path):
    import soundfile

    (tmp_path / "clips").mkdir()
    t = np.arange(8000) / 8000
    soundfile.write(tmp_path / "clips/0.wav", 0.1 * np.sin(2 * np.pi * 220 * t), 8000)
    (tmp_path / "clips/1.wav").write_bytes(b"RIFF broken")
    lines = [{"audio_filepath": "clips/0.wav", "text": "reach the red cup", "duration": 1.0},
             {"audio_filepath": "clips/1.wav", "text": "wave", "duration": 1.0}]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    src, samples = read("voice", tmp_path)
    assert len(samples) == 2
    spoken, written = samples
    assert spoken.audio is not None and len(spoken.audio) == 16000 and spoken.instruction == ""
    assert written.audio is None and written.instruction == "reach the red cup"
    assert spoken.pair_key == written.sample_id and written.pair_key == spoken.sample_id
    errors = " ".join(r.error for r in src.skipped)
    assert len(src.skipped) == 2 and "clips/1.wav" in errors and "manifest.jsonl" in errors


def xr_episode(root: Path, n: int = 12) -> None:
    from PIL import Image

    (root / "colors").mkdir(parents=True)
    data = []
    for i, img in enumerate(frames(n)):
        name = f"colors/{i:06d}_color_0.jpg"
        Image.fromarray(img).save(root / name)
        left = (g1.STANDING_POSE[list(g1.ARM_INDICES["left"])] + [0, 0, 0, 0.03 * i, 0, 0, 0]).tolist()
        right = g1.STANDING_POSE[list(g1.ARM_INDICES["right"])].tolist()
        data.append({"idx": i, "colors": {"color_0": name},
                     "states": {"left_arm": {"qpos": left}, "right_arm": {"qpos": right},
                                "left_ee": {"qpos": [0.5] * 7}, "right_ee": {"qpos": [0.0] * 7}}})
    (root / "data.json").write_text(json.dumps({"info": {"image": {"fps": 30}}, "text": {"goal": "open the hand"},
                                                "data": data}))


def test_xr_teleoperate_json(tmp_path):
    xr_episode(tmp_path / "episode_0000")
    (tmp_path / "episode_0001").mkdir()
    (tmp_path / "episode_0001/data.json").write_text('{"data": [{"idx": 0, "states": ')  # truncated
    src, samples = read("xr_teleop", tmp_path, stride=0.1)
    s = samples[0]
    assert s.embodiment == "g1" and s.instruction == "open the hand"
    assert s.masks["joint_delta"].sum() == 14 and s.masks["joint_delta"][list(g1.LEG_INDICES)].sum() == 0
    assert s.targets["grip"][0, 0] == pytest.approx(0.5) and s.targets["grip"][0, 1] == 0
    assert len(src.skipped) == 1 and "episode_0001/data.json" in src.skipped[0].error
