"""action_head: newest /neon/features + /joint_states -> /neon/action_chunk at 20 Hz.

A dedicated thread runs the control step. With ``schedule`` arrival (the default) it steps
at each new features' arrival and a period after the last step in between, skipping a step
that would run on old features just before new ones are due (runtime.step_schedule); with
``schedule`` grid, on absolute deadlines (t0 + k * 50 ms, never drifting with step time;
overruns skip deadlines instead of bunching them), recording the period error. Each step
acts only on fresh, compatible input (perception.gate): stale features, another backbone, the
wrong width, non-finite values or a missing joint state publish nothing and say why in
/diagnostics. A chunk carries the camera stamp of the features it came from. With ``ee_mode``
blend or replace, the head's predicted hand displacements become arm joint targets by IK
before the clamp (runtime.ee_targets).
The same prediction's locomotion and grip outputs, at the chunk point meant for now, go to
/neon/loco_cmd (TwistStamped: vx, vy, yaw rate) and /neon/grip_cmd (JointState: closure per hand)
for body_bridge. Hand paths (FK of the targets) go to /neon/markers,
and a short sentence goes to /neon/narration when the instruction or the phase changes.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from neon_ros import contract
from neon_ros.ros import markers, msgs, rosutil
from neon_ros.ros.params import Param, ParamTable, scheduling_params
from neon_ros.runtime import gate, narration
from neon_ros.runtime.control import HeadStep
from neon_ros.runtime.step_schedule import schedule_for
from neon_ros.runtime.timing import AbsoluteTicker, RateMeter, Window, flatten, set_fifo

SWITCH_INTERVAL = 0.0005  # s, GIL hand-over interval (Python's default is 5 ms)


PARAMETERS: ParamTable = {
    "checkpoint": Param("", "head checkpoint (JSON path, stem or directory) from neon-ros train; required"),
    "runtime": Param("torch", "inference runtime: torch | onnxruntime | onnxruntime_int8 (dynamic int8 weights; "
                     "exported and quantised once per checkpoint, or head_int8.onnx from neon-ros export) | "
                     "tensorrt (NVIDIA GPU with TensorRT; engine built once per checkpoint and GPU)"),
    "threads": Param(1, "compute threads of the head (0 = all cores)", (0, 64)),
    "max_feature_age": Param(0.0, "s: refuse features whose camera stamp is older (no chunk); 0 = the head's "
                             "backbone preset's expected_latency_s + 0.3 s (0.3 s if it declares none)", (0.0, 10.0)),
    "max_joint_state_age": Param(0.5, "s: refuse a joint state received longer ago", (0.01, 10.0)),
    "backbone_id": Param("", "accept features of this backbone id only ('' = the checkpoint's)"),
    "rate": Param(contract.CONTROL_RATE_HZ, "control steps per second, Hz, between features' arrivals (schedule "
                  "arrival) or on absolute deadlines (schedule grid)", (1.0, 200.0)),
    "schedule": Param("arrival", "when to step: arrival (at each new features' arrival and every 1/rate s "
                                 "between, waiting for features due within half a period) | grid (every 1/rate "
                                 "s on absolute deadlines, whatever the features' timing)"),
    "chunk_time_base": Param("now", "a chunk's point 0 is meant for: now (this step; how heads are trained) | "
                                    "camera (its camera stamp)"),
    "clamp_margin": Param(0.0, "rad kept away from every joint limit", (0.0, 0.5)),
    "ee_mode": Param("off", "the head's predicted hand displacements (gripper frame) move the arms by IK: off "
                            "(joint deltas only) | blend (arm joints mix joint_delta and IK targets by ee_weight) | "
                            "replace (arm joints from IK; a failed IK step keeps joint_delta's)"),
    "ee_weight": Param(0.5, "share of the IK targets in the arm joints when ee_mode is blend", (0.0, 1.0)),
    "marker_rate": Param(10.0, "Hz of /neon/markers, published off the control thread (0 = off)", (0.0, 50.0)),
    "narration": Param(True, "publish /neon/narration when the instruction or the phase changes"),
    "frame_id": Param("pelvis", "frame of /neon/action_chunk and /neon/markers"),
    "rt_priority": Param(0, "SCHED_FIFO priority of the whole node process (0 = normal; needs CAP_SYS_NICE)", (0, 99)),
    "diagnostics_period": Param(1.0, "s between /diagnostics messages", (0.1, 60.0)),
    **scheduling_params(),
}


class ActionHeadNode(Node):
    def __init__(self) -> None:
        super().__init__("action_head")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.scheduling = rosutil.apply_scheduling(p)  # before the node starts threads: they inherit it
        ckpt, runtime, threads, backbone_id = p["checkpoint"], p["runtime"], p["threads"], p["backbone_id"]
        max_age, max_js_age, margin = p["max_feature_age"], p["max_joint_state_age"], p["clamp_margin"]
        self.rate, self.narrate = p["rate"], p["narration"]
        self.frame_id, diag_period, self.rt_priority = p["frame_id"], p["diagnostics_period"], p["rt_priority"]
        from neon_ros.runtime.head import RUNTIMES, HeadRuntime
        from neon_ros.runtime.kinematics import G1Kinematics

        self.schedule = schedule_for(p["schedule"], 1.0 / self.rate)
        self.features_in = threading.Event()  # new features arrived: the schedule's next step changed
        if runtime not in RUNTIMES:
            raise ValueError(f"action_head: runtime must be one of {' | '.join(RUNTIMES)}, got {runtime!r}")
        self.rt_status = self.scheduling
        if not ckpt:
            raise ValueError("action_head: set the 'checkpoint' parameter to a head checkpoint (neon-ros train)")

        head = HeadRuntime(ckpt, runtime=runtime, threads=threads)
        if max_age == 0.0:  # a slow backbone's features arrive old: its declared latency sets the budget
            from neon_ros.backbones.registry import expected_latency

            max_age = gate.feature_age_budget(expected_latency(backbone_id or head.backbone_id))
        cfg = gate.GateConfig(backbone_id=backbone_id or head.backbone_id, feature_dim=head.feature_dim,
                              max_feature_age=max_age, max_joint_state_age=max_js_age)
        self.core = HeadStep(head, cfg, kinematics=G1Kinematics(), clamp_margin=margin,
                             time_base=p["chunk_time_base"], ee_mode=p["ee_mode"], ee_weight=p["ee_weight"])
        self.narrator = narration.Narrator()
        self.get_logger().info(f"head {ckpt} ({runtime}) for {cfg.backbone_id} width {cfg.feature_dim}; "
                               f"{self.rate:g} Hz ({p['schedule']}), max feature age {max_age * 1e3:.0f} ms, ee_mode {p['ee_mode']}")

        self.lock = threading.Lock()
        self.features: gate.Features | None = None
        self.joints: gate.JointInput | None = None
        self.instruction = ""
        self.bad_features = 0
        self.bad_joint_states = 0
        self.last_input_error = ""
        self.stop = threading.Event()
        self.period_err = Window(1000)
        self.lateness = Window(1000)
        self.step_gap = Window(1000)
        self.step_s = Window(1000)
        self.fk_s = Window(200)
        self.ik_s = Window(200)
        self.age_s = Window(1000)
        self.chunks_out = RateMeter()
        self._refused_seen = 0
        self.ticker: AbsoluteTicker | None = None

        self.chunk_pub = self.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
        self.loco_pub = self.create_publisher(TwistStamped, contract.TOPIC_LOCO_CMD, rosutil.COMMAND_QOS)
        self.grip_pub = self.create_publisher(JointState, contract.TOPIC_GRIP_CMD, rosutil.COMMAND_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, contract.TOPIC_MARKERS, rosutil.COMMAND_QOS)
        self.narration_pub = self.create_publisher(String, contract.TOPIC_NARRATION, rosutil.COMMAND_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.create_subscription(Image, contract.TOPIC_FEATURES, self.on_features, rosutil.COMMAND_QOS)
        self.create_subscription(JointState, contract.TOPIC_JOINT_STATES, self.on_joint_state, rosutil.SENSOR_QOS)
        self.create_subscription(String, contract.TOPIC_INSTRUCTION, self.on_instruction, rosutil.LATCHED_QOS)
        self.create_timer(diag_period, self.publish_diagnostics)
        self.latest_paths: tuple | None = None
        if p["marker_rate"] > 0:  # building a MarkerArray costs ms: keep it off the control thread
            self.create_timer(1.0 / p["marker_rate"], self.publish_markers)
        # The control thread, waking from its sleep, must not wait up to the default 5 ms for the
        # GIL held by the executor thread: hand the GIL over sooner (process-wide; the node owns it).
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.thread = threading.Thread(target=self.control_loop, name="control_20hz", daemon=True)
        self.thread.start()
        if self.rt_priority > 0:  # after the thread exists: new threads would not inherit it
            self.rt_status = set_fifo(self.rt_priority)

    # --- inputs (executor thread): parse, store the newest ------------------------------------
    def on_features(self, msg: Image) -> None:
        try:
            vec = msgs.image_to_features(msg)
        except msgs.MessageError as exc:
            self.bad_features += 1
            self.last_input_error = f"features refused: {exc}"
            return
        f = gate.Features(vec, msgs.stamp_to_ns(msg.header.stamp), msg.header.frame_id)
        age = (rosutil.now_ns(self) - f.stamp_ns) * 1e-9
        with self.lock:
            self.features = f
            if self.schedule is not None and self.schedule.features(time.monotonic(), age):
                self.features_in.set()
        self.age_s.add(age)

    def on_joint_state(self, msg: JointState) -> None:
        try:
            q, dq = msgs.joint_state_to_g1(msg)
        except (msgs.MessageError, IndexError, ValueError) as exc:
            self.bad_joint_states += 1
            self.last_input_error = f"joint state refused: {exc}"
            return
        j = gate.JointInput(q, dq, rosutil.now_ns(self))
        with self.lock:
            self.joints = j

    def on_instruction(self, msg: String) -> None:
        with self.lock:
            self.instruction = msg.data

    # --- the control thread --------------------------------------------------------------------
    def control_loop(self) -> None:
        wait = self.wait_grid if self.schedule is None else self.wait_arrival
        prev_wake = None
        while not self.stop.is_set():
            late = wait()
            if self.stop.is_set():
                return
            wake = time.monotonic()
            self.lateness.add(late)
            if prev_wake is not None:
                self.step_gap.add(wake - prev_wake)
                if self.ticker is not None:
                    self.period_err.add(abs((wake - prev_wake) - self.ticker.period))
            prev_wake = wake
            try:
                self.control_step()
            except Exception as exc:  # never let one bad step kill the loop
                if not rclpy.ok():
                    return
                self.core.gate.refuse(gate.Verdict(False, gate.HEAD_ERROR, f"{type(exc).__name__}: {exc}"))
                self.get_logger().error(f"control step failed: {exc}", throttle_duration_sec=2.0)

    def wait_grid(self) -> float:
        """Sleep to the next absolute deadline; its lateness (s)."""
        if self.ticker is None:
            self.ticker = AbsoluteTicker(1.0 / self.rate)
        return self.ticker.wait(self.stop.is_set)

    def wait_arrival(self, max_sleep: float = 0.1) -> float:
        """Sleep until new features arrive or the schedule's next step is due; the wake's lateness (s)."""
        sched = self.schedule
        while not self.stop.is_set():
            self.features_in.clear()  # before asking: features arriving after it wake the wait below
            with self.lock:
                due, after_wait = sched.next_step()
            remaining = due - time.monotonic()
            if remaining <= 0.0:
                break
            self.features_in.wait(min(remaining, max_sleep))
        now = time.monotonic()
        with self.lock:
            sched.stepped(now, after_wait)
        return max(0.0, now - due) if due != float("-inf") else 0.0

    def control_step(self) -> None:
        t0 = time.perf_counter()
        with self.lock:
            features, joints, instruction = self.features, self.joints, self.instruction
        res = self.core.step(features, joints, rosutil.now_ns(self), with_paths=True)
        if res.positions is None:
            return
        self.chunk_pub.publish(msgs.chunk_to_trajectory(res.positions, res.stamp_ns, frame_id=self.frame_id,
                                                       times=res.times))
        self.publish_body(res)
        self.step_s.add(time.perf_counter() - t0 - res.timings.get("fk", 0.0))
        self.fk_s.add(res.timings.get("fk", 0.0))
        if "ik" in res.timings:
            self.ik_s.add(res.timings["ik"])
        self.chunks_out.tick()
        if res.hand_paths is not None:
            with self.lock:
                self.latest_paths = (res.hand_paths, res.stamp_ns)
        if self.narrate:
            text = self.narrator.update(instruction, res.phase, time.monotonic())
            if text:
                self.narration_pub.publish(String(data=text))

    def publish_body(self, res) -> None:
        """The prediction's loco and grip outputs at the chunk point meant for now (the last one not after it)."""
        now = rosutil.now_ns(self)
        k = int(np.clip(np.searchsorted(res.times, (now - res.stamp_ns) / 1e9, side="right") - 1, 0, len(res.times) - 1))
        pred = res.prediction
        self.loco_pub.publish(msgs.loco_to_twist(pred.loco[k], res.stamp_ns, frame_id=self.frame_id))
        self.grip_pub.publish(msgs.grip_to_joint_state(pred.grip[k], res.stamp_ns))

    def publish_markers(self) -> None:
        with self.lock:
            latest, self.latest_paths = self.latest_paths, None
        if latest is not None:
            self.marker_pub.publish(markers.hand_path_markers(latest[0], latest[1], self.frame_id))

    # --- diagnostics / shutdown ---------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        st = self.core.gate.stats
        refused = sum(st.refused.values())
        new, self._refused_seen = refused - self._refused_seen, refused
        if new:
            level, message = "warn", f"no chunk for {new} steps: {st.last_refusal}"
        elif self.chunks_out.rate() == 0.0:
            level, message = "warn", "no chunks published"
        else:
            level, message = "ok", "chunks flowing"
        values = {
            "chunks_rate_hz": round(self.chunks_out.rate(), 2),
            "chunks_total": self.core.chunks,
            "accepted_steps": st.accepted,
            **{f"refused_{r}": st.refused.get(r, 0) for r in gate.REASONS},
            "last_refusal": st.last_refusal,
            "rt_status": self.rt_status,
            "missed_deadlines": self.ticker.missed if self.ticker else 0,
            "late_features_steps": self.schedule.late if self.schedule else 0,
            "bad_feature_msgs": self.bad_features,
            "bad_joint_state_msgs": self.bad_joint_states,
            "last_input_error": self.last_input_error,
            "clamped_targets": self.core.clamped_total,
            "ee_mode": self.core.ee_mode,
            "ee_fallbacks": self.core.ee_fallbacks_total,
            "narrations": self.narrator.spoken,
            "phase": self.narrator.phase,
            "backbone_id": self.core.gate.config.backbone_id,
            "feature_dim": self.core.gate.config.feature_dim,
            **flatten("period_error_ms", self.period_err.summary(1e3, 3)),
            **flatten("lateness_ms", self.lateness.summary(1e3, 3)),
            **flatten("step_gap_ms", self.step_gap.summary(1e3, 3)),
            **flatten("step_ms", self.step_s.summary(1e3, 3)),
            **flatten("fk_ms", self.fk_s.summary(1e3, 3)),
            **flatten("ik_ms", self.ik_s.summary(1e3, 3)),
            **flatten("feature_age_ms", self.age_s.summary(1e3, 1)),
        }
        status = msgs.diagnostic_status("action_head", level, message, values)
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [status]))

    def on_shutdown(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(ActionHeadNode, "action_head", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    raise SystemExit(main())
