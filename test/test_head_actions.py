"""Relative-action math, normalisation statistics, embodiments and G1 FK/IK (property tests)."""

import mujoco
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neon_ros import g1
from neon_ros.policy import actions as A
from neon_ros.policy import embodiment as E
from neon_ros.runtime.head import safe_chunk
from neon_ros.runtime.kinematics import G1Kinematics

finite = st.floats(-1.0, 1.0, allow_nan=False, width=64)
vec3 = arrays(np.float64, 3, elements=st.floats(-2.0, 2.0, allow_nan=False))
SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def rotations(draw):
    """Uniform-ish rotations from a random non-degenerate quaternion."""
    q = draw(arrays(np.float64, 4, elements=finite).filter(lambda v: np.linalg.norm(v) > 0.1))
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, q / np.linalg.norm(q))
    return mat.reshape(3, 3)


@st.composite
def transforms(draw):
    return A.make_transform(draw(rotations()), draw(vec3))


@st.composite
def trajectories(draw, steps=4):
    """T_now (4, 4) and T_future (steps, 4, 4)."""
    return draw(transforms()), np.stack([draw(transforms()) for _ in range(steps)])


@SETTINGS
@given(rotations())
def test_rot6d_round_trip(rot):
    d6 = A.rot6d_from_matrix(rot)
    assert d6.shape == (6,)
    np.testing.assert_allclose(A.matrix_from_rot6d(d6), rot, atol=1e-9)
    np.testing.assert_allclose(d6, rot[:, :2].T.ravel(), atol=0)  # the first two columns (Zhou et al.)


@SETTINGS
@given(arrays(np.float64, 6, elements=st.floats(-5, 5, allow_nan=False)).filter(
    lambda v: np.linalg.norm(np.cross(v[:3], v[3:])) > 1e-2))
def test_any_6d_maps_to_a_rotation(d6):
    rot = A.matrix_from_rot6d(d6)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(A.matrix_from_rot6d(A.rot6d_from_matrix(rot)), rot, atol=1e-9)


@SETTINGS
@given(trajectories(), transforms())
def test_relative_actions_ignore_the_workspace_origin(traj, world):
    t_now, t_future = traj
    rel = A.relative_pose9(t_now, t_future)
    moved = A.relative_pose9(world @ t_now, world @ t_future)
    np.testing.assert_allclose(moved, rel, atol=1e-9)


@SETTINGS
@given(trajectories())
def test_absolute_relative_absolute_round_trip(traj):
    t_now, t_future = traj
    rel = A.relative_transform(t_now[None], t_future)
    np.testing.assert_allclose(A.apply_relative(t_now[None], rel), t_future, atol=1e-9)
    p9 = A.relative_pose9(t_now, t_future)
    assert p9.shape == (4, 9)
    np.testing.assert_allclose(A.apply_relative(t_now[None], A.transform_from_pose9(p9)), t_future, atol=1e-9)


@SETTINGS
@given(arrays(np.float64, 29, elements=st.floats(-3, 3, allow_nan=False)),
       arrays(np.float64, (16, 29), elements=st.floats(-3, 3, allow_nan=False)))
def test_joint_deltas_round_trip_and_clip(q, q_future):
    d = A.joint_deltas(q, q_future)
    targets = A.joint_targets(q, d)
    np.testing.assert_allclose(targets, q_future, atol=1e-12)
    clipped, clamped = safe_chunk(q, d)  # the runtime's one clamp
    assert (clipped >= g1.LOWER_LIMITS).all() and (clipped <= g1.UPPER_LIMITS).all()
    assert clamped == np.count_nonzero((targets < g1.LOWER_LIMITS) | (targets > g1.UPPER_LIMITS))


@SETTINGS
@given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.integers(0, 10**6))
def test_streaming_statistics_equal_batch_statistics(chunks, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(sum(chunks), 4, 3))
    mask = rng.uniform(size=(x.shape[0], 4, 1)) > 0.3
    stats = A.NormStats()
    start = 0
    for n in chunks:
        stats.update("ee", x[start:start + n], "franka", mask[start:start + n])
        start += n
    stats = A.NormStats.from_dict(stats.to_dict())  # survives the checkpoint JSON
    mean, std = stats.mean_std("ee", "franka")
    m = np.broadcast_to(mask, x.shape)
    for idx in np.ndindex(4, 3):
        sel = x[(slice(None), *idx)][m[(slice(None), *idx)]]
        if sel.size:
            assert mean[idx] == pytest.approx(sel.mean(), abs=1e-9)
            assert std[idx] == pytest.approx(max(sel.std(), stats.std_floor), abs=1e-9)
        else:
            assert (mean[idx], std[idx]) == (0.0, 1.0)
    # an embodiment with no data of its own falls back to the pooled statistics
    np.testing.assert_allclose(stats.mean_std("ee", "g1")[0], mean)
    z = stats.normalize("ee", x, "franka")
    np.testing.assert_allclose(stats.denormalize("ee", z, "franka"), x, atol=1e-9)
    zt = stats.normalize("ee", torch.tensor(x), "franka")
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-9)


def test_statistics_ignore_non_finite_samples_and_name_missing_keys():
    stats = A.NormStats()
    x = np.array([[1.0], [3.0], [np.nan]])
    stats.update("grip", x, "so100")
    assert stats.mean_std("grip", "so100")[0][0] == pytest.approx(2.0)
    with pytest.raises(KeyError, match="loco"):
        stats.mean_std("loco", "g1")
    # per element: what franka never observed (the left arm) comes from the pooled statistics
    stats.update("arm", np.array([[0.0, 10.0], [0.0, 12.0]]), "franka", mask=np.array([[0.0, 1.0]]))
    stats.update("arm", np.array([[4.0, 0.0], [6.0, 2.0]]), "aloha")
    mean, _ = stats.mean_std("arm", "franka")
    assert mean.tolist() == pytest.approx([5.0, 11.0])
    assert stats.mean_std("arm", "g1")[0].tolist() == pytest.approx([5.0, 6.0])  # pooled: (10+12+0+2)/4


def test_embodiment_registry():
    assert E.get("g1").id == 0 and E.get(0).name == "g1"
    assert {"so100", "franka", "agibot_a2d", "generic"} <= set(E.names())
    assert E.get("agibot_a2d").arms == (True, True)
    vec, mask = E.get("so100").pack_proprio(np.arange(6.0), np.ones(6))
    assert vec.shape == mask.shape == (E.PROPRIO_DIM,)
    assert mask.sum() == 12 and vec[:6].tolist() == list(range(6)) and vec[29:35].tolist() == [1.0] * 6
    masks = E.get("generic").component_masks()
    assert all(m.sum() == 0 for m in masks.values())
    with pytest.raises(KeyError, match="so100"):
        E.get("unknown_robot")
    with pytest.raises(ValueError, match="already"):
        E.register(E.Embodiment("g1", 99, 0, frozenset(), (False, False)))
    with pytest.raises(ValueError, match="components"):
        E.Embodiment("bad", 50, 0, frozenset({"teleport"}), (True, True))


@pytest.fixture(scope="module")
def kin():
    return G1Kinematics()


def _arm_q(data, arm, margin=0.15):
    idx = list(g1.ARM_INDICES[arm])
    lo, hi = g1.LOWER_LIMITS[idx], g1.UPPER_LIMITS[idx]
    u = data.draw(arrays(np.float64, 7, elements=st.floats(0.0, 1.0)))
    return idx, lo + (margin + (1 - 2 * margin) * u) * (hi - lo)


@settings(max_examples=30, deadline=None)
@given(st.data(), st.sampled_from(("left", "right")))
def test_fk_ik_round_trip_for_reachable_hand_poses(kin, data, arm):
    q_true = g1.STANDING_POSE.copy()
    idx, q_true[idx] = _arm_q(data, arm)
    target = kin.hand_pose(q_true, arm)
    q_start = q_true.copy()
    q_start[idx] += data.draw(arrays(np.float64, 7, elements=st.floats(-0.2, 0.2)))
    res = kin.solve_ik(q_start, arm, target)
    assert res.converged, (res.position_error, res.rotation_error)
    pos, rot = kin.pose_error(kin.hand_pose(res.q, arm), target)
    assert np.linalg.norm(pos) < 1e-3 and np.linalg.norm(rot) < 1e-2
    assert (res.q >= g1.LOWER_LIMITS).all() and (res.q <= g1.UPPER_LIMITS).all()
    others = [i for i in range(g1.NUM_JOINTS) if i not in idx]
    np.testing.assert_array_equal(res.q[others], q_start[others])


@settings(max_examples=15, deadline=None)
@given(st.data(), transforms())
def test_relative_actions_ignore_where_the_robot_base_stands(kin, data, base):
    """Palm poses of the real model with the free base anywhere give the same relative actions."""
    q0, q1 = g1.STANDING_POSE.copy(), g1.STANDING_POSE.copy()
    idx, q0[idx] = _arm_q(data, "left")
    _, q1[idx] = _arm_q(data, "left")
    fixed_now = kin.hand_pose(q0, "left")
    fixed = A.relative_pose9(fixed_now, kin.hand_pose(q1, "left")[None])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, base[:3, :3].ravel())
    kin.base_qpos = np.concatenate([base[:3, 3], quat])
    try:
        placed_now = kin.hand_pose(q0, "left")  # world pose from MuJoCo with the base moved
        placed = A.relative_pose9(placed_now, kin.hand_pose(q1, "left")[None])
    finally:
        kin.base_qpos = np.array([0, 0, 0, 1.0, 0, 0, 0])
    np.testing.assert_allclose(placed_now, base @ fixed_now, atol=1e-9)  # the base really moved the hands
    np.testing.assert_allclose(placed, fixed, atol=1e-9)


def test_displacement_targets_reach_the_predicted_hand_poses(kin):
    rng = np.random.default_rng(3)
    q = g1.STANDING_POSE.copy()
    future = np.repeat(q[None], 4, axis=0)
    for arm in ("left", "right"):
        idx = list(g1.ARM_INDICES[arm])
        future[:, idx] += np.cumsum(rng.uniform(-0.05, 0.05, size=(4, 7)), axis=0)
    t_now = kin.hand_poses(q)
    ee = np.stack([A.relative_pose9(t_now, kin.hand_poses(qf)[:, None])[:, 0] for qf in future])  # (4, 2, 9)
    targets = kin.displacement_targets(q, ee)
    assert targets.shape == (4, 29)
    for k in range(4):
        np.testing.assert_allclose(kin.hand_poses(targets[k]), kin.hand_poses(future[k]), atol=2e-3)
    np.testing.assert_array_equal(targets[:, list(g1.LEG_INDICES)], np.repeat(q[None, list(g1.LEG_INDICES)], 4, 0))
    with pytest.raises(ValueError):
        kin.hand_pose(np.full(29, np.nan), "left")
