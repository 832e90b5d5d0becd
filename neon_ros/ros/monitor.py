"""The demo's observer node: watches every Neon topic and fills a DemoRecord.

It only listens (and, when speech recognition stays silent, publishes the typed task on
/neon/instruction as a fallback the report then mentions). Runs in the `neon-ros demo`
process on a background executor thread.

Clips are counted from camera_buffer's /diagnostics (``clips_total``), not received: a 1.5 MB
clip per frame taken only to be counted cost the observer and camera_buffer's DDS writer CPU
on the demo's two cores, and a best-effort subscriber that lost most of them showed 3 Hz
while 9.5 Hz went to the backbone.
"""

from __future__ import annotations

import threading

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.ros import msgs, rosutil
from neon_ros.runtime.image import FrameError, image_to_rgb
from neon_ros.tools.demo.record import DemoRecord

LEVEL_NAMES = {0: "ok", 1: "warn", 2: "error", 3: "stale"}
# The observer must not lose what it reports on, even when the laptop is busy: deep reliable queues.
OBSERVER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE)


class DemoMonitor(Node):
    def __init__(self, frame_period: float = 1.0, max_frames: int = 64) -> None:
        super().__init__("neon_demo_monitor")
        self.frame_period = frame_period
        self.max_frames = max_frames
        self.record = DemoRecord(t0_ns=rosutil.now_ns(self))
        self._last_frame_t = -1e9
        self._clips_seen = 0  # camera_buffer's clips_total at its last /diagnostics
        sub = self.create_subscription
        sub(Image, contract.TOPIC_CAMERA, self._on_camera, rosutil.SENSOR_QOS)
        sub(Image, contract.TOPIC_FEATURES, self._on_features, OBSERVER_QOS)
        sub(JointState, contract.TOPIC_JOINT_STATES, self._on_joint_state, OBSERVER_QOS)
        sub(JointTrajectory, contract.TOPIC_ACTION_CHUNK, self._on_chunk, OBSERVER_QOS)
        sub(JointTrajectory, contract.TOPIC_TELEOP, self._on_teleop, OBSERVER_QOS)
        sub(String, contract.TOPIC_INSTRUCTION, self._on_instruction, rosutil.LATCHED_QOS)
        sub(String, contract.TOPIC_NARRATION, self._on_narration, OBSERVER_QOS)
        sub(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, self._on_diagnostics, OBSERVER_QOS)
        self.instruction_pub = self.create_publisher(String, contract.TOPIC_INSTRUCTION, rosutil.LATCHED_QOS)
        self.enable_client = self.create_client(SetBool, contract.SERVICE_ENABLE)

    def now(self) -> float:
        return self.record.rel(rosutil.now_ns(self))

    def _count(self, topic: str) -> float:
        t = self.now()
        with self.record.lock:
            self.record.arrived(topic, t)
        return t

    def _on_camera(self, msg: Image) -> None:
        t = self._count(contract.TOPIC_CAMERA)
        if t - self._last_frame_t >= self.frame_period:
            try:
                frame = image_to_rgb(msg)
            except FrameError:
                return
            self._last_frame_t = t
            with self.record.lock:
                self.record.frames.append((t, frame))
                if len(self.record.frames) >= self.max_frames:  # keep the whole run: thin out, slow down
                    del self.record.frames[1::2]
                    self.frame_period *= 2

    def _on_features(self, msg: Image) -> None:
        self._count(contract.TOPIC_FEATURES)
        age_ms = (rosutil.now_ns(self) - msgs.stamp_to_ns(msg.header.stamp)) * 1e-6
        with self.record.lock:
            self.record.feature_latency_ms.append(age_ms)

    def _on_joint_state(self, msg: JointState) -> None:
        t = self._count(contract.TOPIC_JOINT_STATES)
        try:
            q, _ = msgs.joint_state_to_g1(msg)
        except msgs.MessageError:
            return
        with self.record.lock:
            self.record.js_t.append(self.record.rel(msgs.stamp_to_ns(msg.header.stamp)) if msg.header.stamp.sec
                                    else t)
            self.record.js_q.append(q)

    def _on_chunk(self, msg: JointTrajectory) -> None:
        now_ns = rosutil.now_ns(self)
        t = self._count(contract.TOPIC_ACTION_CHUNK)
        try:
            names, pos, _ = msgs.trajectory_to_arrays(msg)
        except msgs.MessageError:
            return
        if sorted(names) != sorted(g1.JOINT_NAMES):
            return
        order = [names.index(n) for n in g1.JOINT_NAMES]
        stamp_ns = msgs.stamp_to_ns(msg.header.stamp)
        with self.record.lock:
            r = self.record
            r.chunk_t.append(t)
            r.chunk_stamp.append(r.rel(stamp_ns))
            r.chunk_q.append(pos[:, order])
            r.chunk_latency_ms.append((now_ns - stamp_ns) * 1e-6)
            if r.live_since is None:
                r.live_since = t

    def _count_clips(self, values: dict[str, str], t: float) -> None:
        """The clips camera_buffer published since its last report, as arrivals at ``t`` (record locked)."""
        try:
            total = int(values.get("clips_total", ""))
        except ValueError:
            return
        for _ in range(max(0, total - self._clips_seen)):
            self.record.arrived(contract.TOPIC_CLIP, t)
        self._clips_seen = max(self._clips_seen, total)

    def _on_teleop(self, msg: JointTrajectory) -> None:
        t = self._count(contract.TOPIC_TELEOP)
        with self.record.lock:
            self.record.teleop_t.append(t)

    def _on_instruction(self, msg: String) -> None:
        t = self._count(contract.TOPIC_INSTRUCTION)
        with self.record.lock:
            self.record.instructions.append((t, msg.data))

    def _on_narration(self, msg: String) -> None:
        t = self._count(contract.TOPIC_NARRATION)
        with self.record.lock:
            self.record.narrations.append((t, msg.data))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        # the sender's stamp places state changes on the same clock as /joint_states
        stamp = msgs.stamp_to_ns(msg.header.stamp)
        t = self.record.rel(stamp) if stamp else self.now()
        with self.record.lock:
            for st in msg.status:
                values = msgs.diagnostic_values(st)
                self.record.diagnostics[st.name] = values
                level = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)
                self.record.diag_messages[st.name] = (LEVEL_NAMES.get(level, "?"), st.message)
                if st.name == "camera_buffer":
                    self._count_clips(values, t)
                if st.name == "g1_bridge":
                    state, source = values.get("state", "?"), values.get("source", "?")
                    if not self.record.bridge or self.record.bridge[-1][1:] != (state, source):
                        self.record.bridge.append((t, state, source))

    def publish_instruction(self, text: str) -> None:
        self.instruction_pub.publish(String(data=text))

    def request_enable(self) -> bool:
        """Ask the bridge to enable (asynchronously); False if the service is not there."""
        if not self.enable_client.service_is_ready():
            return False
        self.enable_client.call_async(SetBool.Request(data=True))
        return True


class MonitorThread:
    """rclpy init + the monitor spinning on its own thread; ``close`` shuts it down in order."""

    def __init__(self, **kwargs) -> None:
        rclpy.init()
        self.node = DemoMonitor(**kwargs)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, name="demo-monitor", daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races end the spin; the demo reports what it has
            pass

    @property
    def record(self) -> DemoRecord:
        return self.node.record

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown()
        self.thread.join(timeout=2.0)
