"""`recorder`: raw subscriptions -> rosbag2 (mcap) bags, for machines without `ros2 bag`.

Subscribes to each requested topic as soon as a publisher appears (type and QoS taken
from the publishers, like rosbag2), receives serialized CDR bytes (``raw=True``, no
deserialization) and hands them to neon_ros.data.recording.SplitBagWriter, which splits by
size or duration. Logs per-topic counts every ``status_period`` s and on shutdown, and
publishes them on /diagnostics.

    ros2 run neon_ros recorder --ros-args -p output:=bags/session1 -p max_bag_seconds:=60.0
"""

from __future__ import annotations

import importlib
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from neon_ros import contract
from neon_ros.data import recording
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable

PARAMETERS: ParamTable = {
    "output": Param("", "directory for the bags ('' = bags/session-<time>)"),
    "topics": Param(list(contract.TRAINING_TOPICS), "topics to record"),
    "storage": Param("mcap", "rosbag2 storage: mcap or sqlite3"),
    "max_bag_bytes": Param(0, "split after this many bytes (0 = never)", (0, 1 << 40)),
    "max_bag_seconds": Param(0.0, "split after this many s (0 = never)", (0.0, 1e7)),
    "queue_depth": Param(1000, "subscription queue per topic (deep: bursts must not drop)", (1, 100000)),
    "status_period": Param(1.0, "s between count logs", (0.1, 3600.0)),
}


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class (ImportError names the package)."""
    pkg, _, name = recording.normalize_type(msgtype).split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class Recorder(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.depth = p["queue_depth"]
        self.config = recording.RecorderConfig(
            output=p["output"] or recording.default_output(), topics=p["topics"], storage=p["storage"],
            max_bag_bytes=int(p["max_bag_bytes"]), max_bag_seconds=float(p["max_bag_seconds"]))
        self.writer = recording.SplitBagWriter(self.config)
        self._subs: dict[str, object] = {}
        self._diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS,
                                               rosutil.STATE_QOS)
        self._started = time.monotonic()
        self._last_total = -1
        self.create_timer(0.2, self._discover)
        self.create_timer(float(p["status_period"]), self._status)
        self.get_logger().info(f"recording {len(self.config.topics)} topics to {self.config.output}")

    def _discover(self) -> None:
        for topic in self.config.topics:
            if topic in self._subs:
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            msgtype = infos[0].topic_type
            try:
                self.writer.add_topic(topic, msgtype)
                cls = message_class(msgtype)
            except (ValueError, ImportError, AttributeError) as exc:
                self.get_logger().error(f"cannot record {topic}: {exc}")
                self._subs[topic] = None
                continue
            reliable, latched = recording.choose_qos(
                (i.qos_profile.reliability == ReliabilityPolicy.RELIABLE,
                 i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL) for i in infos)
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=self.depth,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
            self._subs[topic] = self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True)
            self.get_logger().info(f"recording {topic} ({msgtype}, "
                                   f"{'reliable' if reliable else 'best effort'}{', latched' if latched else ''})")

    def _on_message(self, topic: str, data: bytes) -> None:
        self.writer.write(topic, data, rosutil.now_ns(self))

    def _status(self) -> None:
        stats = self.writer.stats
        if stats.total != self._last_total:
            self._last_total = stats.total
            counts = " ".join(f"{t}={n}" for t, n in stats.counts.items())
            self.get_logger().info(f"RECORDED total={stats.total} bags={len(stats.bags)} {counts}")
        values = {t: n for t, n in stats.counts.items()} | {"bytes": stats.bytes, "bags": len(stats.bags)}
        status = msgs.diagnostic_status("recorder", "ok", f"{stats.total} messages", values)
        self._diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [status]))

    def on_shutdown(self) -> None:
        stats = self.writer.close()
        counts = " ".join(f"{t}={n}" for t, n in stats.counts.items())
        # rclpy is already shut down here (rosout is gone): plain stdout.
        print(f"RECORDED total={stats.total} bags={len(stats.bags)} {counts} (closed)", flush=True)


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(Recorder, "recorder", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    raise SystemExit(main())
