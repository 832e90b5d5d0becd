"""Property tests (hypothesis): whatever arrives, every command is finite, in limits, rate-limited."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neon_ros import contract, g1
from neon_ros.bridge.command import Measured
from neon_ros.bridge.controller import MAX_CATCHUP, Controller, ControllerConfig
from neon_ros.bridge.lowcmd import check_command
from neon_ros.bridge.safety import NS, InputRejectedError, validate_trajectory

DT_NS = int(contract.LOWCMD_DT * NS)
T0 = 1_700_000_000 * NS

values = st.one_of(st.floats(-10, 10), st.floats(-10, 10),
                   st.sampled_from([np.nan, np.inf, -np.inf, 1e9, -1e9, 0.0]))
names = st.one_of(st.just(list(g1.JOINT_NAMES)),
                  st.permutations(list(g1.JOINT_NAMES)),
                  st.lists(st.sampled_from(list(g1.JOINT_NAMES) + ["bogus_joint"]), min_size=1, max_size=31))
trajectory = st.tuples(
    st.sampled_from(["chunk", "teleop"]), names,
    st.sampled_from([16, 16, 1, 3, 15, 17]),  # points
    values,  # one value everywhere (cheap), plus a random perturbation seed
    st.integers(0, 2**31),
    st.sampled_from([0.0, 0.0, -0.3, -3.0, 0.01, 1.0, -0.05]),  # stamp offset, s
)
event = st.one_of(
    st.tuples(st.just("traj"), trajectory),
    st.tuples(st.just("traj"), trajectory),
    st.tuples(st.just("enable"), st.booleans()),
    st.tuples(st.just("estop"), st.just(None)),
    st.tuples(st.just("damp"), st.just(None)),
    st.tuples(st.just("lowstate"), st.tuples(values, st.booleans())),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["lowcmd", "arm_sdk"]),
       events=st.lists(st.tuples(event, st.integers(1, 150)), min_size=1, max_size=25),
       stride=st.sampled_from([1, 1, 2, 10]))
def test_any_input_sequence_gives_safe_commands(mode, events, stride):
    # Start enabled, and run some 2 ms cycles after every input, so the active paths are exercised.
    events = [e for ev, n in [(("enable", True), 1), *events] for e in (ev, ("step", n))]
    cfg = ControllerConfig(mode=mode, command_timeout=0.1, damp_timeout=0.3, teleop_timeout=0.05,
                           handback_time=0.1, enable_ramp=0.1)
    c = Controller(cfg)
    lim = cfg.safety
    now = T0
    q_meas = g1.STANDING_POSE.copy()
    stale = False
    prev = None
    # every `stride`-th cycle is late by that many periods (a starved loop): it may catch up
    # at most MAX_CATCHUP periods of motion
    late_step = min(stride, MAX_CATCHUP) * cfg.dt
    for kind, arg in events:
        if kind == "step":
            for i in range(arg):
                gap = stride if i % stride == 0 else 1
                now += (gap - 1) * DT_NS
                meas = Measured(q_meas.copy(), np.zeros(g1.NUM_JOINTS), now - (NS if stale else 0))
                cmd = c.step(now, meas)
                check_command(cmd, mode)  # finite, in hard limits, no leg in arm_sdk mode
                for f in (cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau):
                    assert np.all(np.isfinite(f))
                on = cmd.motors_on
                assert np.all((cmd.q[on] >= lim.lower[on] - 1e-12) & (cmd.q[on] <= lim.upper[on] + 1e-12))
                assert np.all(cmd.kp <= cfg.kp) and np.all(cmd.kd <= max(cfg.kd.max(), cfg.damping_kd))
                if cmd.state == "disabled" and mode == "lowcmd":
                    assert not on.any() and not cmd.kp.any() and not cmd.kd.any()
                if stale and cmd.kp.any():  # arm_sdk hand-back (disabled or damping): holds, never moves
                    assert cmd.state in ("disabled", "damping") and mode == "arm_sdk"
                allowed = lim.velocity_limits[on] * (late_step if gap > 1 else cfg.dt) + 1e-9
                if cmd.state == "active" and prev is not None and prev.state == "active":
                    assert np.all(np.abs(cmd.q - prev.q)[on] <= allowed)
                if cmd.kp.any() and prev is not None and prev.kp.any():
                    assert np.all(np.abs(cmd.q - prev.q)[on] <= allowed)
                prev = cmd
                now += DT_NS
        elif kind == "traj":
            tkind, tnames, npts, v, seed, offset = arg
            rng = np.random.default_rng(seed)
            pos = np.full((npts, len(tnames)), v) + rng.normal(0, 1, (npts, len(tnames)))
            times = np.arange(npts) * contract.CONTROL_DT
            try:
                traj = validate_trajectory(tkind, tnames, pos, times, now + int(offset * NS), now, lim)
            except InputRejectedError:
                continue
            assert np.all(np.isfinite(traj.positions[:, traj.mask]))
            c.push(traj, now)
        elif kind == "enable":
            c.enable(arg, Measured(q_meas.copy(), np.zeros(g1.NUM_JOINTS), now - (NS if stale else 0)), now)
            prev = None  # enabling restarts from the measured pose
        elif kind in ("estop", "damp"):
            torque_on, weight = c.state == "active" or c.weight > 0, c.weight
            c.damp(kind, now)
            if torque_on:  # the very next cycle damps
                cmd = c.step(now, Measured(q_meas.copy(), np.zeros(g1.NUM_JOINTS), now))
                assert cmd.state == "damping"
                if mode == "lowcmd":  # kp = 0, kd > 0 on every joint
                    assert not cmd.kp.any() and np.all(cmd.kd[c.mask] > 0)
                else:  # arm_sdk: the weight ramps toward 0, the upper body goes back to the motion service
                    assert cmd.weight < weight or weight == 0.0
                check_command(cmd, mode)
                prev = cmd
                now += DT_NS
        else:
            v, stale = arg
            q_meas = np.full(g1.NUM_JOINTS, v)
