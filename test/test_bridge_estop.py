"""The e-stop path of the bridge (issue 12): its own executor, an immediate cycle, a latch on disk.

- The latch file: atomic, keyed by robot, fail-safe when it cannot be read.
- The 500 Hz loop runs an asserted e-stop's cycle at once instead of at its next deadline.
- The e-stop subscription is served by its own executor thread, in its own rclpy context
  (DDS participant): a bridge whose node executor never spins still applies it (a peer
  process builds the node and never spins it).
- A bridge killed after an e-stop and restarted with autostart stays disabled, the latch
  restored from disk, until an explicit enable resets it; the e-stop publisher is volatile,
  so nothing on the ROS graph remembers it.
No timing assertions.
"""

import json
import os
import re
import signal
import time

import numpy as np
import pytest
from support import Proc, python, random_dds_domain, ros_env, wait_for

from neon_ros import contract, g1, unitree
from neon_ros.bridge.controller import Controller, ControllerConfig
from neon_ros.bridge.latch import EstopLatchFile, default_state_dir, latch_path
from neon_ros.bridge.loop import BridgeLoop
from neon_ros.tools import processes, stack


def result(text: str) -> dict:
    line = next((ln for ln in text.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, text[-3000:]
    return json.loads(line[len("RESULT "):])


# --- the latch file -----------------------------------------------------------------------------------

def test_latch_file_set_clear_and_one_per_robot(tmp_path):
    latch = EstopLatchFile(latch_path(tmp_path / "state", "eth0", 0))
    assert not latch.is_set()
    latch.set()
    assert latch.is_set() and json.loads(latch.path.read_text())["reason"] == "estop"
    assert list(latch.path.parent.iterdir()) == [latch.path]  # atomic: no temporary file left behind
    latch.set()  # again: still one file
    assert EstopLatchFile(latch.path).is_set()  # what a restarted bridge reads
    assert not EstopLatchFile(latch_path(tmp_path / "state", "lo", 0)).is_set()  # another robot
    assert not EstopLatchFile(latch_path(tmp_path / "state", "eth0", 1)).is_set()
    latch.clear()
    assert not latch.is_set()
    latch.clear()  # nothing to clear: fine


def test_latch_default_dir_follows_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "neon"
    assert latch_path("", "lo", 1).parent == tmp_path / "neon"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir().parts[-3:] == (".local", "state", "neon")


def test_a_latch_that_cannot_be_read_counts_as_set(tmp_path):
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the state directory should be")
    assert EstopLatchFile(latch_path(not_a_dir, "lo", 1)).is_set()  # fail-safe: autostart is refused


def test_a_restored_latch_blocks_autostart_until_an_explicit_enable():
    from neon_ros.bridge.command import Measured

    ctrl = Controller(ControllerConfig(mode="lowcmd"))
    ctrl.restore_estop_latch()
    meas = Measured(g1.STANDING_POSE.copy(), np.zeros(g1.NUM_JOINTS), 1)
    assert ctrl.status(1)["estop_state"] == "latched"
    assert not ctrl.enable(True, meas, 1, reset=False)[0]  # autostart
    assert ctrl.enable(True, meas, 1)[0] and ctrl.status(1)["estop_state"] == "clear"


# --- the loop runs the e-stop's cycle at once ------------------------------------------------------------

class Writer:
    def __init__(self):
        self.kp: list[np.ndarray] = []

    def Write(self, msg):  # noqa: N802 (the SDK's name)
        self.kp.append(unitree.lowcmd_arrays(type(msg).deserialize(msg.serialize()))["kp"])  # the bytes sent


def test_an_estop_wakes_the_loop_before_its_next_deadline():
    """With a 5 s period the loop's next deadline is seconds away; the e-stop's damping goes out now."""
    ctrl = Controller(ControllerConfig(mode="lowcmd", dt=5.0, lowstate_timeout=10.0))
    loop = BridgeLoop(ctrl, "lo", 1, check_lowstate_crc=False)
    loop._pub = writer = Writer()  # no DDS
    state = unitree.new_lowstate()
    for i, v in enumerate(g1.STANDING_POSE):
        state.motor_state[i].q = float(v)
    loop.offer_lowstate(type(state).serialize(state))
    assert ctrl.enable(True, loop.latest, loop.clock())[0]
    loop.start()  # first deadline: 5 s from now
    try:
        time.sleep(0.2)
        assert writer.kp == []
        loop.set_estop(True)
        assert wait_for(lambda: len(writer.kp) == 1, 2.5), "the e-stop waited for the loop's deadline"
        assert not writer.kp[0].any() and ctrl.damp_reason == "estop"
    finally:
        loop.stop()
    assert list(loop.lateness) == []  # the early cycle is not counted as a scheduled one


# --- processes ----------------------------------------------------------------------------------------

@pytest.mark.ros
@pytest.mark.dds
@pytest.mark.timeout(150)
def test_estop_and_commands_are_served_without_the_nodes_executor(tmp_path):
    peer = Proc(python("-m", "test.peers.bridge_estop_thread", str(random_dds_domain()), str(tmp_path)), ros_env(),
                tmp_path / "peer.log")
    try:
        assert wait_for(lambda: not peer.alive(), 120), peer.output()[-3000:]
    finally:
        peer.stop()
    r = result(peer.output())
    print("\nnever spun:", json.dumps(r))
    assert r["asserted"] and r["latched"] and r["latch_file"], (r, peer.output()[-3000:])
    assert contract.BRIDGE_ESTOP_NODE in r["threads"] and contract.BRIDGE_COMMAND_NODE in r["threads"], r
    assert r["own_context"], r  # its own DDS participant: a command flood does not fill its receive queue
    # commands too are served by a thread of their own (the node's executor never spun), at no more
    # than max_command_rate: of 300 chunks sent at once, DDS kept the newest and the bridge took at
    # most rate x window (+ the COMMAND_QOS queue and one in hand)
    assert r["commands_own_context"] and r["chunks_accepted"] >= 1, r
    assert 1 <= r["flood_taken"] <= r["rate"] * r["flood_window_s"] + 5 + 2, r


def _thread_nices(pid: int) -> list[tuple[str, int]]:
    """(thread name, nice) of every thread of ``pid`` (field 19 of /proc/PID/task/TID/stat)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            nice = int(open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()[16])
        except OSError:
            continue
        out.append((comm, nice))
    return out


def bridge_command(domain: int, state_dir) -> list[str]:
    # the stack's simulation settings (autostart true); a stale LowState tolerated for 1 s on a loaded machine
    params = {**stack.node("g1_bridge").sim, "dds_domain_id": domain, "autostart_delay": 0.2,
              "lowstate_timeout": 1.0, "diagnostics_rate": 10.0, "state_dir": str(state_dir)}
    return processes.node_command("g1_bridge", params)


@pytest.mark.ros
@pytest.mark.dds
@pytest.mark.timeout(300)
def test_an_estop_survives_kill_9_and_a_restart_with_autostart(tmp_path):
    domain, env, state = random_dds_domain(), ros_env(), tmp_path / "state"
    latch = EstopLatchFile(latch_path(state, "lo", domain))
    sim = Proc(processes.node_command("sim_g1", {**stack.node("sim_g1").sim, "dds_domain_id": domain,
                                                 "camera_rate": 0.0}), env, tmp_path / "sim.log")
    bridges = [Proc(bridge_command(domain, state), env, tmp_path / "bridge1.log")]
    scen = Proc(python("-m", "test.peers.bridge_estop_persist"), env, tmp_path / "scenario.log")
    latched_on_disk = []
    try:
        for mark in ("KILL_NOW", "RESTART_AGAIN"):
            assert wait_for(lambda m=mark: m in scen.output() or not scen.alive(), 150), scen.output()
            assert scen.alive(), scen.output() + bridges[-1].output()[-3000:]
            latched_on_disk.append(latch.is_set())
            if mark == "KILL_NOW":
                niced = _thread_nices(bridges[-1].popen.pid)
            os.kill(bridges[-1].popen.pid, signal.SIGKILL)
            bridges[-1].popen.wait(10)
            bridges.append(Proc(bridge_command(domain, state), env, tmp_path / f"bridge{len(bridges) + 1}.log"))
        assert wait_for(lambda: not scen.alive(), 150), scen.output()
        r = result(scen.output())
    finally:
        for p in (scen, *bridges, sim):
            p.stop()
    print("\ne-stop across restarts:", json.dumps(r), "latch file at the kills:", latched_on_disk)
    assert r["active"] and r["damped"] and r["released"] and r["latch_on_disk"] == "True", r
    # the command intake's DDS threads (its own participant's, native) at command_dds_nice 10, every
    # other thread (the 500 Hz loop, the e-stop's and the main participant's DDS threads) at nice 0
    count = int(re.fullmatch(r"(\d+) threads, nice 10", r["command_dds"]).group(1))
    assert count >= 5 and sum(n == 10 for _, n in niced) == count, (r["command_dds"], niced)
    assert sum(n == 0 and c.startswith("dds.") for c, n in niced) >= 5 and {n for _, n in niced} == {0, 10}, niced
    # the setup's heap is out of the garbage collector's reach (no full-collection pause walks it)
    assert int(r["gc_frozen_objects"]) > 10_000, r
    # normal priority (the simulation's rt_priority 0) with slice_us from config/neon.yaml
    if tuple(map(int, os.uname().release.split(".")[:2])) >= (6, 12):
        assert r["rt_status"] == "normal priority, slice 100 us", r
    assert r["restarted"], (r, bridges[1].output()[-3000:])
    # the restarted bridge read the latch before anything could enable: disabled, latched, never enabled
    assert r["after_restart"] == ["disabled", "latched", "0", "True"], (r, bridges[1].output()[-3000:])
    assert latched_on_disk == [True, False], latched_on_disk  # removed by the explicit reset
    assert r["enable"][0] and r["active_after_reset"] and r["latch_on_disk_after_reset"] == "False", r
    assert r["restarted_again"] and r["autostarted"], (r, bridges[2].output()[-3000:])  # no latch left: it enables
