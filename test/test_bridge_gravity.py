"""The bridge's gravity feed-forward: the bias force of MuJoCo's full forward pass, from only the
stages it needs (the bridge computes it every 2 ms cycle)."""

import numpy as np

from neon_ros import g1
from neon_ros.bridge.command import Command
from neon_ros.bridge.gravity import GravityModel, with_gravity


def test_torques_equal_the_full_forward_pass_bias_force():
    import mujoco

    gm = GravityModel()
    ref = mujoco.MjData(gm.model)
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = np.clip(g1.STANDING_POSE + rng.normal(0.0, 0.6, g1.NUM_JOINTS), g1.LOWER_LIMITS, g1.UPPER_LIMITS)
        ref.qpos[gm.qpos] = q
        ref.qvel[:] = 0.0
        mujoco.mj_forward(gm.model, ref)
        want = np.clip(ref.qfrc_bias[gm.dof], -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)
        np.testing.assert_allclose(gm.torques(q), want, rtol=1e-9, atol=1e-9)
    # an arm held out to the side needs shoulder torque; the same pose twice gives the same answer
    q = g1.STANDING_POSE.copy()
    q[g1.JOINT_INDEX["left_shoulder_roll_joint"]] = 1.2
    assert abs(gm.torques(q)[g1.JOINT_INDEX["left_shoulder_roll_joint"]]) > 1.0
    np.testing.assert_array_equal(gm.torques(q), gm.torques(q.copy()))


def test_only_joints_on_and_position_controlled_get_the_feed_forward():
    gm = GravityModel()
    q = g1.STANDING_POSE.copy()
    q[g1.JOINT_INDEX["left_shoulder_roll_joint"]] = 1.2
    n = g1.NUM_JOINTS
    kp = np.full(n, 40.0)
    kp[g1.JOINT_INDEX["left_shoulder_roll_joint"]] = 0.0  # damping: a limp arm is not pushed
    on = np.ones(n, bool)
    on[g1.JOINT_INDEX["right_elbow_joint"]] = False  # off
    cmd = Command(q=q, dq=np.zeros(n), kp=kp, kd=np.ones(n), tau=np.zeros(n), motors_on=on, weight=0.0,
                  publish=True, state="active", source="policy", torque_limited=np.zeros(n, bool))
    tau = with_gravity(cmd, gm, q).tau
    full = gm.torques(q)
    active = on & (kp > 0)
    np.testing.assert_allclose(tau[active], full[active])
    assert tau[g1.JOINT_INDEX["left_shoulder_roll_joint"]] == 0.0 and tau[g1.JOINT_INDEX["right_elbow_joint"]] == 0.0
    assert np.all(np.abs(tau) <= g1.TORQUE_LIMITS)
