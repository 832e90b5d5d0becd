"""The G1 teleoperation adapter reads rosbag2 bags (mcap and sqlite3) written with rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neon_ros import contract, g1
from neon_ros.data.registry import SourceConfig, open_source

ARM = list(g1.ARM_INDICES["right"])


def write_bag(path: Path, storage: str, seconds: float = 2.0, rate: float = 20.0) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    js_t, img_t = ts.types["sensor_msgs/msg/JointState"], ts.types["sensor_msgs/msg/Image"]
    str_t, hdr_t, time_t = ts.types["std_msgs/msg/String"], ts.types["std_msgs/msg/Header"], ts.types[
        "builtin_interfaces/msg/Time"]
    traj_t = ts.types["trajectory_msgs/msg/JointTrajectory"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        c_js = w.add_connection(contract.TOPIC_JOINT_STATES, js_t.__msgtype__, typestore=ts)
        c_img = w.add_connection(contract.TOPIC_CAMERA, img_t.__msgtype__, typestore=ts)
        c_txt = w.add_connection(contract.TOPIC_INSTRUCTION, str_t.__msgtype__, typestore=ts)
        c_tel = w.add_connection(contract.TOPIC_TELEOP, traj_t.__msgtype__, typestore=ts)
        t0 = 1_700_000_000_000_000_000
        for i in range(int(seconds * rate)):
            t = t0 + int(i * 1e9 / rate)
            header = hdr_t(stamp=time_t(sec=t // 10**9, nanosec=t % 10**9), frame_id="")
            q = g1.STANDING_POSE.copy()
            q[ARM[3]] += 0.2 * i / rate  # the right elbow bends at 0.2 rad/s
            names = [g1.JOINT_NAMES[j] for j in range(15, 29)]  # upper body only, as arm_sdk reports
            js = js_t(header=header, name=names, position=q[15:29], velocity=np.zeros(14), effort=np.zeros(14))
            w.write(c_js, t, ts.serialize_cdr(js, js_t.__msgtype__))
            img = np.full((24, 32, 3), i * 4 % 255, np.uint8)
            im = img_t(header=header, height=24, width=32, encoding="bgr8", is_bigendian=0, step=96,
                       data=img.reshape(-1))
            w.write(c_img, t + 1000, ts.serialize_cdr(im, img_t.__msgtype__))
            if i in (0, int(seconds * rate / 2)):
                text = "bend the right elbow" if i == 0 else "keep bending"
                w.write(c_txt, t + 2000, ts.serialize_cdr(str_t(data=text), str_t.__msgtype__))
            if i == 3:
                tr = traj_t(header=header, joint_names=names, points=[])
                w.write(c_tel, t + 3000, ts.serialize_cdr(tr, traj_t.__msgtype__))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_g1_rosbag_reads_a_bag_folder(tmp_path, storage):
    write_bag(tmp_path / "bags" / "session_a", storage)
    write_bag(tmp_path / "bags" / "session_b", storage, seconds=1.5)
    src = open_source(SourceConfig("teleop", "g1_rosbag", tmp_path / "bags", stride=0.25, clip_frames=4))
    samples = list(src.samples())
    assert {s.episode for s in samples} == {"session_a", "session_b"}
    s = samples[0]
    assert s.embodiment == "g1" and s.frames.shape == (4, 24, 32, 3)
    assert s.masks["joint_delta"].sum() == 14 and s.masks["joint_delta"][:15].sum() == 0
    assert s.targets["joint_delta"][10, ARM[3]] == pytest.approx(0.2 * 0.5, abs=2e-3)  # 500 ms ahead
    assert np.abs(s.targets["ee"][-1, 1, :3]).max() > 0.005  # the right hand moves (FK)
    texts = [x.instruction for x in samples if x.episode == "session_a"]
    assert texts[0] == "bend the right elbow" and texts[-1] == "keep bending"
    assert src.kinds == {"session_a": "teleop", "session_b": "teleop"} and not src.skipped


def test_g1_rosbag_corrupt_bag_is_skipped_with_its_name(tmp_path):
    write_bag(tmp_path / "good", "mcap", seconds=1.0)
    write_bag(tmp_path / "bad", "mcap", seconds=1.0)
    mcap = next((tmp_path / "bad").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:200])  # truncated mid-file
    src = open_source(SourceConfig("teleop", "g1_rosbag", tmp_path, stride=0.25))
    samples = list(src.samples())
    assert samples and {s.episode for s in samples} == {"good"}
    assert len(src.skipped) == 1 and "bad" in src.skipped[0].error


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_bag_images_decode_exactly_like_the_camera_topic(tmp_path, encoding):
    """Training (a bag read by g1_rosbag) and runtime (camera_buffer) see the same pixels."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    from sensor_msgs.msg import Image

    from neon_ros.data.sources.g1_rosbag import G1RosbagSource
    from neon_ros.runtime.image import image_to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    alpha = np.full((6, 5, 1), 255, np.uint8)
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.concatenate([rgb, alpha], axis=2),
              "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2), "mono8": rgb[..., :1]}[encoding]
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + 3), np.uint8)  # padded rows: step > width * channels
    rows[:, : w * c] = pixels.reshape(h, w * c)
    fields = {"height": h, "width": w, "encoding": encoding, "is_bigendian": 0, "step": rows.shape[1]}

    ts = get_typestore(Stores.ROS2_HUMBLE)
    img_t, hdr_t, time_t = (ts.types[f"{p}/msg/{n}"] for p, n in (
        ("sensor_msgs", "Image"), ("std_msgs", "Header"), ("builtin_interfaces", "Time")))
    with Writer(tmp_path / "bag", version=9) as writer:
        conn = writer.add_connection(contract.TOPIC_CAMERA, img_t.__msgtype__, typestore=ts)
        msg = img_t(header=hdr_t(stamp=time_t(sec=1, nanosec=0), frame_id=""), data=rows.reshape(-1), **fields)
        writer.write(conn, 10**9, ts.serialize_cdr(msg, img_t.__msgtype__))
    [(_, from_bag)] = list(G1RosbagSource._frames(tmp_path / "bag", 1.0))

    from_topic = image_to_rgb(Image(data=rows.tobytes(), **fields))  # camera_buffer's decoder
    expected = np.repeat(pixels, 3, axis=2) if encoding == "mono8" else rgb
    assert np.array_equal(from_bag, from_topic) and np.array_equal(from_topic, expected)
