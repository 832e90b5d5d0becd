"""Another robot's demonstrations for the G1 (`neon-ros xembody`): the short-armed robot, its
dataset, and what its relative and absolute hand labels are."""

import numpy as np
import pytest

from neon_ros import g1
from neon_ros.data import sim_expert
from neon_ros.data.registry import SourceConfig, open_source
from neon_ros.policy import actions
from neon_ros.runtime.kinematics import G1Kinematics


@pytest.fixture(scope="module")
def kins():
    return G1Kinematics(), G1Kinematics(arm_scale=sim_expert.SHORTARM_SCALE)


def test_a_stretched_arm_scales_the_palm_about_its_shoulder(kins):
    g1_kin, short = kins
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = np.clip(g1.STANDING_POSE + rng.uniform(-0.6, 0.6, g1.NUM_JOINTS), g1.LOWER_LIMITS, g1.UPPER_LIMITS)
        for arm in ("left", "right"):
            shoulder = f"{arm}_shoulder_roll_link"
            ours = np.linalg.inv(g1_kin.body_pose(q, shoulder)) @ g1_kin.hand_pose(q, arm)
            theirs = np.linalg.inv(short.body_pose(q, shoulder)) @ short.hand_pose(q, arm)
            np.testing.assert_allclose(theirs[:3, 3], sim_expert.SHORTARM_SCALE * ours[:3, 3], atol=1e-9)
            np.testing.assert_allclose(theirs[:3, :3], ours[:3, :3], atol=1e-9)  # same joints, same turns
    with pytest.raises(ValueError, match="arm scale"):
        G1Kinematics(arm_scale=3.0)


@pytest.mark.timeout(240)
def test_the_short_arm_demonstrates_and_teaches_only_its_right_hand(kins, tmp_path):
    """One point_cup demonstration by the short-armed robot in its own simulator: the expert
    succeeds; its dataset reads as embodiment shortarm with right-hand labels only (no G1 joint
    labels, 7 joints of proprioception); the relative labels are the ones the pelvis-frame FK
    gives (the shoulder frame it records in does not matter), the absolute ones are not."""
    _, short = kins
    rates = sim_expert.generate(tmp_path / "short", ["point_cup"], 1, 3.0, 10, (64, 64), seed=3, progress=False,
                                arm_scale=sim_expert.SHORTARM_SCALE)
    assert rates == {"point_cup": 1.0}
    hand = list(open_source(SourceConfig("s", "lerobot", tmp_path / "short", stride=0.5)).samples())
    base = list(open_source(SourceConfig("s", "lerobot", tmp_path / "short", stride=0.5, ee_frame="base")).samples())
    assert len(hand) == len(base) >= 5
    moved = 0.0
    for h, b in zip(hand, base, strict=True):
        assert h.embodiment == "shortarm" and h.masks["ee"].tolist() == [0.0, 1.0]
        assert not h.masks["joint_delta"].any() and h.proprio_mask[:7].all() and not h.proprio_mask[7:29].any()
        q = g1.STANDING_POSE.copy()
        q[list(g1.ARM_INDICES["right"])] = h.proprio[:7]
        now = short.hand_pose(q, "right")  # pelvis frame
        future = now @ actions.transform_from_pose9(h.targets["ee"][:, 1])  # (16, 4, 4)
        in_shoulder = np.linalg.inv(short.body_pose(q, sim_expert.SHORTARM_BASE)) @ future
        np.testing.assert_allclose(actions.pose9_from_transform(in_shoulder), b.targets["ee"][:, 1], atol=1e-4)
        assert np.abs(actions.pose9_from_transform(future) - b.targets["ee"][:, 1])[:, :3].max() > 0.1
        moved = max(moved, float(np.linalg.norm(h.targets["ee"][-1, 1, :3])))
    assert moved > 0.05  # the arm really reached


def test_xembody_refuses_bad_arms_and_tasks(tmp_path):
    from neon_ros.cli import main

    with pytest.raises(SystemExit, match="--arms"):
        main(["xembody", "--out", str(tmp_path), "--arms", "xz"])
    with pytest.raises(SystemExit, match="stand_still"):
        main(["xembody", "--out", str(tmp_path), "--task", "stand_still"])
