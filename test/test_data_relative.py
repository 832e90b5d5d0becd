"""Relative actions: a Franka-like and a G1 episode of the same hand motion give the same labels."""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros import g1
from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
from neon_ros.data.registry import SourceConfig, open_source
from neon_ros.data.robots import FRANKA, g1_hand_poses
from neon_ros.policy import actions

FRANKA_NAMES = [f"panda_joint{i}" for i in range(1, 8)] + ["gripper"]


def quat_xyzw(rot: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rot).as_quat()  # x, y, z, w


def test_franka_dh_matches_the_published_zero_pose():
    pose = FRANKA.fk(np.zeros(7))
    np.testing.assert_allclose(pose[:3, 3], [0.088, 0.0, 0.926], atol=1e-9)  # flange 0.107 below joint 7
    np.testing.assert_allclose(pose[:3, 2], [0, 0, -1], atol=1e-9)  # the flange points down


@pytest.mark.parametrize("ee_frame", ["hand", "base"])
def test_same_hand_motion_same_actions_franka_and_g1(tmp_path, ee_frame):
    """Relative actions (ee_frame hand) of one hand motion are the same whichever robot made it and
    wherever its base stands; absolute ones (base) are not: the premise of `neon-ros xembody`."""
    n = 30
    q = np.tile(g1.STANDING_POSE, (n, 1))
    arm = list(g1.ARM_INDICES["right"])
    s = np.linspace(0, 1, n)
    q[:, arm[0]] += -0.6 * s  # shoulder pitch: the hand swings forward and up
    q[:, arm[3]] += -0.4 * s  # elbow extends
    q[:, arm[4]] += 0.5 * s  # wrist roll turns the hand
    g1_root = write_lerobot_v3(tmp_path / "g1", [EpisodeRecord(np.zeros((n, 16, 16, 3), np.uint8), q, q, "move")],
                               10, "unitree_g1", list(g1.JOINT_NAMES), codec="mpeg4")
    # The same right-hand motion on a Franka standing elsewhere: its base is 0.7 m away, turned
    # 120 degrees, and its tool frame is the G1 palm frame (a fixed mount offset is part of it).
    hand = g1_hand_poses(q)[:, 1]
    base = actions.make_transform(np.array([[-0.5, -0.866, 0], [0.866, -0.5, 0], [0, 0, 1.0]]), [0.7, -0.2, 0.1])
    in_franka = np.linalg.inv(base) @ hand
    ee = np.concatenate([in_franka[:, :3, 3], np.stack([quat_xyzw(p[:3, :3]) for p in in_franka])], axis=1)
    state = np.concatenate([np.zeros((n, 7)), np.full((n, 1), 0.04)], axis=1)
    fr_root = write_lerobot_v3(tmp_path / "franka", [EpisodeRecord(np.zeros((n, 16, 16, 3), np.uint8), state,
                                                                   state, "move", ee_pose=ee)], 10, "franka",
                               FRANKA_NAMES, codec="mpeg4")  # the pose column is read without being named
    g1_samples = list(open_source(SourceConfig("g1", "lerobot", g1_root, stride=0.3, ee_frame=ee_frame)).samples())
    fr_samples = list(open_source(SourceConfig("fr", "lerobot", fr_root, stride=0.3, ee_frame=ee_frame)).samples())
    assert len(g1_samples) == len(fr_samples) > 3
    gaps = []
    for a, b in zip(g1_samples, fr_samples, strict=True):
        assert a.embodiment == "g1" and b.embodiment == "franka"
        assert b.masks["ee"].tolist() == [0.0, 1.0]
        gaps.append(np.abs(a.targets["ee"][:, 1] - b.targets["ee"][:, 1]).max())
    if ee_frame == "hand":
        assert max(gaps) < 2e-5
        assert np.abs(g1_samples[0].targets["ee"][-1, 1, :3]).max() > 0.02  # a real motion, not two zeros
    else:
        assert min(gaps) > 0.3  # each robot's own base: the same motion, labels apart
        np.testing.assert_allclose(g1_samples[0].targets["ee"][0, 1], actions.pose9_from_transform(hand[0]), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relative_labels_ignore_where_the_world_origin_is(seed):
    from neon_ros.data.episode import EpisodeData, chunk_targets

    rng = np.random.default_rng(seed)
    n = 20
    q = np.tile(g1.STANDING_POSE, (n, 1)) + np.linspace(0, 1, n)[:, None] * rng.uniform(-0.3, 0.3, 29)
    poses = g1_hand_poses(q)
    shift = actions.make_transform(actions.matrix_from_rot6d(rng.normal(size=6)), rng.normal(size=3))
    times = np.arange(n) / 10

    def ep(p):
        return EpisodeData("s", "e", "g1", times, "", iter(()), ee_pose=p)

    a = chunk_targets(ep(poses), 0.4)[0]["ee"]
    b = chunk_targets(ep(shift @ poses), 0.4)[0]["ee"]
    np.testing.assert_allclose(a, b, atol=1e-5)
