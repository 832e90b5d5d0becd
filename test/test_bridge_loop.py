"""The bridge loop without DDS: faults in a cycle, injected clocks, the e-stop flag (issue 12)."""

import threading
import time

import numpy as np
import pytest

from neon_ros import contract, g1, unitree
from neon_ros.bridge.controller import Controller, ControllerConfig
from neon_ros.bridge.loop import BridgeLoop
from neon_ros.bridge.safety import NS, validate_trajectory

DT_NS = int(contract.LOWCMD_DT * NS)
ELBOW = g1.JOINT_INDEX["left_elbow_joint"]
TIMES = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT


class Writer:
    """A LowCmd publisher that raises on the Write calls listed in ``fail_on`` (1-based)."""

    def __init__(self, fail_on=()):
        self.fail_on, self.calls, self.kp = set(fail_on), 0, []
        self.lock = threading.Lock()

    def Write(self, msg):  # noqa: N802 (the SDK's name)
        with self.lock:
            self.calls += 1
            if self.calls in self.fail_on:
                raise OSError("DDS write failed")
            self.kp.append(unitree.lowcmd_arrays(type(msg).deserialize(msg.serialize()))["kp"])  # the bytes sent


class Clocks:
    """A monotonic clock and a wall clock that tests step independently."""

    def __init__(self):
        self.mono = 5 * NS
        self.wall = 1_700_000_000 * NS

    def tick(self, ns=DT_NS):
        self.mono += ns
        self.wall += ns


def lowstate(q=None):
    msg = unitree.new_lowstate()
    for i, v in enumerate(g1.STANDING_POSE if q is None else q):
        msg.motor_state[i].q = float(v)
    return type(msg).serialize(msg)


def make_loop(writer, clocks=None, **cfg):
    ctrl = Controller(ControllerConfig(mode="lowcmd", **cfg))
    kw = {} if clocks is None else {"clock": lambda: clocks.mono, "wall_clock": lambda: clocks.wall}
    loop = BridgeLoop(ctrl, "lo", 1, check_lowstate_crc=False, **kw)
    loop._pub = writer  # no DDS: the loop writes into the fake publisher
    return loop, ctrl


def test_a_write_that_raises_latches_damping_reports_the_fault_and_keeps_sending():
    writer, clocks = Writer(fail_on={20}), Clocks()
    loop, ctrl = make_loop(writer, clocks)
    loop.offer_lowstate(lowstate())
    assert ctrl.enable(True, loop.latest, clocks.mono)[0]
    for _ in range(100):
        loop.offer_lowstate(lowstate())
        loop.guarded_cycle()  # never raises
        clocks.tick()
    assert loop.counts["loop_faults"] == 1 and loop.counts["fault_damping_failed"] == 0
    assert ctrl.state == "damping" and ctrl.damp_reason == "fault: OSError: DDS write failed"
    assert ctrl.status(clocks.mono)["fault"] == "OSError: DDS write failed"
    assert writer.kp[18].any() and not any(kp.any() for kp in writer.kp[19:])  # damping from the fault on
    assert len(writer.kp) == 100  # the fault's cycle still sent its damping command
    assert not ctrl.enable(True, loop.latest, clocks.mono, reset=False)[0]  # autostart never clears a fault
    assert ctrl.enable(True, loop.latest, clocks.mono)[0] and ctrl.fault == ""


def test_the_500hz_thread_survives_a_fault():
    writer = Writer(fail_on={50})
    loop, ctrl = make_loop(writer, lowstate_timeout=10.0)
    loop.offer_lowstate(lowstate())
    ctrl.enable(True, loop.latest, loop.clock())
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while writer.calls < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop._thread.is_alive() and writer.calls >= 150
        assert ctrl.state == "damping" and ctrl.damp_reason.startswith("fault: ")
    finally:
        loop.stop()


@pytest.mark.parametrize("step_s", [-5.0, 5.0])
def test_wall_clock_steps_change_no_watchdog(step_s):
    clocks = Clocks()
    loop, ctrl = make_loop(Writer(), clocks, lowstate_timeout=0.1)
    loop.offer_lowstate(lowstate())
    ctrl.enable(True, loop.latest, clocks.mono)
    pose = g1.STANDING_POSE.copy()
    pose[ELBOW] = 0.8
    for k in range(250):
        loop.offer_lowstate(lowstate())
        if k % 25 == 0:
            ctrl.push(validate_trajectory("chunk", g1.JOINT_NAMES, np.tile(pose, (16, 1)), TIMES, clocks.wall,
                                          clocks.wall, ctrl.cfg.safety, clocks.mono), clocks.mono)
        assert loop.cycle_once().source == "policy"
        clocks.tick()
    clocks.wall += int(step_s * NS)  # NTP steps the wall clock; LowState keeps coming
    for _ in range(100):
        loop.offer_lowstate(lowstate())
        cmd = loop.cycle_once()
        clocks.tick()
    assert cmd.state == "active" and cmd.source == "policy"  # the chunk in hand plays on
    assert loop.latest.stamp_ns == clocks.wall - DT_NS  # /joint_states headers follow the wall clock
    states = []
    for _ in range(100):  # LowState stops
        states.append(loop.cycle_once().state)
        clocks.tick()
    # the last LowState is 0.1 s old on the 50th cycle after it: stale on the next, whatever the wall clock did
    assert states.index("damping") == 50
    assert ctrl.damp_reason == "lowstate_stale"


def test_estop_flag_is_applied_on_the_next_cycle_and_latches_even_if_released_before():
    clocks = Clocks()
    loop, ctrl = make_loop(Writer(), clocks)
    loop.offer_lowstate(lowstate())
    ctrl.enable(True, loop.latest, clocks.mono)
    loop.cycle_once()
    clocks.tick()
    loop.set_estop(True)
    loop.set_estop(False)  # released before the loop saw it: the assertion still latches
    loop.offer_lowstate(lowstate())
    assert loop.cycle_once().state == "damping" and ctrl.estop_latency_cycles == 1
    assert ctrl.status(clocks.mono)["estop_state"] == "latched"
    loop.set_estop(True)
    clocks.tick()
    loop.offer_lowstate(lowstate())
    loop.cycle_once()
    with loop.lock:
        loop.sync_estop()
        assert not ctrl.enable(True, loop.latest, clocks.mono)[0]  # still asserted
    loop.set_estop(False)
    with loop.lock:
        loop.sync_estop()
        assert ctrl.enable(True, loop.latest, clocks.mono)[0]
