"""Message <-> numpy conversions of neon_ros.ros.msgs, on message objects only (no rclpy.init)."""

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from neon_ros import contract, g1
from neon_ros.errors import NeonError
from neon_ros.ros import msgs

STAMP = 1_700_000_123_456_789_012


def test_stamps_round_trip():
    for ns in (0, 1, msgs.NS - 1, msgs.NS, STAMP):
        assert msgs.stamp_to_ns(msgs.ns_to_stamp(ns)) == ns
    assert issubclass(msgs.MessageError, NeonError) and issubclass(msgs.MessageError, ValueError)


def test_features_are_a_32fc1_row_and_round_trip_exactly():
    vec = np.random.default_rng(0).normal(size=contract.HEAD_INPUT_DIM).astype(np.float32)
    vec[:3] = [np.finfo(np.float32).max, np.finfo(np.float32).tiny, -0.0]
    msg = msgs.features_to_image(vec, STAMP, "cpu_default")
    assert (msg.height, msg.width, msg.step) == (1, vec.size, 4 * vec.size)
    assert (msg.encoding, msg.is_bigendian, msg.header.frame_id) == ("32FC1", 0, "cpu_default")
    assert msgs.stamp_to_ns(msg.header.stamp) == STAMP
    back = msgs.image_to_features(msg)
    assert back.dtype == np.float32 and back.tobytes() == vec.tobytes()


def test_big_endian_features_are_read_as_such():
    vec = np.arange(5, dtype=np.float32) - 2.5
    msg = Image(height=1, width=5, encoding="32FC1", is_bigendian=1, step=20, data=vec.astype(">f4").tobytes())
    np.testing.assert_array_equal(msgs.image_to_features(msg), vec)


@pytest.mark.parametrize(("change", "words"), [
    ({"encoding": "rgb8"}, "32FC1"),
    ({"height": 2}, "height 1"),
    ({"width": 9}, "bytes for width 9"),
    ({"width": 0, "data": b""}, "width 0"),
])
def test_bad_features_raise_message_error(change, words):
    msg = msgs.features_to_image(np.ones(8, np.float32), 0, "x")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(msgs.MessageError, match=words):
        msgs.image_to_features(msg)


def test_clip_stacks_frames_vertically_oldest_first_and_round_trips():
    t, h, w = 4, 6, 5
    frames = np.random.default_rng(1).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    msg = msgs.clip_to_image(frames, STAMP, "head_camera")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (t * h, w, 3 * w, "rgb8")
    assert msgs.stamp_to_ns(msg.header.stamp) == STAMP and msg.header.frame_id == "head_camera"
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(t * h, w, 3)
    for k in range(t):  # frame k occupies rows k*h .. (k+1)*h
        np.testing.assert_array_equal(rows[k * h:(k + 1) * h], frames[k])
    back = msgs.image_to_clip(msg, t)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, frames)


@pytest.mark.parametrize("shape", [(6, 5, 3), (2, 6, 5, 4), (0, 6, 5, 3)])
def test_clip_of_wrong_shape_is_refused(shape):
    with pytest.raises(msgs.MessageError, match="clip must be"):
        msgs.clip_to_image(np.zeros(shape, np.uint8), 0)


@pytest.mark.parametrize(("change", "frames", "words"), [
    ({"encoding": "bgr8"}, 4, "rgb8"),
    ({}, 5, "not a multiple of 5"),
    ({}, 0, "not a multiple of 0"),
    ({"step": 16}, 4, "data size"),
    ({"data": bytes(10)}, 4, "data size"),
])
def test_bad_clip_raises_message_error(change, frames, words):
    msg = msgs.clip_to_image(np.zeros((4, 6, 5, 3), np.uint8), 0)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(msgs.MessageError, match=words):
        msgs.image_to_clip(msg, frames)


def test_chunk_is_16_points_of_29_joints_50_ms_apart_and_round_trips():
    chunk = g1.STANDING_POSE + np.random.default_rng(2).normal(scale=0.1, size=(contract.CHUNK_STEPS, g1.NUM_JOINTS))
    msg = msgs.chunk_to_trajectory(chunk, STAMP)
    assert msg.joint_names == list(g1.JOINT_NAMES) and len(msg.joint_names) == 29
    assert len(msg.points) == 16 and msgs.stamp_to_ns(msg.header.stamp) == STAMP
    for k, pt in enumerate(msg.points):
        assert (pt.time_from_start.sec, pt.time_from_start.nanosec) == divmod(k * 50_000_000, msgs.NS)
    names, pos, times = msgs.trajectory_to_arrays(msg)
    assert names == list(g1.JOINT_NAMES)
    assert pos.dtype == np.float64 and np.array_equal(pos, chunk)
    np.testing.assert_allclose(times, np.arange(16) * 0.05, rtol=0, atol=1e-12)


def test_bad_trajectories_raise_message_error():
    with pytest.raises(msgs.MessageError, match="29 joint names"):
        msgs.chunk_to_trajectory(np.zeros((16, 28)), 0)
    with pytest.raises(msgs.MessageError, match="29 joint names"):
        msgs.chunk_to_trajectory(np.zeros(29), 0)
    msg = JointTrajectory(joint_names=["a", "b"], points=[JointTrajectoryPoint(positions=[0.0, 1.0]),
                                                          JointTrajectoryPoint(positions=[0.0])])
    with pytest.raises(msgs.MessageError, match="point 1 has 1 positions for 2 joint names"):
        msgs.trajectory_to_arrays(msg)


def test_joint_states_are_read_in_g1_order():
    q = np.linspace(-1, 1, g1.NUM_JOINTS)
    dq = np.linspace(2, 3, g1.NUM_JOINTS)
    msg = msgs.joint_state(STAMP, q, dq, tau=np.zeros(g1.NUM_JOINTS))
    assert msg.name == list(g1.JOINT_NAMES) and np.array_equal(msg.position, q)
    assert msgs.stamp_to_ns(msg.header.stamp) == STAMP
    got_q, got_dq = msgs.joint_state_to_g1(msg)
    assert np.array_equal(got_q, q) and np.array_equal(got_dq, dq)
    order = np.random.default_rng(3).permutation(g1.NUM_JOINTS)
    shuffled = JointState(name=[g1.JOINT_NAMES[i] for i in order], position=q[order].tolist(),
                          velocity=dq[order].tolist())
    got_q, got_dq = msgs.joint_state_to_g1(shuffled)
    assert np.array_equal(got_q, q) and np.array_equal(got_dq, dq)
    no_velocity = JointState(name=list(g1.JOINT_NAMES), position=q.tolist())
    assert np.array_equal(msgs.joint_state_to_g1(no_velocity)[1], np.zeros(g1.NUM_JOINTS))


def test_joint_states_missing_a_g1_joint_raise_message_error():
    msg = msgs.joint_state(0, np.zeros(28), names=g1.JOINT_NAMES[1:])
    with pytest.raises(msgs.MessageError, match=f"lacks 1 G1 joints, e.g. {g1.JOINT_NAMES[0]}"):
        msgs.joint_state_to_g1(msg)
