"""The body bridge's safety layer (neon_ros.bridge.body) and the simulated loco service, without ROS or DDS."""

import math

import numpy as np
import pytest

from neon_ros import g1
from neon_ros.bridge.body import BodyConfig, BodyController, CommandRejectedError, hand_positions
from neon_ros.sim.body import HandMonitor, LocoService

S = 1_000_000_000


def enabled(**cfg) -> BodyController:
    ctl = BodyController(BodyConfig(**cfg))
    assert ctl.enable(True)[0]
    return ctl


def test_velocity_is_clamped_then_rate_limited():
    ctl = enabled()
    assert ctl.loco_command((2.0, -1.0, 9.0), 0, 0, 0).tolist() == [0.3, -0.2, 0.5]
    assert ctl.clamped == 3
    assert ctl.loco_step(0) is None  # dt 0: still zero, and the stop is known
    assert ctl.loco_step(S // 10) == pytest.approx([0.05, -0.05, 0.1])  # 0.1 s at 0.5 m/s^2, 1 rad/s^2
    for t in np.arange(0.15, 1.0, 0.05):
        ctl.target_ns = int(t * S)  # keep the command fresh for the rest of the ramp
        v = ctl.loco_step(int(t * S))
    assert v.tolist() == [0.3, -0.2, 0.5]


def test_stale_disabled_and_estop_give_zero_at_once_until_confirmed():
    ctl = enabled()
    ctl.loco_command((0.3, 0.0, 0.0), 0, 0, 0)
    ctl.velocity = np.array([0.3, 0.0, 0.0])
    ctl.last_loco_ns = 0
    assert ctl.loco_step(S // 10)[0] == 0.3
    assert ctl.loco_step(S // 2).tolist() == [0.0, 0.0, 0.0]  # 0.5 s > command_timeout: zero, not ramped
    assert ctl.loco_step(S // 2 + 1).tolist() == [0.0, 0.0, 0.0]  # resent until the service confirms
    ctl.loco_sent(np.zeros(3), 0)
    assert ctl.loco_step(S) is None
    ctl.loco_command((0.3, 0.0, 0.0), 0, 0, S)
    ctl.velocity = np.array([0.3, 0.0, 0.0])
    ctl.set_estop(True)
    assert ctl.loco_step(S + 1).tolist() == [0.0, 0.0, 0.0] and not ctl.damp_pending  # estop_damp off by default


def test_estop_is_latched_until_an_enable_after_the_release():
    ctl = enabled(estop_damp=True)
    ctl.set_estop(True)
    assert ctl.damp_pending and ctl.blocked().startswith("e-stop")
    ok, text = ctl.enable(True)
    assert not ok and "asserted" in text
    ctl.set_estop(False)
    ctl.loco_command((0.3, 0.0, 0.0), S, S, S)
    assert ctl.blocked() and ctl.loco_step(S) is None  # released, still latched: it stands, nothing to send
    assert ctl.enable(True)[0] and not ctl.blocked() and ctl.target_ns is None  # old commands do not count


@pytest.mark.parametrize("bad,reason", [((math.nan, 0, 0), "non_finite"), ((0, math.inf, 0), "non_finite"),
                                        ((0, 0), "malformed")])
def test_bad_loco_commands_are_refused_whole(bad, reason):
    ctl = enabled()
    with pytest.raises(CommandRejectedError) as e:
        ctl.loco_command(bad, 0, 0, 0)
    assert e.value.reason == reason and ctl.target_ns is None


def test_stamps_in_the_future_or_too_old_are_refused():
    ctl = enabled()
    for stamp, reason in ((S, "future_stamp"), (-2 * S, "stale")):
        with pytest.raises(CommandRejectedError) as e:
            ctl.loco_command((0.1, 0, 0), stamp, 0, 0)
        assert e.value.reason == reason


def test_lowcmd_mode_refuses_loco_with_the_reason():
    ctl = enabled(mode="lowcmd")
    with pytest.raises(CommandRejectedError) as e:
        ctl.loco_command((0.1, 0, 0), 0, 0, 0)
    assert e.value.reason == "mode" and "lowcmd" in e.value.detail
    assert ctl.loco_step(0) is None


def test_hands_ramp_hold_when_stale_or_estopped_and_stay_silent_when_disabled():
    ctl = BodyController(BodyConfig())
    ctl.grip_command(["left_hand"], [1.0], 0, 0, 0)
    assert ctl.hand_step(0) == {}  # disabled: no hand command at all
    ctl.enable(True)
    ctl.grip_command(["left_hand", "right_hand"], [2.0, -1.0], 0, 0, 0)
    assert ctl.clamped == 2
    ctl.hand_step(0)
    assert ctl.hand_step(S // 10) == pytest.approx({"left_hand": 0.1, "right_hand": 0.0})  # 1 closure/s
    ctl.grip_ns = [S // 10, S // 10]
    assert ctl.hand_step(S // 5)["left_hand"] == pytest.approx(0.2)
    assert ctl.hand_step(S)["left_hand"] == pytest.approx(0.2)  # stale: holds
    ctl.grip_ns = [S, S]
    ctl.set_estop(True)
    assert ctl.hand_step(S + S // 10)["left_hand"] == pytest.approx(0.2)  # e-stop: holds
    with pytest.raises(CommandRejectedError):
        ctl.grip_command(["left_hand", "left_hand"], [0.1, 0.2], 0, 0, 0)
    with pytest.raises(CommandRejectedError):
        ctl.grip_command(["thumb"], [0.1], 0, 0, 0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_hand_positions_stay_inside_the_dex3_ranges(side):
    for c in np.linspace(0.0, 1.0, 11):
        q = hand_positions(side, c, 0.05)
        assert np.all(q >= g1.DEX3_LOWER[side] + 0.05 - 1e-12) and np.all(q <= g1.DEX3_UPPER[side] - 0.05 + 1e-12)


def test_simulated_loco_service_walks_for_the_duration_and_damp_stops_it():
    active = [True]
    loco = LocoService(lambda: active[0])
    loco.set_velocity(0.5, 0.0, 0.0, 1.0)
    poses = [loco.advance(0.002) for _ in range(600)]
    assert loco.stats().pose[0] == pytest.approx(0.5) and poses[-1] is None  # 1 s at 0.5 m/s, then it stops
    loco.set_velocity(0.0, 0.0, 1.0, 10.0)
    for _ in range(100):
        loco.advance(0.002)
    assert loco.stats().pose[2] == pytest.approx(0.2)
    loco.set_fsm(1)
    assert loco.advance(0.002) is None and loco.stats().fsm_id == 1
    loco.set_velocity(0.5, 0.0, 0.0, 1.0)  # damped: ignored
    assert loco.advance(0.002) is None and loco.stats().ignored == 1
    with pytest.raises(ValueError):
        loco.set_velocity(math.nan, 0.0, 0.0, 1.0)


def test_hand_monitor_counts_targets_outside_the_ranges():
    mon = HandMonitor()
    ok = {"q": np.zeros(7), "kp": np.full(7, 1.5), "kd": np.full(7, 0.1), "mode": np.arange(7) + 16}
    mon.record("left", ok)
    mon.record("left", {**ok, "q": np.full(7, 3.0)})
    snap = mon.snapshot()["left"]
    assert snap.received == 2 and snap.invalid == 1 and snap.mode == list(range(16, 23))
