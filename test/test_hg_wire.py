"""The fast unitree_hg wire path (neon_ros.hg_wire) against cyclonedds and the SDK: the same bytes,
the same CRC, the same values back, over random messages; and a real DDS round trip."""

import os
import time

import numpy as np
import pytest

from neon_ros import g1, hg_wire, unitree
from neon_ros.sim import firmware


def random_state(rng):
    q, dq, tau = rng.normal(size=(3, g1.NUM_JOINTS))
    imu = {"quaternion": rng.normal(size=4), "gyroscope": rng.normal(size=3),
           "accelerometer": rng.normal(size=3), "rpy": rng.normal(size=3)}
    return q, dq, tau, imu, rng.random(g1.NUM_JOINTS) > 0.3


def random_command(rng):
    q, dq, tau = rng.normal(size=(3, g1.NUM_JOINTS))
    kp, kd = rng.uniform(0, 200, size=(2, g1.NUM_JOINTS))
    return q, dq, kp, kd, tau, rng.random(g1.NUM_JOINTS) > 0.3


def test_layouts_have_the_sdk_sizes():
    assert hg_wire.LOWSTATE_C_DTYPE.itemsize == 2092 and hg_wire.LOWCMD_C_DTYPE.itemsize == 1004
    assert len(hg_wire.CDR_HEADER) + hg_wire.LOWCMD_CDR_DTYPE.itemsize == len(unitree.new_lowcmd().serialize())
    assert len(hg_wire.CDR_HEADER) + hg_wire.LOWSTATE_CDR_DTYPE.itemsize == len(unitree.new_lowstate().serialize())


@pytest.mark.parametrize("seed", range(3))
def test_fast_lowstate_matches_cyclonedds_bytes_and_sdk_crc(seed):
    q, dq, tau, imu, enabled = random_state(np.random.default_rng(seed))
    wire = hg_wire.LowStateWire()
    crc = wire.fill(q, dq, tau, imu, tick=1234 + seed, mode_machine=5, enabled=enabled)
    ref = firmware.fill_lowstate(unitree.new_lowstate(), q, dq, tau, imu, 1234 + seed, 5, enabled)
    assert crc == ref.crc == unitree.crc32(ref)
    assert wire.wire.serialize() == type(ref).serialize(ref)  # byte for byte what cyclonedds would send
    msg = wire.message()
    assert unitree.crc_ok(msg) and msg.motor_state[3].q == pytest.approx(q[3], rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("weight", [None, 0.25])
def test_fast_lowcmd_matches_cyclonedds_bytes_and_sdk_crc(seed, weight):
    q, dq, kp, kd, tau, enabled = random_command(np.random.default_rng(seed))
    wire = hg_wire.LowCmdWire()
    crc = wire.fill(q, dq, kp, kd, tau, mode_machine=5, enabled=enabled, weight=weight)
    ref = unitree.new_lowcmd()
    if weight is not None:
        ref.motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q = weight
    ref = unitree.fill_lowcmd(ref, q, dq, kp, kd, tau, 5, enabled)
    assert crc == ref.crc
    assert wire.wire.serialize() == type(ref).serialize(ref)
    assert unitree.crc_ok(wire.message())


@pytest.mark.parametrize("seed", range(3))
def test_decoders_read_back_what_the_sdk_serialises_and_catch_a_bad_crc(seed):
    rng = np.random.default_rng(seed)
    q, dq, tau, imu, enabled = random_state(rng)
    state = firmware.fill_lowstate(unitree.new_lowstate(), q, dq, tau, imu, 77, 5, enabled)
    ok, back = hg_wire.LowStateDecoder()(type(state).serialize(state))
    assert ok and back["tick"] == 77 and back["mode_machine"] == 5
    for key, ref in (("q", q), ("dq", dq), ("tau_est", tau)):
        assert np.allclose(back[key], ref, atol=1e-5) and back[key].dtype == np.float64

    cq, cdq, kp, kd, ctau, on = random_command(rng)
    cmd = unitree.new_lowcmd()
    cmd.motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q = 0.5
    cmd = unitree.fill_lowcmd(cmd, cq, cdq, kp, kd, ctau, 7, on)
    data = type(cmd).serialize(cmd)
    ok, c = hg_wire.LowCmdDecoder()(data)
    assert ok and c["mode_machine"] == 7 and c["weight"] == 0.5 and (c["mode"] != 0).tolist() == on.tolist()
    for key, ref in (("q", cq), ("dq", cdq), ("kp", kp), ("kd", kd), ("tau", ctau)):
        assert np.allclose(c[key], ref, rtol=1e-6, atol=1e-5)

    flipped = bytearray(data)
    flipped[40] ^= 0x10  # one bit of a motor's q
    assert not hg_wire.LowCmdDecoder()(bytes(flipped))[0]
    cmd.crc ^= 1
    assert not hg_wire.LowCmdDecoder()(type(cmd).serialize(cmd))[0]


def test_other_encodings_take_the_generic_path():
    """XCDR2 bytes (a different header) decode through the SDK's deserializer, with the same result."""
    rng = np.random.default_rng(5)
    q, dq, kp, kd, tau, on = random_command(rng)
    cmd = unitree.fill_lowcmd(unitree.new_lowcmd(), q, dq, kp, kd, tau, 3, on)
    data = type(cmd).serialize(cmd, use_version_2=True)
    assert data[:4] != hg_wire.CDR_HEADER
    ok, c = hg_wire.LowCmdDecoder()(data)
    assert ok and np.allclose(c["q"], q, atol=1e-5) and c["mode_machine"] == 3


def test_newest_reader_takes_the_newest_sample_over_real_dds():
    """Ten LowStates written between two polls: the poll gets the last one, the next poll nothing."""
    domain = 100 + os.getpid() % 100
    unitree.init_channels(domain, "lo")
    _, lowstate_type = unitree.hg_types()
    reader = hg_wire.NewestReader("rt/neon_test_newest", lowstate_type, domain)
    pub = unitree.publisher("rt/neon_test_newest", lowstate_type)
    wire, decode = hg_wire.LowStateWire(), hg_wire.LowStateDecoder()
    zeros = np.zeros(g1.NUM_JOINTS)
    imu = {"quaternion": np.array([1.0, 0, 0, 0]), "gyroscope": np.zeros(3), "accelerometer": np.zeros(3),
           "rpy": np.zeros(3)}
    deadline = time.monotonic() + 10
    data = None
    while data is None and time.monotonic() < deadline:  # until discovery matched reader and writer
        wire.fill(zeros, zeros, zeros, imu, tick=0, mode_machine=5)
        pub.Write(wire.wire)
        time.sleep(0.05)
        data = reader.take()
    assert data is not None, "no sample within 10 s"
    for tick in range(1, 11):
        wire.fill(zeros + tick, zeros, zeros, imu, tick=tick, mode_machine=5)
        pub.Write(wire.wire)
    time.sleep(0.2)
    ok, state = decode(reader.take())
    assert ok and state["tick"] == 10 and state["q"][0] == 10.0
    assert reader.take() is None


def test_a_closed_reader_calls_back_no_more():
    """``on_data`` runs on DDS's listener thread per sample until ``close`` (the bridge watchdog
    detaches it when it stops, so no DDS thread calls into Python while the process exits)."""
    domain = 100 + os.getpid() % 100
    unitree.init_channels(domain, "lo")
    _, lowstate_type = unitree.hg_types()
    calls = []
    reader = hg_wire.NewestReader("rt/neon_test_closed", lowstate_type, domain, on_data=lambda: calls.append(1))
    pub = unitree.publisher("rt/neon_test_closed", lowstate_type)
    sample = unitree.new_lowstate()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:  # until discovery matched reader and writer
        pub.Write(sample)
        time.sleep(0.05)
    assert calls, "no callback within 10 s"
    reader.close()
    heard = len(calls)
    for _ in range(20):
        pub.Write(sample)
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(calls) == heard and reader.take() is not None  # not called back, the samples still arrive
