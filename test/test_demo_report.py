"""The demo's plain parts: command timeline, task verdict (real FK), report files, status, processes."""

import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from neon_ros import contract, g1
from neon_ros.tools import processes
from neon_ros.tools.demo.record import DemoRecord
from neon_ros.tools.demo.report import RunInfo, write_report
from neon_ros.tools.demo.status import StatusPrinter, status_lines
from neon_ros.tools.demo.tasks import cup_in_pelvis_frame, evaluate, known_tasks, resolve_task


@pytest.fixture(scope="module")
def kinematics():
    from neon_ros.runtime.kinematics import G1Kinematics

    return G1Kinematics()


def expert_goal_pose(kinematics):
    """Where the soup's scripted expert takes the left arm for reach_cup (its own plan)."""
    from neon_ros.data import sim_expert

    plan = sim_expert.plan_task("reach_cup", g1.STANDING_POSE.copy(), kinematics, np.random.default_rng(0))
    return plan.goal


def synthetic_record(kinematics, reach=True) -> DemoRecord:
    rec = DemoRecord(t0_ns=0)
    q_end = expert_goal_pose(kinematics) if reach else g1.STANDING_POSE
    for i in range(200):
        a = min(1.0, i / 150)
        t = i * 0.05
        rec.js_t.append(t)
        rec.js_q.append((1 - a) * g1.STANDING_POSE + a * q_end)
        rec.arrived(contract.TOPIC_JOINT_STATES, t)
    for i in range(0, 190, 4):  # a chunk every 0.2 s, each 16 steps
        stamp = i * 0.05
        rec.chunk_stamp.append(stamp)
        rec.chunk_t.append(stamp + 0.1)
        rec.chunk_q.append(np.stack([rec.js_q[min(i + k, 199)] for k in range(contract.CHUNK_STEPS)]))
        rec.chunk_latency_ms.append(100.0 + i)
        rec.feature_latency_ms.append(60.0 + i)
    rec.frames = [(1.0, np.zeros((32, 32, 3), np.uint8)), (5.0, np.full((32, 32, 3), 200, np.uint8))]
    rec.instructions = [(0.5, "Reach the red cup.")]
    rec.narrations = [(1.0, "I see the red cup.")]
    rec.teleop_t = [3.0, 3.05, 3.1, 3.2, 6.0]
    rec.bridge = [(0.0, "active", "policy"), (3.0, "active", "teleop"), (3.4, "active", "handback")]
    rec.live_since = 0.1
    return rec


def test_commanded_timeline_and_teleop_spans(kinematics):
    rec = synthetic_record(kinematics)
    t, q = rec.commanded()
    assert np.all(np.diff(t) >= 0) and q.shape[1] == g1.NUM_JOINTS
    assert t[0] == 0.0 and t[-1] == pytest.approx(rec.chunk_stamp[-1] + 15 * contract.CONTROL_DT)
    # within a chunk's period only its own points are used: 4 points per 0.2 s
    assert np.sum((t >= 0) & (t < 0.2 - 1e-9)) == 4
    assert rec.teleop_spans() == [(3.0, 3.2), (6.0, 6.0)]
    assert rec.source_spans("teleop") == [(3.0, 3.4)]


def test_task_verdict_from_forward_kinematics(kinematics):
    task = known_tasks()["reach_cup"]
    t, q = synthetic_record(kinematics, reach=True).joint_arrays()
    out = evaluate(task, t, q, kinematics)
    assert out.achieved is True and out.hand == "left", out.summary
    assert out.min_distance < evaluate(task, t[:1], q[:1], kinematics).min_distance - 0.1  # came closer to the cup
    t, q = synthetic_record(kinematics, reach=False).joint_arrays()
    out = evaluate(task, t, q, kinematics)
    assert out.achieved is False and out.min_distance > 0.3 and "NOT achieved" in out.summary
    # standing still IS the stand_still task
    assert evaluate(known_tasks()["stand_still"], t, q, kinematics).achieved is True
    custom = resolve_task("dance a little")
    assert custom.name == "custom" and evaluate(custom, t, q, kinematics).achieved is None
    assert resolve_task("Reach the red cup.") == known_tasks()["reach_cup"]
    assert evaluate(task, np.zeros(0), np.zeros((0, 29)), kinematics).achieved is False
    assert np.linalg.norm(cup_in_pelvis_frame() - np.array([0.4, 0.1, -0.054])) < 0.01


def test_report_files(tmp_path, kinematics):
    rec = synthetic_record(kinematics)
    (tmp_path / "narration").mkdir()
    (tmp_path / "narration" / "0001.wav").write_bytes(b"RIFF" + bytes(2000))
    info = RunInfo(task=known_tasks()["reach_cup"], seconds=10, started="now", checkpoint="head.json",
                   live_s=9.5, startup_s=3.0, children={"sim_g1": {"returncode": 0, "stop_signal": "SIGINT"}},
                   cpu={"sim_g1": {"percent": 48.5, "threads": {"sim_g1": 40.0, "dds.shm.1": 8.5}}})
    t, q = rec.joint_arrays()
    summary = write_report(tmp_path, rec, info, evaluate(info.task, t, q, kinematics))
    for name in ("report.md", "report.html", "summary.json", "data.npz", "joints.png", "latency.png",
                 "frames.png", "hand_to_cup.png"):
        assert (tmp_path / name).stat().st_size > 200, name
    md = (tmp_path / "report.md").read_text()
    assert "task achieved" in md and "joints.png" in md and "narration/0001.wav" in md
    assert json.loads((tmp_path / "summary.json").read_text())["achieved"] is True
    assert summary["latency_ms"]["camera -> action chunk"]["n"] == len(rec.chunk_latency_ms)
    assert summary["tracking_rms_rad"] < 0.05  # commanded = measured in this synthetic run
    assert "left_shoulder_pitch_joint" in summary["plotted_joints"]
    data = np.load(tmp_path / "data.npz")
    assert data["joint_q"].shape == (200, 29) and data["teleop_t"].size == 5
    assert '<audio controls src="narration/0001.wav">' in (tmp_path / "report.html").read_text()
    assert "| sim_g1 | 48.5 | sim_g1 40.0, dds.shm.1 8.5 |" in md  # the live period's CPU profile
    assert data["chunk_latency_ms"].size == data["chunk_t"].size == len(rec.chunk_latency_ms)


def test_cpu_profile_of_a_busy_and_an_idle_process():
    """processes.thread_cpu_ns / cpu_profile, as the demo profiles its nodes' live period."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        before = {"busy": processes.thread_cpu_ns(busy.pid), "idle": processes.thread_cpu_ns(idle.pid)}
        t0 = time.monotonic()
        time.sleep(1.0)
        after = {"busy": processes.thread_cpu_ns(busy.pid), "idle": processes.thread_cpu_ns(idle.pid)}
        prof = processes.cpu_profile(before, after, time.monotonic() - t0)
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    assert 30.0 < prof["busy"]["percent"] <= 105.0, prof  # a spinning thread: most of a core (2 shared cores)
    assert prof["idle"]["percent"] < 5.0, prof
    assert sum(prof["busy"]["threads"].values()) == pytest.approx(prof["busy"]["percent"], abs=0.5), prof
    assert processes.thread_cpu_ns(busy.pid) == {}  # gone


def test_status_lines_and_printer(kinematics):
    rec = synthetic_record(kinematics)
    lines = status_lines(rec, now=9.9, phase="running", elapsed=5.0, total=10.0, distance=0.05)
    text = "\n".join(lines)
    assert "5.0/10 s" in text and "Reach the red cup." in text and "I see the red cup." in text
    assert "joints" in text and "5.0 cm" in text and "handback" in text
    buf = io.StringIO()
    StatusPrinter(buf, interactive=False).show(lines)
    assert buf.getvalue().count("\n") == 1
    tty = io.StringIO()
    printer = StatusPrinter(tty, interactive=True)
    printer.show(lines)
    printer.show(lines)  # redraws in place: cursor up over the previous block
    printer.message("LIVE")
    out = tty.getvalue()
    assert f"\x1b[{len(lines)}F" in out and out.count("\x1b[2K") == 2 * len(lines) and out.endswith("LIVE\n")


def test_processes_env_args_and_clean_stop(tmp_path):
    ros, dds = processes.pick_domains(None, None)
    assert 201 <= ros <= 230 and 101 <= dds <= 200
    assert processes.pick_domains(7, 150) == (7, 150)
    with pytest.raises(ValueError):
        processes.pick_domains(300, 1)
    env = processes.child_env(ros)
    assert env["ROS_DOMAIN_ID"] == str(ros) and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert processes.ros_args(None, {"autostart": True, "rate": 2.5}) == [
        "--ros-args", "-p", "autostart:=true", "-p", "rate:=2.5"]
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: sys.exit(0))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    group = processes.ProcessGroup(env, tmp_path)
    polite = group.start("polite", [sys.executable, "-c", code])
    hard = group.start("stubborn", [sys.executable, "-c", stubborn])
    assert polite.wait_for_line("ready", 30) and hard.wait_for_line("ready", 30)
    group.stop(grace=1.0)
    assert polite.returncode == 0 and polite.stop_signal == "SIGINT"
    assert hard.returncode == -15 and hard.stop_signal == "SIGTERM"
    assert not group.dead() or all(not c.alive() for c in group.children)


def test_speech_synthesis(tmp_path):
    wav = processes.synthesize_speech("pick up the red cup", tmp_path / "cmd.wav")
    import soundfile as sf

    audio, rate = sf.read(wav)
    assert rate > 8000 and len(audio) / rate > 0.5 and np.abs(audio).max() > 0.05


def test_a_stack_that_goes_silent_is_named_with_its_last_diagnostic():
    from neon_ros.tools.demo.status import silent_stage

    counts = {contract.TOPIC_JOINT_STATES: 900, contract.TOPIC_CAMERA: 40, contract.TOPIC_CLIP: 12}
    diags = {"backbone": ("warn", "waiting: encoder busy (0 clips done)"), "action_head": ("warn", "no features")}
    node, why = silent_stage(counts, diags)
    assert node == "backbone"
    assert contract.TOPIC_FEATURES in why and "encoder busy" in why
    node, why = silent_stage({}, {})
    assert node == "g1_bridge" and "no diagnostics" in why
    everything = {topic: 1 for topic in (contract.TOPIC_JOINT_STATES, contract.TOPIC_CAMERA, contract.TOPIC_CLIP,
                                         contract.TOPIC_FEATURES, contract.TOPIC_ACTION_CHUNK)}
    assert silent_stage(everything, {}) is None


def test_the_observer_counts_clips_from_camera_buffers_diagnostics():
    """The demo's observer does not receive the 1.5 MB clips: camera_buffer's clips_total says how
    many went out, counted as arrivals (rates, the report's table, the silent-stage hint)."""
    from types import SimpleNamespace

    from neon_ros.ros.monitor import DemoMonitor

    obs = SimpleNamespace(record=DemoRecord(t0_ns=0), _clips_seen=0)
    for t, total in ((1.0, "9"), (2.0, "19"), (3.0, "29"), (3.5, "not a number"), (4.0, "29")):
        DemoMonitor._count_clips(obs, {"clips_total": total}, t)
    rec = obs.record
    assert rec.counts[contract.TOPIC_CLIP] == 29
    assert rec.rate(contract.TOPIC_CLIP, 3.2) == 10.0  # the last 2 s: 10 + 10 clips
    assert rec.rate_between(contract.TOPIC_CLIP, 1.5, 3.5) == 10.0
