"""The G1 joint table agrees with the G1 MJCF from `neon-ros assets`."""

import mujoco
import numpy as np
import pytest

from neon_ros import g1
from neon_ros.sim import assets


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_path(str(assets.g1_mjcf_path()))


def test_names_and_order_match_mjcf(model):
    hinges = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
              for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
    assert hinges == list(g1.JOINT_NAMES)
    assert len(g1.JOINT_NAMES) == g1.NUM_JOINTS == 29


def test_limits_match_mjcf(model):
    for j in g1.JOINTS:
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j.name)
        lo, hi = model.jnt_range[jid]
        assert (j.lower, j.upper) == pytest.approx((lo, hi), abs=1e-6), j.name


def test_groups_follow_design_order():
    assert g1.GROUPS["left_leg"] == tuple(range(0, 6))
    assert g1.GROUPS["right_leg"] == tuple(range(6, 12))
    assert g1.GROUPS["waist"] == (12, 13, 14)
    assert g1.GROUPS["left_arm"] == tuple(range(15, 22))
    assert g1.GROUPS["right_arm"] == tuple(range(22, 29))
    assert g1.JOINT_NAMES[12:15] == ("waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint")
    assert g1.JOINT_NAMES[18] == "left_elbow_joint"


def test_gains_are_unitree_example():
    assert g1.DEFAULT_KP[:6].tolist() == [60, 60, 60, 100, 40, 40]
    assert g1.DEFAULT_KD[:6].tolist() == [1, 1, 1, 2, 1, 1]
    assert g1.DEFAULT_KP[12:15].tolist() == [60, 40, 40]
    assert np.all(g1.DEFAULT_KP[15:] == 40) and np.all(g1.DEFAULT_KD[12:] == 1)


def test_standing_pose_within_limits_and_rates_positive():
    assert np.all(g1.STANDING_POSE >= g1.LOWER_LIMITS) and np.all(g1.STANDING_POSE <= g1.UPPER_LIMITS)
    assert np.all(g1.VELOCITY_LIMITS > 0) and np.all(g1.TORQUE_LIMITS > 0) and np.all(g1.ARMATURE > 0)


def test_hand_sites_exist(model):
    for site in list(g1.HAND_SITES.values()) + [g1.IMU_SITE]:
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site) >= 0


def test_unknown_joint_names_the_valid_ones():
    with pytest.raises(KeyError, match="left_elbow_joint"):
        g1.joint("left_elbo")
