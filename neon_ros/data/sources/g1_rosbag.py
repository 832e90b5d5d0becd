"""G1 teleoperation / policy sessions recorded by this stack as rosbag2 (mcap or sqlite3).

``path`` is one bag folder (``metadata.yaml`` + ``*.mcap`` / ``*.db3``) or a folder of such
bags (searched recursively); each bag is one episode. Read with ``rosbags`` (pure Python,
no ROS install needed). Topics (names from :mod:`neon_ros.contract`):

- ``/joint_states`` (sensor_msgs/JointState): G1 joints matched by name -> proprioception,
  joint deltas and, through the G1 MJCF forward kinematics, both hands' relative motion;
- ``/camera/image_raw`` (sensor_msgs/Image, any encoding camera_buffer reads, decoded by the
  same ``runtime.image.image_to_rgb``): the clip before each anchor;
- ``/neon/instruction`` (std_msgs/String): the instruction in force at each moment;
- ``/neon/teleop/joint_trajectory`` and ``/neon/action_chunk``: counted per bag (the
  report says whether a bag is teleoperation or a policy run); the supervised motion is
  what the robot measurably did (``/joint_states``), which includes the safety layer's
  clamps, so the head learns motions the bridge will actually execute.

Options: ``min_instruction`` (default ``""``: samples before any instruction use it).
All times are the bag's receive stamps, which share one clock across topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neon_ros import contract
from neon_ros.data.episode import EpisodeData, episode_samples
from neon_ros.data.registry import Source
from neon_ros.data.robots import g1_hand_poses
from neon_ros.g1 import JOINT_INDEX, NUM_JOINTS, STANDING_POSE
from neon_ros.policy.schema import CorruptEpisodeError, Sample
from neon_ros.runtime.image import image_to_rgb


def find_bags(path: Path) -> list[Path]:
    if (path / "metadata.yaml").exists():
        return [path]
    return sorted(p.parent for p in path.rglob("metadata.yaml"))


class G1RosbagSource(Source):
    type_name = "g1_rosbag"

    def __init__(self, config):
        super().__init__(config)
        self.default_instruction = str(config.options.get("min_instruction", ""))
        self.kinds: dict[str, str] = {}

    def episodes(self) -> Iterator[str]:
        for bag in find_bags(self.path):
            yield str(bag.relative_to(self.path)) if bag != self.path else "."

    def read(self, ref: str) -> Iterator[Sample]:
        from rosbags.highlevel import AnyReader

        bag = self.path / ref
        stamps, rows, valid = [], [], np.zeros(NUM_JOINTS, bool)
        instr_t, instr_s = [], []
        counts = {contract.TOPIC_TELEOP: 0, contract.TOPIC_ACTION_CHUNK: 0}
        try:
            with AnyReader([bag]) as reader:
                conns = [c for c in reader.connections if c.topic in (
                    contract.TOPIC_JOINT_STATES, contract.TOPIC_INSTRUCTION, *counts)]
                for conn, t, raw in reader.messages(connections=conns):
                    if conn.topic in counts:
                        counts[conn.topic] += 1
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    if conn.topic == contract.TOPIC_INSTRUCTION:
                        instr_t.append(t * 1e-9)
                        instr_s.append(str(msg.data))
                        continue
                    q = STANDING_POSE.copy()
                    for name, pos in zip(msg.name, msg.position, strict=False):
                        if name in JOINT_INDEX:
                            q[JOINT_INDEX[name]] = pos
                            valid[JOINT_INDEX[name]] = True
                    stamps.append(t * 1e-9)
                    rows.append(q)
                image_conns = [c for c in reader.connections if c.topic == contract.TOPIC_CAMERA]
        except CorruptEpisodeError:
            raise
        except Exception as exc:  # rosbags raises several reader/deserializer error types
            raise CorruptEpisodeError(bag, f"unreadable rosbag2 ({type(exc).__name__}: {exc})") from exc
        if len(stamps) < 2 or not image_conns:
            raise CorruptEpisodeError(bag, f"needs >= 2 {contract.TOPIC_JOINT_STATES} messages and "
                                           f"{contract.TOPIC_CAMERA}; has {len(stamps)} and {len(image_conns)}")
        self.kinds[ref] = "teleop" if counts[contract.TOPIC_TELEOP] else (
            "policy" if counts[contract.TOPIC_ACTION_CHUNK] else "passive")
        stamps_arr = np.asarray(stamps)
        order = np.argsort(stamps_arr, kind="stable")
        keep = np.concatenate([[True], np.diff(stamps_arr[order]) > 0])
        t0 = stamps_arr[order][0]
        q = np.asarray(rows)[order][keep]
        ep = EpisodeData(
            source=self.name, episode=ref.replace("/", "_").strip("._") or bag.name, embodiment="g1",
            times=stamps_arr[order][keep] - t0, instruction=self._instruction(instr_t, instr_s, t0),
            frames=self._frames(bag, t0), g1_q=q, joint_valid=valid, ee_pose=g1_hand_poses(q))
        yield from episode_samples(ep, **self.episode_kwargs())

    def _instruction(self, times: list[float], texts: list[str], t0: float):
        if not texts:
            return self.default_instruction
        rel = np.asarray(times) - t0
        default = self.default_instruction

        def at(t: float) -> str:
            i = int(np.searchsorted(rel, t + 1e-6, side="right")) - 1
            return texts[i] if i >= 0 else (default or texts[0])

        return at

    @staticmethod
    def _frames(bag: Path, t0: float) -> Iterator[tuple[float, np.ndarray]]:
        from rosbags.highlevel import AnyReader

        try:
            with AnyReader([bag]) as reader:
                conns = [c for c in reader.connections if c.topic == contract.TOPIC_CAMERA]
                for conn, t, raw in reader.messages(connections=conns):
                    yield t * 1e-9 - t0, image_to_rgb(reader.deserialize(raw, conn.msgtype))
        except CorruptEpisodeError:
            raise
        except Exception as exc:
            raise CorruptEpisodeError(bag, f"unreadable camera stream ({type(exc).__name__}: {exc})") from exc
