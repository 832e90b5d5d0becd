"""Unit tests of the bridge controller's state machine and LowCmd building (no processes)."""

import numpy as np
import pytest

from neon_ros import contract, g1, unitree
from neon_ros.bridge.command import Measured
from neon_ros.bridge.controller import OFF_BURST, Controller, ControllerConfig
from neon_ros.bridge.lowcmd import LowCmdBuilder, UnsafeCommandError, check_command
from neon_ros.bridge.safety import NS, validate_trajectory

DT_NS = int(contract.LOWCMD_DT * NS)
T0 = 1_700_000_000 * NS
TIMES = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT
ELBOW = g1.JOINT_INDEX["left_elbow_joint"]


class Rig:
    """A controller driven on a simulated clock with a 'robot' that follows commands exactly."""

    def __init__(self, **kw):
        self.c = Controller(ControllerConfig(**kw))
        self.now = T0
        self.q = g1.STANDING_POSE.copy()
        self.tau = None  # tau_est the 'robot' reports
        self.cmds = []

    def meas(self, fresh=True):
        return Measured(self.q.copy(), np.zeros(g1.NUM_JOINTS), self.now if fresh else self.now - NS, tau=self.tau)

    def run(self, seconds, fresh=True, every=None):
        for k in range(int(round(seconds / contract.LOWCMD_DT))):
            if every is not None:
                every(k)
            cmd = self.c.step(self.now, self.meas(fresh))
            if cmd.motors_on.any() and cmd.kp.any():
                self.q = np.where(cmd.motors_on, cmd.q, self.q)
            self.cmds.append(cmd)
            self.now += DT_NS
        return self.cmds[-1]

    def chunk(self, q_row, stamp=None):
        pos = np.tile(q_row, (16, 1))
        self.c.push(validate_trajectory("chunk", g1.JOINT_NAMES, pos, TIMES, stamp or self.now, self.now,
                                        self.c.cfg.safety), self.now)

    def teleop(self, names, values, at=0.0):
        traj = validate_trajectory("teleop", names, np.array([values]), np.array([at]), 0, self.now,
                                   self.c.cfg.safety)
        self.c.push(traj, self.now)


def elbow_pose(v):
    q = g1.STANDING_POSE.copy()
    q[ELBOW] = v
    return q


def test_disabled_sends_no_torque_and_enable_needs_fresh_lowstate():
    rig = Rig()
    cmd = rig.run(0.1)
    assert cmd.state == "disabled" and not cmd.motors_on.any() and not cmd.kp.any() and not cmd.kd.any()
    assert not any(c.publish for c in rig.cmds)  # never powered: nothing written (a motion mode may own the motors)
    ok, _ = rig.c.enable(True, rig.meas(fresh=False), rig.now)
    assert not ok and rig.c.state == "disabled"
    ok, _ = rig.c.enable(True, None, rig.now)
    assert not ok
    rig.chunk(elbow_pose(1.8))  # a chunk while disabled moves nothing
    assert not rig.run(0.1).kp.any()


def test_enable_ramps_from_measured_pose_then_follows_policy():
    rig = Rig()
    rig.q[ELBOW] = 0.9
    assert rig.c.enable(True, rig.meas(), rig.now)[0]
    first = rig.run(0.002)
    assert first.q[ELBOW] == pytest.approx(0.9) and first.kp[ELBOW] < 0.01 * g1.DEFAULT_KP[ELBOW]
    hold = rig.run(1.0)
    assert hold.source == "hold" and hold.kp[ELBOW] == pytest.approx(g1.DEFAULT_KP[ELBOW])
    rig.run(0.5, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.6)))
    cmd = rig.cmds[-1]
    assert cmd.source == "policy" and cmd.q[ELBOW] == pytest.approx(1.6)  # 0.7 rad at 1.5 rad/s < 0.5 s
    steps = np.diff([c.q[ELBOW] for c in rig.cmds])
    assert np.max(np.abs(steps)) <= 1.5 * contract.LOWCMD_DT + 1e-9


def test_watchdog_holds_then_damps_latched_until_enable():
    rig = Rig(command_timeout=0.2, damp_timeout=0.6)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.1, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    assert rig.cmds[-1].source == "policy"
    moving = rig.cmds[-1].q[ELBOW]
    cmd = rig.run(0.3)
    assert cmd.source == "hold" and cmd.kp.any() and abs(cmd.q[ELBOW] - moving) < 0.2 * 1.5 + 1e-6
    held = cmd.q.copy()
    cmd = rig.run(0.15)
    np.testing.assert_array_equal(cmd.q, held)  # hold = the last safe target, frozen
    cmd = rig.run(0.2)
    assert cmd.state == "damping" and rig.c.damp_reason == "command_timeout"
    assert not cmd.kp.any() and np.all(cmd.kd == 2.0)
    rig.chunk(elbow_pose(1.5))  # a fresh chunk does not un-latch damping
    assert rig.run(0.1).state == "damping"
    assert rig.c.enable(True, rig.meas(), rig.now)[0] and rig.run(0.01).state == "active"


def test_estop_damps_on_next_cycle_and_latches():
    rig = Rig()
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.05, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    rig.c.damp("estop", rig.now)
    cmd = rig.run(0.002)
    assert cmd.state == "damping" and not cmd.kp.any() and rig.c.estop_latency_cycles == 1
    rig.run(0.5, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    assert rig.cmds[-1].state == "damping"


def test_stale_lowstate_never_commands_motion():
    rig = Rig()
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.05)
    cmd = rig.run(0.01, fresh=False)
    assert cmd.state == "damping" and rig.c.damp_reason == "lowstate_stale" and not cmd.kp.any()


def policy_and_teleop(rig):
    """Per-cycle inputs: a chunk bending the elbow to 1.0 every 50 ms, and (if ``teleop``) the
    operator holding it at 0.2 every 20 ms."""

    def inputs(k, teleop):
        if k % 25 == 0:
            rig.chunk(elbow_pose(1.0))
        if teleop and k % 10 == 0:
            rig.teleop(["left_elbow_joint"], [0.2])

    return inputs


def test_teleop_overrides_then_hands_back_through_a_ramp():
    # teleop_loss=handback: the fade starts when teleop goes quiet (the default, hold, waits for a release)
    rig = Rig(teleop_timeout=0.1, handback_time=1.0, teleop_loss="handback")
    rig.c.enable(True, rig.meas(), rig.now)

    inputs = policy_and_teleop(rig)

    rig.run(1.0, every=lambda k: inputs(k, False))
    assert rig.cmds[-1].q[ELBOW] == pytest.approx(1.0)
    rig.run(1.0, every=lambda k: inputs(k, True))
    assert rig.cmds[-1].source == "teleop" and rig.cmds[-1].q[ELBOW] == pytest.approx(0.2)
    start = len(rig.cmds)
    rig.run(1.5, every=lambda k: inputs(k, False))  # 0.8 rad over 1 s: 0.8 rad/s
    sources = [c.source for c in rig.cmds[start:]]
    assert "handback" in sources and sources[-1] == "policy"
    assert rig.cmds[-1].q[ELBOW] == pytest.approx(1.0)
    steps = np.abs(np.diff([c.q[ELBOW] for c in rig.cmds[start - 1:]]))
    assert steps.max() < 0.8 * 1.5 * contract.LOWCMD_DT  # the hand-back ramp is slower than the limiter


def test_arm_sdk_mode_never_commands_legs_and_ramps_weight():
    rig = Rig(mode="arm_sdk", enable_ramp=0.2)
    assert not rig.run(0.01).publish  # disabled in arm_sdk mode: silent
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.5, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    weights = [c.weight for c in rig.cmds if c.publish]
    assert weights[0] < 0.05 and weights[-1] == 1.0 and np.all(np.diff(weights) >= 0)
    rig.c.enable(False, rig.meas(), rig.now)
    rig.run(0.5)
    out = [c for c in rig.cmds if c.state == "disabled" and c.publish]
    assert out and out[-1].weight < 0.05 and not rig.cmds[-1].publish
    legs = list(g1.LEG_INDICES)
    for c in rig.cmds:
        assert not c.motors_on[legs].any() and not c.kp[legs].any() and not c.kd[legs].any()


def test_lowcmd_builder_sets_crc_mode_machine_and_arm_sdk_weight():
    rig = Rig(mode="arm_sdk")
    rig.c.enable(True, rig.meas(), rig.now)
    cmd = rig.run(0.3)
    sent = LowCmdBuilder("arm_sdk").build(cmd, mode_machine=5)
    msg = type(sent).deserialize(sent.serialize())  # the bytes the bridge writes
    arr = unitree.lowcmd_arrays(msg)
    assert unitree.crc_ok(msg) and msg.mode_machine == 5
    assert msg.motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q == pytest.approx(cmd.weight)
    assert not arr["mode"][list(g1.LEG_INDICES)].any() and arr["mode"][list(g1.UPPER_BODY_INDICES)].all()
    bad = rig.run(0.002)
    bad.q[ELBOW] = np.nan
    with pytest.raises(UnsafeCommandError):
        check_command(bad, "lowcmd")
    bad = rig.run(0.002)
    bad.kp[0] = 10.0
    with pytest.raises(UnsafeCommandError, match="leg"):
        check_command(bad, "arm_sdk")


def test_arm_sdk_damping_hands_the_upper_body_back_instead_of_going_limp():
    rig = Rig(mode="arm_sdk", enable_ramp=0.5)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.6, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    held = rig.cmds[-1].q.copy()
    assert rig.cmds[-1].weight == 1.0
    rig.c.damp("estop", rig.now)
    rig.run(1.0)
    damping = [c for c in rig.cmds[-500:] if c.state == "damping"]
    out = [c for c in damping if c.publish]
    # never kp = 0 through a weight near 1 (a limp waist): the weight ramps out over enable_ramp,
    # the last target held with the active gains, then nothing is sent (the motion service holds)
    assert len(damping) == 500 and 0 < len(out) < 500 and not damping[-1].publish
    weights = [c.weight for c in out]
    assert weights[0] < 1.0 and np.all(np.diff(weights) < 0) and weights[-1] == 0.0
    for c in out:
        up = list(g1.UPPER_BODY_INDICES)
        assert np.array_equal(c.kp[up], g1.DEFAULT_KP[up]) and np.array_equal(c.q[up], held[up])
    rig.c.enable(False, rig.meas(), rig.now)  # disabling from damping: still silent
    assert not rig.run(0.1).publish and rig.c.weight == 0.0


def test_arm_sdk_estop_during_ramp_out_keeps_ramping_out():
    rig = Rig(mode="arm_sdk", enable_ramp=0.5)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.6, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    rig.c.enable(False, rig.meas(), rig.now)
    rig.run(0.1)
    w = rig.cmds[-1].weight
    assert rig.cmds[-1].state == "disabled" and rig.cmds[-1].kp.any() and 0 < w < 1
    rig.c.damp("estop", rig.now)
    cmd = rig.run(0.002)
    assert cmd.state == "damping" and cmd.kp.any() and cmd.weight < w  # the same ramp, never back up
    rig.run(1.0)
    out = [c for c in rig.cmds[-500:] if c.publish]
    assert out and out[-1].weight == 0.0 and not rig.cmds[-1].publish


def test_lowcmd_disable_after_powering_sends_a_short_off_burst_then_nothing():
    rig = Rig()
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.2)
    rig.c.enable(False, rig.meas(), rig.now)
    rig.run(0.5)
    after = rig.cmds[-250:]
    sent = [c for c in after if c.publish]
    assert len(sent) == OFF_BURST and all(c.publish for c in after[:OFF_BURST])
    assert all(not c.motors_on.any() and not c.kp.any() and not c.kd.any() for c in sent)  # explicit "off"


# --- issue 12: torque, e-stop latching, enable, teleop semantics ---------------------------------
LIMIT = g1.TORQUE_LIMITS[ELBOW]


def blocked_elbow(rig, at=0.3):
    """The elbow is held at `at` (an obstacle), whatever it is commanded."""
    def every(k):
        rig.q[ELBOW] = at
        if k % 25 == 0:
            rig.chunk(elbow_pose(1.9))
    return every


def longest_run(flags):
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def test_blocked_elbow_never_commanded_over_its_torque_limit_past_the_grace_time():
    rig = Rig(torque_grace=0.2)
    rig.q[ELBOW] = 0.3
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(3.0, every=blocked_elbow(rig))  # the policy asks 1.9: kp * 1.6 rad = 64 N m
    over = [c.kp[ELBOW] * abs(c.q[ELBOW] - 0.3) > LIMIT + 1e-9 for c in rig.cmds]
    assert longest_run(over) * contract.LOWCMD_DT <= 0.2
    last = rig.cmds[-1]
    assert last.state == "active" and last.torque_limited[ELBOW] and last.dq[ELBOW] == 0.0
    assert last.kp[ELBOW] * (last.q[ELBOW] - 0.3) == pytest.approx(LIMIT, rel=0.01)
    status = rig.c.status(rig.now)
    assert status["torque_limited"] == "left_elbow_joint" and status["torque_limited_cycles"] > 100


def test_a_joint_pushed_away_is_pulled_back_into_its_torque_band_after_the_grace_time():
    rig = Rig(torque_grace=0.2)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(1.5, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    target = rig.cmds[-1].q[ELBOW]

    def pushed(k):  # someone pushes the forearm 1.2 rad away and holds it there
        rig.q[ELBOW] = target - 1.2
        if k % 25 == 0:
            rig.chunk(elbow_pose(1.5))
    start = len(rig.cmds)
    rig.run(1.5, every=pushed)
    err = [c.kp[ELBOW] * abs(c.q[ELBOW] - (target - 1.2)) for c in rig.cmds[start:]]
    grace = int(0.2 / contract.LOWCMD_DT)
    assert all(e > LIMIT for e in err[:grace])  # within the grace time: a transient is tolerated
    assert err[-1] == pytest.approx(LIMIT, rel=0.01)  # then pulled back, at the velocity limit
    steps = np.abs(np.diff([c.q[ELBOW] for c in rig.cmds[start - 1:]]))
    assert steps.max() <= 1.5 * contract.LOWCMD_DT + 1e-9


def test_hold_keeps_the_measured_pose_when_the_commanded_one_is_unreachable():
    rig = Rig(command_timeout=0.2, damp_timeout=5.0)
    rig.q[ELBOW] = 0.3
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(2.0, every=blocked_elbow(rig))
    assert rig.cmds[-1].q[ELBOW] > 0.8  # pulled to the torque band edge, not to the measured pose

    def still_blocked(k):
        rig.q[ELBOW] = 0.3
    cmd = rig.run(1.5, every=still_blocked)
    assert cmd.source == "hold" and cmd.q[ELBOW] == pytest.approx(0.3)
    assert cmd.q[ELBOW + 1] == pytest.approx(g1.STANDING_POSE[ELBOW + 1])  # the others hold their target


def test_tau_est_over_the_limit_counts_as_over():
    rig = Rig(torque_grace=0.1)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.5)
    assert not rig.cmds[-1].torque_limited.any()
    rig.tau = np.zeros(g1.NUM_JOINTS)
    rig.tau[ELBOW] = 1.5 * LIMIT
    rig.run(0.05)
    assert not rig.cmds[-1].torque_limited.any()  # within the grace time
    rig.run(0.1)
    assert rig.cmds[-1].torque_limited[ELBOW] and rig.c.status(rig.now)["torque_limited"] == "left_elbow_joint"


def test_estop_while_disabled_is_latched_against_autostart_and_enable():
    rig = Rig()
    rig.c.estop(True, rig.now)
    assert not rig.run(0.01).kp.any()
    ok, text = rig.c.enable(True, rig.meas(), rig.now)
    assert not ok and "asserted" in text
    rig.c.estop(False, rig.now)
    assert rig.c.status(rig.now)["estop_state"] == "latched"
    assert not rig.c.enable(True, rig.meas(), rig.now, reset=False)[0]  # autostart never resets it
    assert not rig.run(0.1).kp.any()
    ok, _ = rig.c.enable(True, rig.meas(), rig.now)  # the explicit reset: enable after release
    assert ok and rig.run(0.01).state == "active" and rig.c.status(rig.now)["estop_state"] == "clear"


def test_estop_release_keeps_damping_until_enable_and_enable_is_refused_while_asserted():
    rig = Rig()
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.05, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5)))
    rig.c.estop(True, rig.now)
    assert rig.run(0.002).state == "damping" and rig.c.estop_latency_cycles == 1
    assert not rig.c.enable(True, rig.meas(), rig.now)[0]
    assert rig.run(0.1).state == "damping"
    rig.c.estop(False, rig.now)  # data: false releases the level, not the latch
    assert rig.run(0.1, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(1.5))).state == "damping"
    assert rig.c.enable(True, rig.meas(), rig.now)[0] and rig.run(0.01).state == "active"


def test_second_enable_while_active_changes_nothing():
    rig = Rig(enable_ramp=0.5)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.8, every=lambda k: k % 25 == 0 and rig.chunk(elbow_pose(0.5)))
    before = rig.cmds[-1]
    rig.q[ELBOW] = 1.28  # the arm lags far behind the target
    ok, text = rig.c.enable(True, rig.meas(), rig.now)
    assert ok and "already" in text
    after = rig.run(0.002, every=lambda k: rig.chunk(elbow_pose(0.5)))
    np.testing.assert_array_equal(after.kp, before.kp)
    assert abs(after.q[ELBOW] - before.q[ELBOW]) <= 1.5 * contract.LOWCMD_DT + 1e-9 and after.source == "policy"


def test_teleop_loss_holds_teleop_target_until_released_then_hands_back():
    rig = Rig(teleop_timeout=0.1, handback_time=0.5)  # teleop_loss: hold (the default)
    rig.c.enable(True, rig.meas(), rig.now)

    inputs = policy_and_teleop(rig)

    rig.run(1.0, every=lambda k: inputs(k, True))
    assert rig.cmds[-1].source == "teleop" and rig.cmds[-1].q[ELBOW] == pytest.approx(0.2)
    cmd = rig.run(2.0, every=lambda k: inputs(k, False))  # the teleop sender is gone: no release
    assert cmd.source == "teleop_hold" and cmd.state == "active" and cmd.q[ELBOW] == pytest.approx(0.2)
    rig.c.release_teleop()
    start = len(rig.cmds)
    cmd = rig.run(1.0, every=lambda k: inputs(k, False))
    assert "handback" in [c.source for c in rig.cmds[start:]]
    assert cmd.source == "policy" and cmd.q[ELBOW] == pytest.approx(1.0)


def test_first_teleop_point_is_reached_at_its_time_from_start():
    rig = Rig(damp_timeout=2.0)
    rig.c.enable(True, rig.meas(), rig.now)
    rig.run(0.5)
    start = rig.cmds[-1].q[ELBOW]
    rig.teleop(["left_elbow_joint"], [start - 1.0], at=10.0)  # 1 rad in 10 s, one message
    half = rig.run(5.0)
    assert half.source == "teleop" and half.state == "active"
    assert half.q[ELBOW] == pytest.approx(start - 0.5, abs=0.01)  # not at full speed (1.5 rad/s)
    end = rig.run(5.0)
    assert end.q[ELBOW] == pytest.approx(start - 1.0, abs=0.01)
    assert rig.run(1.0).source == "teleop_hold"
