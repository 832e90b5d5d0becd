"""Nothing in the project leaves a process at a real-time priority it did not ask for ([9]).

SVT-AV1 (through PyAV), run as root, switches its calling thread to SCHED_FIFO 99; a demo
that wrote its simulated soup in-process then started every node at FIFO 99 and starved
two cores. These tests run as CI does (root): on a machine where FIFO is not permitted the
encoder cannot raise anything and the containment tests that need it skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from support import child_policies, ros_env

from neon_ros import g1
from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
from neon_ros.runtime import timing
from neon_ros.runtime.timing import autogroup_enabled, session_nice, set_fifo, thread_policies


def _fifo_permitted() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def _not_normal(policies: dict[int, int]) -> dict[int, int]:
    return {tid: p for tid, p in policies.items() if p != os.SCHED_OTHER}


DDS_AFTER_WRITE = """
import os, sys, tempfile
import numpy as np
from neon_ros import g1
from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
dim = len(g1.JOINT_NAMES)
ep = EpisodeRecord(np.random.default_rng(0).integers(0, 255, (6, 64, 64, 3), dtype=np.uint8),
                   np.zeros((6, dim), np.float32), np.zeros((6, dim), np.float32), "wave")
write_lerobot_v3(tempfile.mkdtemp(), [ep], fps=10, robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES))
import rclpy
rclpy.init()
node = rclpy.create_node("after_av1")
bad = []
for tid in os.listdir("/proc/self/task"):
    if os.sched_getscheduler(int(tid)) & 0xFF in (os.SCHED_FIFO, os.SCHED_RR):
        bad.append(open(f"/proc/self/task/{tid}/comm").read().strip())
node.destroy_node()
rclpy.shutdown()
print("REALTIME", ",".join(bad))
"""


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_dds_threads_started_after_an_av1_write_are_not_real_time():
    """SVT-AV1 in-process left Fast DDS's threads (created later by rclpy) at SCHED_FIFO 99: the
    demo wrote its soup, then every DDS thread of its observer and of every node it started ran
    real-time. The writer encodes in a child process, so nothing of it stays behind."""
    out = subprocess.run([sys.executable, "-c", DDS_AFTER_WRITE], env=ros_env(), capture_output=True, text=True,
                         timeout=100)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("REALTIME")), None)
    assert line is not None, out.stdout + out.stderr
    assert line == "REALTIME ", line


def test_writing_an_av1_lerobot_dataset_leaves_every_thread_normal(tmp_path):
    assert not _not_normal(thread_policies())
    rng = np.random.default_rng(0)
    dim = len(g1.JOINT_NAMES)
    episodes = [EpisodeRecord(frames=rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8),
                              state=np.zeros((6, dim), np.float32), action=np.zeros((6, dim), np.float32),
                              task="reach the red cup") for _ in range(2)]
    root = write_lerobot_v3(tmp_path / "ds", episodes, fps=10, robot_type="unitree_g1",
                            state_names=list(g1.JOINT_NAMES))  # AV1 (libsvtav1), as the demo's soup
    assert (root / "meta" / "info.json").is_file()
    assert not _not_normal(thread_policies()), "the AV1 writer left this process real-time"
    # ... and so a child started now runs at normal priority too
    out = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) == os.SCHED_OTHER


@pytest.mark.skipif(not _fifo_permitted(), reason="SCHED_FIFO not permitted here (needs root / CAP_SYS_NICE)")
def test_a_real_time_node_process_starts_children_on_normal_scheduling():
    code = ("import os, subprocess, sys\n"
            "from neon_ros.runtime.timing import set_fifo\n"
            "print(set_fifo(10))\n"
            "print(os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO)\n"
            "child = subprocess.run([sys.executable, '-c', 'import os; print(os.sched_getscheduler(0))'],\n"
            "                       capture_output=True, text=True, check=True)\n"
            "print(child.stdout.strip())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    status, fifo, child = out.stdout.split("\n")[:3]
    assert status.startswith("SCHED_FIFO 10") and fifo == "True", out.stdout
    assert int(child) == os.SCHED_OTHER, out.stdout


@pytest.mark.skipif(not _fifo_permitted(), reason="SCHED_FIFO not permitted here (needs root / CAP_SYS_NICE)")
@pytest.mark.parametrize(("kwargs", "status", "thread_policy"), [
    ({}, "SCHED_FIFO 3 (whole process)", os.SCHED_OTHER),  # RESET_ON_FORK resets new threads too
    ({"whole_process": False}, "SCHED_FIFO 3", os.SCHED_OTHER),
    ({"whole_process": False, "inherit": True}, "SCHED_FIFO 3", os.SCHED_FIFO),  # the bridge's way
])
def test_set_fifo_and_the_threads_started_afterwards(kwargs, status, thread_policy):
    seen = []
    assert set_fifo(3, **kwargs) == status
    try:
        assert os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
        later = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
        later.start()
        later.join()
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    assert seen == [thread_policy]


COMMAND_INTAKE_CHILD = """
import json, os, threading
from neon_ros.ros import rosutil
from neon_ros.runtime.timing import set_fifo
out = {}
def bridge_thread():  # as g1_bridge at rt_priority > 0: FIFO, inherited by what it starts
    out["status"] = set_fifo(3, whole_process=False, inherit=True)
    side = rosutil.SideNode("intake_test", dds_nice=10)
    out["dds"] = sorted({(os.sched_getscheduler(t) & 0xFF, os.getpriority(os.PRIO_PROCESS, t)) for t in side.dds_threads})
    out["nice_status"] = side.dds_nice
    side.start()
    out["spin"] = os.sched_getscheduler(side.thread.native_id) & 0xFF
    side.shutdown()
t = threading.Thread(target=bridge_thread)
t.start()
t.join()
print(json.dumps(out))
"""


@pytest.mark.skipif(not _fifo_permitted(), reason="SCHED_FIFO not permitted here (needs root / CAP_SYS_NICE)")
def test_a_real_time_bridges_command_intake_dds_threads_run_on_normal_scheduling():
    """g1_bridge at rt_priority > 0 (the robot's default): the DDS threads of its command intake
    (a flood arrives there) go back to SCHED_OTHER at command_dds_nice; its spinning thread (it
    holds the GIL, as the 500 Hz loop does) stays real-time. Before, they inherited SCHED_FIFO and
    the nice value meant nothing."""
    import json

    out = subprocess.run([sys.executable, "-c", COMMAND_INTAKE_CHILD], env=ros_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == "SCHED_FIFO 3" and got["nice_status"] == "nice 10", got
    assert got["dds"] == [[os.SCHED_OTHER, 10]], got
    assert got["spin"] == os.SCHED_FIFO, got


def test_child_policies_reads_a_process_tree():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = child_policies(os.getpid())
        assert os.getpid() in tree and proc.pid in tree
        assert all(tids for _, tids in tree.values())
    finally:
        proc.kill()
        proc.wait()
    assert set_fifo(0) == "normal priority"


def _slice_ns(tid: int) -> int | None:
    for line in open(f"/proc/self/task/{tid}/sched"):
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None  # a kernel without the field


@pytest.mark.skipif(tuple(map(int, os.uname().release.split(".")[:2])) < (6, 12),
                    reason="custom fair-scheduler slices need Linux >= 6.12 (EEVDF)")
def test_set_slice_keeps_normal_priority_and_threads_inherit_it():
    """g1_bridge's slice_us: a shorter fair-scheduler slice for this thread and the threads it starts,
    still SCHED_OTHER at nice 0 (no privilege), and 0 gives the kernel's default back."""
    from neon_ros.runtime.timing import set_slice

    seen: list[tuple[int, int | None, int]] = []

    def probe():
        tid = threading.get_native_id()
        seen.append((os.sched_getscheduler(0), _slice_ns(tid), os.getpriority(os.PRIO_PROCESS, tid)))

    def in_thread():  # not pytest's own thread: the setting must not outlive the test
        default = _slice_ns(threading.get_native_id())
        assert set_slice(150, whole_process=False) == "normal priority, slice 150 us"
        later = threading.Thread(target=probe)
        later.start()
        later.join()
        assert _slice_ns(threading.get_native_id()) == 150_000
        assert set_slice(0, whole_process=False).startswith("normal priority")
        seen.append((default, _slice_ns(threading.get_native_id()), 0))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert seen[0] == (os.SCHED_OTHER, 150_000, 0), seen
    assert seen[1][1] == seen[1][0], seen  # back to the default


@pytest.mark.skipif(tuple(map(int, os.uname().release.split(".")[:2])) < (6, 12),
                    reason="custom fair-scheduler slices need Linux >= 6.12 (EEVDF)")
def test_a_nodes_nice_and_slice_reach_the_threads_it_starts_later():
    """rosutil.apply_scheduling, as every node calls it first: speech_in's nice 10 (Whisper's own
    threads, started later, inherit it), action_head's slice; in a thread of its own (a raised nice
    cannot be undone without privilege)."""
    from neon_ros.ros import rosutil

    seen: list = []

    def node_thread():
        seen.append(rosutil.apply_scheduling({"nice": 7, "slice_us": 300.0}, whole_process=False))
        worker = threading.Thread(target=lambda: seen.append(
            (os.getpriority(os.PRIO_PROCESS, 0), _slice_ns(threading.get_native_id()), os.sched_getscheduler(0))))
        worker.start()
        worker.join()

    t = threading.Thread(target=node_thread)
    t.start()
    t.join()
    assert seen == ["normal priority, nice 7, slice 300 us", (7, 300_000, os.SCHED_OTHER)], seen
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # pytest's own thread untouched


AUTOGROUP_CHILD = """
import os, sys
from neon_ros.ros import rosutil
from neon_ros.runtime.timing import session_nice
status = rosutil.apply_scheduling({"nice": 10, "slice_us": 0.0})
print(status, os.getpriority(os.PRIO_PROCESS, 0), session_nice(), sep="|")
"""


@pytest.mark.parametrize("own_session", [True, False])
def test_a_node_in_a_session_of_its_own_yields_by_its_session_nice(own_session):
    """With autogroup on (kernel.sched_autogroup_enabled, as here and on Ubuntu) the CPU is shared
    between sessions first, so a node started in a session of its own (the demo's launcher) yielded
    to nothing by its threads' nice 10: its session's nice is set too. A node sharing its session
    (ros2 launch, here pytest's) leaves the session's nice alone: its threads' nice already ranks it."""
    autogroup = autogroup_enabled()
    ours = str(session_nice())  # 'None' where the runner is in the kernel's default group (CI's container)
    out = subprocess.run([sys.executable, "-c", AUTOGROUP_CHILD], capture_output=True, text=True, timeout=60,
                         env=ros_env(), start_new_session=own_session)
    assert out.returncode == 0, out.stderr[-2000:]
    status, thread_nice, child_session = out.stdout.strip().splitlines()[-1].split("|")
    assert int(thread_nice) == 10
    if autogroup and own_session:
        assert "session nice 10" in status and child_session == "10", out.stdout
    else:
        assert "session" not in status and child_session == ours, out.stdout
    assert str(session_nice()) == ours  # the test runner's session untouched


@pytest.mark.parametrize("text, nice", [("/autogroup-1034 nice 0\n", 0), ("/autogroup-7 nice 10\n", 10),
                                        ("", None)])
def test_session_nice_reads_the_kernels_line_and_none_for_the_default_group(tmp_path, monkeypatch, text, nice):
    """The kernel prints nothing for its default group (a process whose session never called setsid,
    as a container's first process and all it starts): that is no session nice, not a crash."""
    fake = tmp_path / "autogroup"
    fake.write_text(text)
    monkeypatch.setattr(timing, "AUTOGROUP_OF_SELF", fake)
    assert session_nice() == nice
    monkeypatch.setattr(timing, "AUTOGROUP_OF_SELF", tmp_path / "absent")
    assert session_nice() is None


FREEZE_CHILD = """
import gc
from neon_ros.runtime.timing import freeze_heap
class Part:
    pass
setup = Part()
setup.me = setup  # a cycle the node keeps for its lifetime
frozen = freeze_heap()
assert frozen == gc.get_freeze_count() > 1000, frozen
assert not any(o is setup for o in gc.get_objects()), "a collection still walks the setup's objects"
later = Part()
later.me = later
del later  # garbage made after the freeze: still found and freed
assert gc.collect() >= 1
print("ok", frozen)
"""


def test_freeze_heap_takes_the_setup_out_of_the_collectors_walk_and_later_cycles_are_still_freed():
    """A real-time node freezes its heap once built (g1_bridge, bridge_watchdog): in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", FREEZE_CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stdout + out.stderr
