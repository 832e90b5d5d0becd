"""The recorder under load loses no message, and its bags open in rosbags and in mcap's reader.

A peer publishes 30 fps 224x224 images + 500 Hz joint states + 20 Hz chunks + the latched
instruction for NEON_RECORDER_TEST_SECONDS (default 20 s, as the issue asks) to the real
`recorder` node (raw subscriptions, split every 7 s); the per-topic counts the peer sent
must equal the counts read back from every split bag by both readers.
"""

import json
import os
import re

import pytest
from support import Proc, python, ros_env, script, wait_for

from neon_ros import contract
from neon_ros.data import recording

pytestmark = pytest.mark.ros

SECONDS = float(os.environ.get("NEON_RECORDER_TEST_SECONDS", "20"))


@pytest.mark.timeout(SECONDS + 120)
def test_recorder_under_load_loses_nothing(tmp_path):
    env = ros_env()
    out = tmp_path / "session"
    rec_cmd = script("recorder") + ["--ros-args", "-p", f"output:={out}", "-p", "max_bag_seconds:=7.0",
                                     "-p", "status_period:=0.5"]
    with Proc(rec_cmd, env, tmp_path / "recorder.log") as rec:
        pub = Proc(python("-m", "test.peers.demo_session_publisher", "--seconds", str(SECONDS),
                          "--instructions", "pick up the red cup|wave hello"), env, tmp_path / "pub.log")
        assert wait_for(lambda: not pub.alive(), SECONDS + 60), pub.output()
        assert pub.popen.returncode == 0, pub.output() + rec.output()
        sent = json.loads(re.search(r"SENT (\{.*\})", pub.output()).group(1))
        total = sum(sent.values())

        def recorded() -> int:
            found = re.findall(r"RECORDED total=(\d+)", rec.output())
            return int(found[-1]) if found else 0

        wait_for(lambda: recorded() >= total, 30)
        assert rec.stop() == 0, rec.log_path.read_text()
    log = rec.log_path.read_text(errors="replace")
    assert "(closed)" in log, log
    by_rosbags = recording.count_messages(out)
    by_mcap = recording.count_messages_mcap(out)
    assert by_rosbags == sent, (sent, by_rosbags, log[-2000:])
    assert by_mcap == sent, (sent, by_mcap)
    # the load was reached: the peer sends what is due by its clock, and on a busy machine the last
    # few of 10,000 may fall past its end (CI: 9,995); what matters above is that none was lost
    assert sent[contract.TOPIC_JOINT_STATES] >= 0.99 * 500 * SECONDS, sent
    bags = recording.bag_dirs(out)
    assert len(bags) >= 2, bags  # split by duration
    assert all(list(b.glob("*.mcap")) for b in bags)


def test_split_by_size_and_qos_choice(tmp_path):
    """Unit test of the plain writer: size split, every piece readable, QoS rule."""
    import numpy as np
    from rclpy.serialization import serialize_message

    from neon_ros.ros import msgs

    cfg = recording.RecorderConfig(output=tmp_path, max_bag_bytes=50_000, storage="mcap")
    with recording.SplitBagWriter(cfg) as w:
        w.add_topic(contract.TOPIC_JOINT_STATES, "sensor_msgs/JointState")
        for i in range(300):
            w.write(contract.TOPIC_JOINT_STATES, serialize_message(msgs.joint_state(i, np.zeros(29))), i)
    assert len(w.stats.bags) > 2
    assert recording.count_messages(tmp_path) == {contract.TOPIC_JOINT_STATES: 300}
    assert recording.count_messages_mcap(tmp_path) == {contract.TOPIC_JOINT_STATES: 300}
    assert recording.choose_qos([(True, True), (True, False)]) == (True, False)
    assert recording.choose_qos([(False, False), (True, True)]) == (False, False)
    with pytest.raises(ValueError):
        recording.RecorderConfig(output=tmp_path, storage="bag")
    with pytest.raises(ValueError):
        w2 = recording.SplitBagWriter(recording.RecorderConfig(output=tmp_path / "x"))
        w2.add_topic("/foo", "no_such_msgs/msg/Thing")
