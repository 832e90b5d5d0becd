"""A session recorded by the real `recorder` -> `neon-ros bag2dataset` -> the G1 teleop adapter.

The session (two spoken instructions, split into several bags mid-instruction) becomes
one episode bag per instruction; neon_ros.data's g1_rosbag adapter reads every episode
with the right instruction, camera clips and joint-delta targets of the recorded motion.
"""

import json
import re
import subprocess

import numpy as np
import pytest
from support import Proc, python, ros_env, script, wait_for

from neon_ros import contract
from neon_ros.data.registry import SourceConfig, open_source
from neon_ros.tools import bag2dataset

SECONDS = 6.0
INSTRUCTIONS = ("pick up the red cup", "wave hello")


@pytest.mark.ros
@pytest.mark.timeout(150)
def test_recorded_session_feeds_the_g1_adapter(tmp_path):
    env = ros_env()
    session, dataset = tmp_path / "session", tmp_path / "dataset"
    rec_cmd = script("recorder") + ["--ros-args", "-p", f"output:={session}", "-p", "max_bag_seconds:=2.5",
                                     "-p", "status_period:=0.5"]
    with Proc(rec_cmd, env, tmp_path / "recorder.log") as rec:
        pub = Proc(python("-m", "test.peers.demo_session_publisher", "--seconds", str(SECONDS), "--size", "96",
                          "--instructions", "|".join(INSTRUCTIONS)), env, tmp_path / "pub.log")
        assert wait_for(lambda: not pub.alive(), SECONDS + 60), pub.output()
        sent = json.loads(re.search(r"SENT (\{.*\})", pub.output()).group(1))
        wait_for(lambda: f"total={sum(sent.values())}" in rec.output(), 20)
        rec.stop()
    assert len(list(session.iterdir())) >= 2  # split across the instruction boundary

    out = subprocess.run(script("neon-ros") + ["bag2dataset", str(session), str(dataset)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    index = json.loads((dataset / "index.json").read_text())
    assert [e["instruction"] for e in index["episodes"]] == list(INSTRUCTIONS)
    assert sum(e["counts"][contract.TOPIC_JOINT_STATES] for e in index["episodes"]) == sent[contract.TOPIC_JOINT_STATES]
    assert all(e["kind"] == "policy" for e in index["episodes"])

    src = open_source(SourceConfig(name="g1", type="g1_rosbag", path=dataset, stride=0.5, clip_frames=4,
                                   max_side=64))
    samples = list(src.samples())
    assert not src.skipped, src.skipped
    by_episode = {}
    for s in samples:
        by_episode.setdefault(s.episode, set()).add(s.instruction)
    assert sorted(by_episode) == sorted(e["name"] for e in index["episodes"])
    assert [next(iter(by_episode[e["name"]])) for e in index["episodes"]] == list(INSTRUCTIONS)
    s = samples[len(samples) // 4]
    assert s.embodiment == "g1" and s.frames.shape[0] == 4 and s.frames.dtype == np.uint8
    assert s.masks["joint_delta"].any() and np.abs(s.targets["joint_delta"]).max() > 1e-3  # the arm moved


def test_plan_segments_cuts_at_instructions():
    segs = bag2dataset.plan_segments([(10, "a"), (20, "a"), (30, "b")], 0, 40, default_instruction="idle")
    assert [(s.instruction, s.start_ns, s.end_ns, s.synthetic) for s in segs] == [
        ("idle", 0, 10, True), ("a", 10, 30, False), ("b", 30, 41, False)]
    assert segs[1].name == "episode_0001_a"
    assert [s.instruction for s in bag2dataset.plan_segments([(5, "x")], 0, 9)] == ["x"]


def test_session_without_instruction(tmp_path):
    """No /neon/instruction in the bag: a clear error, or one episode with --default-instruction."""
    import numpy as np
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from neon_ros.data import recording
    from neon_ros.ros import msgs

    session = tmp_path / "s"
    with recording.SplitBagWriter(recording.RecorderConfig(output=session)) as w:
        w.add_topic(contract.TOPIC_JOINT_STATES, "sensor_msgs/msg/JointState")
        w.add_topic(contract.TOPIC_CAMERA, "sensor_msgs/msg/Image")
        for i in range(300):
            t = i * 10_000_000
            w.write(contract.TOPIC_JOINT_STATES, serialize_message(msgs.joint_state(t, np.zeros(29))), t)
            if i % 3 == 0:
                img = Image(height=8, width=8, encoding="rgb8", step=24, data=bytes(192))
                w.write(contract.TOPIC_CAMERA, serialize_message(img), t)
    with pytest.raises(ValueError, match="default-instruction"):
        bag2dataset.convert(bag2dataset.Bag2DatasetConfig(session, tmp_path / "o1"), progress=False)
    index = bag2dataset.convert(bag2dataset.Bag2DatasetConfig(session, tmp_path / "o2",
                                                              default_instruction="stand still"), progress=False)
    assert [e["instruction"] for e in index["episodes"]] == ["stand still"]
    assert index["episodes"][0]["counts"][contract.TOPIC_INSTRUCTION] == 1  # written into the episode
    assert recording.count_messages(tmp_path / "o2")[contract.TOPIC_JOINT_STATES] == 300


def test_bad_inputs_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError):
        bag2dataset.Bag2DatasetConfig(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        bag2dataset.Bag2DatasetConfig(tmp_path, tmp_path / "full")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="metadata.yaml"):
        bag2dataset.convert(bag2dataset.Bag2DatasetConfig(tmp_path / "empty", tmp_path / "o"), progress=False)
