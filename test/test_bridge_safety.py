"""Unit tests of the bridge's input validation, limiter and chunk schedule (no processes)."""

import numpy as np
import pytest

from neon_ros import contract, g1
from neon_ros.bridge.safety import (
    NS,
    REASONS,
    InputRejectedError,
    SafetyConfig,
    TargetLimiter,
    validate_trajectory,
)
from neon_ros.bridge.schedule import ChunkSchedule, sample

NOW = 1_700_000_000 * NS
CFG = SafetyConfig()
TIMES = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT


def chunk(q=None, names=g1.JOINT_NAMES, stamp=NOW, times=TIMES):
    pos = np.tile(g1.STANDING_POSE if q is None else q, (len(times), 1))
    return validate_trajectory("chunk", names, pos, times, stamp, NOW, CFG)


def rejected(kind, names, pos, times, stamp=NOW) -> str:
    with pytest.raises(InputRejectedError) as e:
        validate_trajectory(kind, names, pos, times, stamp, NOW, CFG)
    assert e.value.reason in REASONS
    return e.value.reason


def test_names_in_any_order_map_to_g1_order():
    perm = np.random.default_rng(0).permutation(g1.NUM_JOINTS)
    names = [g1.JOINT_NAMES[i] for i in perm]
    pos = np.tile(np.arange(g1.NUM_JOINTS, dtype=float)[perm] * 0.01, (16, 1))
    traj = validate_trajectory("chunk", names, pos, TIMES, NOW, NOW, CFG)
    np.testing.assert_allclose(traj.positions[0], np.arange(g1.NUM_JOINTS) * 0.01)
    assert traj.mask.all()


def test_each_bad_input_has_its_reason():
    pos = np.tile(g1.STANDING_POSE, (16, 1))
    names = list(g1.JOINT_NAMES)
    assert rejected("chunk", names[:-1] + ["left_tail_joint"], pos, TIMES) == "unknown_joint"
    assert rejected("chunk", names[:-1] + [names[0]], pos, TIMES) == "duplicate_joint"
    assert rejected("chunk", names[:-1], pos[:, :-1], TIMES) == "missing_joint"
    assert rejected("chunk", names, pos[:15], TIMES[:15]) == "point_count"
    assert rejected("teleop", names, pos[:0], TIMES[:0]) == "point_count"
    bad = pos.copy()
    bad[3, 7] = np.nan
    assert rejected("chunk", names, bad, TIMES) == "non_finite"
    bad[3, 7] = np.inf
    assert rejected("teleop", names, bad, TIMES) == "non_finite"
    assert rejected("chunk", names, pos, TIMES[::-1].copy()) == "bad_time"
    assert rejected("chunk", names, pos, TIMES, stamp=NOW + NS) == "future_stamp"
    assert rejected("chunk", names, pos, TIMES, stamp=NOW - 5 * NS) == "stale"
    assert rejected("chunk", names, pos[:, :3], TIMES) == "malformed"
    assert rejected("chunk", [], pos[:, :0], TIMES) == "malformed"


def test_teleop_subset_and_zero_stamp_means_now():
    traj = validate_trajectory("teleop", ["left_elbow_joint"], np.array([[0.5]]), np.array([0.0]), 0, NOW, CFG)
    assert traj.stamp_ns == NOW and traj.mask.sum() == 1 and traj.mask[g1.JOINT_INDEX["left_elbow_joint"]]
    assert np.isnan(traj.positions[0, 0])
    # a chunk with stamp 0 is not "now": it is stale (a chunk carries its clip stamp)
    assert rejected("chunk", g1.JOINT_NAMES, np.tile(g1.STANDING_POSE, (16, 1)), TIMES, stamp=0) == "stale"


def test_config_rejects_unsafe_values():
    with pytest.raises(ValueError, match="max_velocity"):
        SafetyConfig(max_velocity=float(g1.VELOCITY_LIMITS.min()))
    with pytest.raises(ValueError, match="limit_margin"):
        SafetyConfig(limit_margin=-0.1)
    assert np.all(CFG.velocity_limits < g1.VELOCITY_LIMITS)


def test_limiter_clamps_and_rate_limits():
    lim = TargetLimiter(CFG)
    start = lim.reset(g1.UPPER_LIMITS + 1.0)  # a pose past the limits starts clamped inside
    assert np.all(start <= CFG.upper)
    target = np.full(g1.NUM_JOINTS, -100.0)
    target[0] = np.nan
    prev = start
    for _ in range(2000):
        q = lim.step(target, contract.LOWCMD_DT)
        assert np.all(np.abs(q - prev) <= CFG.velocity_limits * contract.LOWCMD_DT + 1e-12)
        assert np.all((q >= CFG.lower) & (q <= CFG.upper)) and np.all(np.isfinite(q))
        prev = q
    assert q[0] == start[0]  # NaN target entries hold
    np.testing.assert_allclose(q[1:], CFG.lower[1:])


def test_schedule_interpolates_on_chunk_time_base_and_skips_the_past():
    q = np.tile(g1.STANDING_POSE, (16, 1))
    q[:, 18] = np.linspace(0.0, 1.5, 16)
    traj = validate_trajectory("chunk", g1.JOINT_NAMES, q, TIMES, NOW, NOW, CFG)
    assert sample(traj, NOW - NS)[18] == 0.0
    assert sample(traj, NOW + int(0.075 * NS))[18] == pytest.approx(0.15)  # between points 1 and 2
    assert sample(traj, NOW + 5 * NS)[18] == pytest.approx(1.5)  # past the end: hold the last point
    # a chunk stamped 0.2 s ago starts 0.2 s into its time base (latency compensated)
    late = validate_trajectory("chunk", g1.JOINT_NAMES, q, TIMES, NOW - int(0.2 * NS), NOW, CFG)
    assert sample(late, NOW)[18] == pytest.approx(0.4)


def test_schedule_switches_chunks_without_a_jump():
    sched = ChunkSchedule(blend_time=0.1)
    a = chunk(np.full(g1.NUM_JOINTS, 0.0).clip(CFG.lower, CFG.upper))
    b = chunk(np.full(g1.NUM_JOINTS, 0.4).clip(CFG.lower, CFG.upper))
    sched.push(a, NOW)
    before = sched.target(NOW + int(0.01 * NS))
    sched.push(b, NOW + int(0.01 * NS))
    prev = before
    for k in range(1, 60):
        t = sched.target(NOW + int(0.01 * NS) + k * int(contract.LOWCMD_DT * NS))
        assert np.max(np.abs(t - prev)) < 0.02  # 0.4 rad spread over 0.1 s = 8 mrad per 2 ms
        prev = t
    np.testing.assert_allclose(prev, b.positions[0])


def test_stamps_are_checked_on_ros_time_and_kept_on_the_bridge_clock():
    mono = 42 * NS  # the bridge's monotonic clock at arrival; NOW is ROS (wall) time
    pos = np.tile(g1.STANDING_POSE, (16, 1))
    traj = validate_trajectory("chunk", g1.JOINT_NAMES, pos, TIMES, NOW - NS // 10, NOW, CFG, mono)
    assert traj.received_ns == mono and traj.stamp_ns == mono - NS // 10
    with pytest.raises(InputRejectedError):  # the stamp check itself stays on ROS time
        validate_trajectory("chunk", g1.JOINT_NAMES, pos, TIMES, NOW - 5 * NS, NOW, CFG, mono)
