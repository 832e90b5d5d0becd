"""Plain-Python core of the `recorder` node: serialized messages -> rosbag2 (mcap) files.

No rclpy here: the node hands over (topic, type, CDR bytes, receive time) and this module
writes them with the ``rosbags`` writer, starting a new bag when the current one reaches
``max_bag_bytes`` or ``max_bag_seconds``. Each split is a complete rosbag2 directory
(``<output>/<prefix>_0000``, ``_0001``, ...), so ``ros2 bag``, rosbags, mcap's reader and
Neon's data adapter (which takes one bag or a directory of bags) all read every piece.

QoS of the recorded topics is chosen like rosbag2 does: reliable only when every
publisher offers reliable, transient-local only when every publisher offers it (so the
latched instruction is recorded by a late-starting recorder).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from neon_ros import contract

# Message type of every contract topic (DESIGN.md section 3), as rosbag2 spells them.
TOPIC_TYPES: dict[str, str] = {
    contract.TOPIC_CAMERA: "sensor_msgs/msg/Image",
    contract.TOPIC_CLIP: "sensor_msgs/msg/Image",
    contract.TOPIC_INSTRUCTION: "std_msgs/msg/String",
    contract.TOPIC_FEATURES: "sensor_msgs/msg/Image",
    contract.TOPIC_JOINT_STATES: "sensor_msgs/msg/JointState",
    contract.TOPIC_ACTION_CHUNK: "trajectory_msgs/msg/JointTrajectory",
    contract.TOPIC_TELEOP: "trajectory_msgs/msg/JointTrajectory",
    contract.TOPIC_ESTOP: "std_msgs/msg/Bool",
    contract.TOPIC_NARRATION: "std_msgs/msg/String",
    contract.TOPIC_MARKERS: "visualization_msgs/msg/MarkerArray",
    contract.TOPIC_DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass
class RecorderConfig:
    """What to record and where.

    output: directory that receives one rosbag2 directory per split.
    topics: topic names to record (default: contract.TRAINING_TOPICS).
    prefix: name of each bag directory before its split number.
    storage: "mcap" (default, what `ros2 bag record -s mcap` writes) or "sqlite3".
    max_bag_bytes: start a new bag after this many payload bytes (0 = no size split).
    max_bag_seconds: start a new bag after this many seconds of receive time (0 = no time split).
    """

    output: Path
    topics: Sequence[str] = contract.TRAINING_TOPICS
    prefix: str = "neon"
    storage: str = "mcap"
    max_bag_bytes: int = 0
    max_bag_seconds: float = 0.0
    store: str = "ros2_kilted"

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.topics = tuple(self.topics)
        if not self.topics:
            raise ValueError("RecorderConfig.topics is empty: name at least one topic to record")
        bad = [t for t in self.topics if not t.startswith("/")]
        if bad:
            raise ValueError(f"topic names must be absolute (start with '/'): {bad}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if self.max_bag_bytes < 0 or self.max_bag_seconds < 0:
            raise ValueError("max_bag_bytes and max_bag_seconds must be >= 0 (0 = never split)")
        if not self.prefix or "/" in self.prefix:
            raise ValueError(f"prefix must be a plain name, got {self.prefix!r}")
        try:
            Stores(self.store)
        except ValueError:
            raise ValueError(f"unknown type store {self.store!r}; one of {[s.value for s in Stores]}") from None


@dataclass
class BagStats:
    """Counts of what the writer stored (per topic, over all splits)."""

    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    bags: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def choose_qos(offered: Iterable[tuple[bool, bool]]) -> tuple[bool, bool]:
    """(reliable, transient_local) for a subscription that matches all publishers.

    ``offered`` holds one (reliable, transient_local) pair per publisher. A reliable
    subscription does not match a best-effort publisher, and a transient-local one does
    not match a volatile publisher, so each is chosen only if every publisher offers it.
    """
    offered = list(offered)
    if not offered:
        return True, False
    return all(r for r, _ in offered), all(t for _, t in offered)


class SplitBagWriter:
    """Writes serialized messages into a sequence of rosbag2 directories.

    Use as a context manager or call close(); ``write`` takes CDR bytes as received
    from a raw ROS 2 subscription (no deserialization on the hot path).
    """

    def __init__(self, config: RecorderConfig):
        self.config = config
        self.typestore = get_typestore(Stores(config.store))
        self.stats = BagStats(counts={t: 0 for t in config.topics})
        self._types: dict[str, str] = {}
        self._writer: Writer | None = None
        self._connections: dict = {}
        self._bag_start_ns = 0
        self._bag_bytes = 0
        self._index = 0
        config.output.mkdir(parents=True, exist_ok=True)

    # -- topics ------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic's type (rosbag2 spelling 'pkg/msg/Name'); ValueError if unknown."""
        msgtype = normalize_type(msgtype)
        if msgtype not in self.typestore.fielddefs:
            raise ValueError(f"message type {msgtype} of {topic} is not in the {self.config.store} type store")
        self._types[topic] = msgtype
        self.stats.counts.setdefault(topic, 0)

    # -- writing -----------------------------------------------------------------------
    def write(self, topic: str, data: bytes, stamp_ns: int) -> None:
        if topic not in self._types:
            raise KeyError(f"topic {topic} was not added (add_topic first)")
        if self._writer is None or self._should_split(stamp_ns):
            self._open(stamp_ns)
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, self._types[topic], typestore=self.typestore)
            self._connections[topic] = conn
        self._writer.write(conn, int(stamp_ns), bytes(data))
        self._bag_bytes += len(data)
        self.stats.bytes += len(data)
        self.stats.counts[topic] = self.stats.counts.get(topic, 0) + 1

    def _should_split(self, stamp_ns: int) -> bool:
        cfg = self.config
        if cfg.max_bag_bytes and self._bag_bytes >= cfg.max_bag_bytes:
            return True
        return bool(cfg.max_bag_seconds and stamp_ns - self._bag_start_ns >= cfg.max_bag_seconds * 1e9)

    def _open(self, stamp_ns: int) -> None:
        self._close_current()
        path = self.config.output / f"{self.config.prefix}_{self._index:04d}"
        if path.exists():
            raise FileExistsError(f"{path} already exists: choose another output directory or prefix")
        self._index += 1
        self._writer = Writer(path, version=9, storage_plugin=STORAGES[self.config.storage])
        self._writer.open()
        self._connections = {}
        self._bag_start_ns = int(stamp_ns)
        self._bag_bytes = 0
        self.stats.bags.append(path)

    def _close_current(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> BagStats:
        self._close_current()
        return self.stats

    def __enter__(self) -> SplitBagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def normalize_type(msgtype: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' -> 'sensor_msgs/msg/Image'."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3:
        return msgtype
    raise ValueError(f"not a ROS 2 message type name: {msgtype!r}")


def default_output(root: Path | str = "bags") -> Path:
    """A fresh session directory under ``root`` named by the local time."""
    return Path(root) / time.strftime("session-%Y%m%d-%H%M%S")


def bag_dirs(path: Path | str) -> list[Path]:
    """The rosbag2 directories at ``path``: itself if it is one, else its sub-directories in name order."""
    path = Path(path)
    if (path / "metadata.yaml").is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a rosbag2 directory nor a directory of them")
    return sorted(p for p in path.iterdir() if (p / "metadata.yaml").is_file())


def count_messages(path: Path | str) -> dict[str, int]:
    """Messages per topic over one bag or a directory of bags, read back with rosbags."""
    from rosbags.rosbag2 import Reader

    counts: dict[str, int] = {}
    for bag in bag_dirs(path):
        with Reader(bag) as reader:
            for conn, _, _ in reader.messages():
                counts[conn.topic] = counts.get(conn.topic, 0) + 1
    return counts


def count_messages_mcap(path: Path | str) -> dict[str, int]:
    """Messages per topic over the .mcap files at ``path``, decoded with mcap's own ROS 2 reader."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    counts: dict[str, int] = {}
    for bag in bag_dirs(path):
        for f in sorted(bag.glob("*.mcap")):
            with open(f, "rb") as fh:
                reader = make_reader(fh, decoder_factories=[DecoderFactory()])
                for _schema, channel, _msg, _decoded in reader.iter_decoded_messages():
                    counts[channel.topic] = counts.get(channel.topic, 0) + 1
    return counts
