"""`g1_bridge`: action chunks / teleop -> safety layer -> unitree_hg LowCmd_ every 2 ms.

Subscribes /neon/action_chunk and /neon/teleop/joint_trajectory (JointTrajectory, command
QoS; a teleop message with no points releases teleop's joints to the policy) and
/neon/estop (Bool, a level: true asserts, false releases; subscribed twice, transient-local
so a restarted bridge sees a latched e-stop, and volatile so any publisher matches, both on
a node of their own, ``g1_bridge_estop``, in its own rclpy context (DDS participant: a
command flood neither fills its receive queue) and spun by its own executor thread (nor
delays its callback): the callback records the level and wakes the 500 Hz thread, which
applies it at once); serves /g1_bridge/enable (SetBool) and /g1_bridge/damp
(Trigger); reads rt/lowstate and publishes /joint_states (29 names, G1 order) and
/diagnostics; writes rt/lowcmd (mode ``lowcmd``) or rt/arm_sdk (mode ``arm_sdk``) from a
dedicated 500 Hz thread (neon_ros.bridge.loop). All decisions are in neon_ros.bridge
(plain Python); this file only converts messages and wires callbacks.

Disabled means no torque and, after at most a short burst, nothing written. In lowcmd mode
a bridge disabled after it powered the motors sends an "off" burst (every motor mode 0,
kp = kd = tau = 0, controller.OFF_BURST cycles) and then writes nothing: Unitree's motion
service may own the motors, and any LowCmd_ would fight it. In arm_sdk mode disabling and
damping both hand the upper body back to Unitree's motion service: the blend weight ramps
to 0 at the last target (over ``enable_ramp``), then nothing is sent. In lowcmd mode every
enable (the service and autostart) first asks Unitree's MotionSwitcher
(neon_ros.bridge.motion_switcher) and is refused while a motion mode owns the motors or
when it gives no answer. With ``autostart`` false (the default, for a real robot) nothing
moves until /g1_bridge/enable is called with data: true. Autostart waits until every
/neon/estop publisher in the graph has been matched for ``autostart_delay`` (so a latched
e-stop arrives first); while it knows of no e-stop publisher at all it waits
DISCOVERY_WAITS x ``autostart_delay`` from its start, since on a busy machine discovering a
latched publisher can take longer than one delay. It never clears an e-stop latch or a
fault; enable is refused while the e-stop is asserted. Ages and watchdogs use the
monotonic clock; ROS time only checks the header stamps of incoming trajectories.

The e-stop latch also lives on disk (neon_ros.bridge.latch, under ``state_dir``, one file
per Unitree DDS interface and domain): written atomically when an e-stop is asserted, read
at start before anything can enable, removed only by an explicit /g1_bridge/enable that
resets the latch. A bridge restarted after an e-stop (kill -9, crash) therefore stays
disabled even if the e-stop publisher is gone or the level was released meanwhile.

After each cycle the 500 Hz thread writes a liveness heartbeat (rt/neon/bridge_heartbeat,
neon_ros.bridge.heartbeat) on the robot's DDS; if it stops (this process dies or hangs),
bridge_watchdog (its own process) takes over with this bridge's damping.

    ros2 run neon_ros g1_bridge --ros-args -p mode:=lowcmd -p autostart:=true
"""

from __future__ import annotations

import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1, unitree
from neon_ros.bridge.controller import TELEOP_LOSS, Controller, ControllerConfig
from neon_ros.bridge.gravity import GravityModel
from neon_ros.bridge.latch import EstopLatchFile, latch_path
from neon_ros.bridge.loop import BridgeLoop
from neon_ros.bridge.motion_switcher import CHECK_TIMEOUT, motion_mode_refusal
from neon_ros.bridge.safety import REASONS, InputRejectedError, SafetyConfig, validate_trajectory
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable, scheduling_params
from neon_ros.runtime.timing import PeriodicThread, freeze_heap, set_fifo

DISCOVERY_WAITS = 3  # autostart_delays from start before "no e-stop publisher" is believed

PARAMETERS: ParamTable = {
    "mode": Param("arm_sdk", "lowcmd (all 29 joints: simulation or gantry) | arm_sdk (waist + arms)"),
    "network_interface": Param("lo", "network interface of the robot's DDS (lo, eth0, ...)"),
    "dds_domain_id": Param(1, "Unitree DDS domain (0 on the robot)", (0, 232)),
    "autostart": Param(False, "enable at start (simulation only; a robot waits for the service)"),
    "autostart_delay": Param(1.0, "s every e-stop publisher must be matched before autostart", (0.0, 10.0)),
    "command_timeout": Param(0.5, "s without chunk/teleop -> hold", (0.01, 10.0)),
    "damp_timeout": Param(2.0, "s without chunk/teleop -> damping (latched)", (0.02, 60.0)),
    "max_command_rate": Param(200.0, "chunk + teleop messages taken per second at most (a flood beyond it "
                                     "is dropped in DDS, newest kept)", (20.0, 2000.0)),
    "teleop_timeout": Param(0.3, "s teleop overrides after its last message", (0.01, 10.0)),
    "teleop_loss": Param("hold", f"after teleop stops: {' | '.join(TELEOP_LOSS)} (hold: until released)"),
    "handback_time": Param(1.0, "s fade from teleop back to the policy", (0.0, 10.0)),
    "torque_grace": Param(0.2, "s kp * following error (or tau_est) may exceed the torque limit", (0.0, 2.0)),
    "enable_ramp": Param(1.0, "s kp (and arm_sdk weight) ramp after enable", (0.0, 10.0)),
    "chunk_blend": Param(0.1, "s cross-fade between successive chunks", (0.0, 2.0)),
    "lowstate_timeout": Param(0.1, "s after which a LowState is stale", (0.005, 10.0)),
    "damping_kd": Param(2.0, "N m s/rad per joint while damping", (0.01, 20.0)),
    "max_joint_velocity": Param(1.5, "rad/s: fastest a commanded target moves", (0.01, 5.0)),
    "limit_margin": Param(0.05, "rad kept free inside each joint range", (0.0, 0.5)),
    "future_tolerance": Param(0.05, "s a stamp may lie in the future", (0.0, 1.0)),
    "max_input_age": Param(0.5, "s after its last point a trajectory is stale", (0.01, 10.0)),
    "joint_state_rate": Param(100.0, "Hz of /joint_states", (1.0, 500.0)),
    "diagnostics_rate": Param(2.0, "Hz of /diagnostics", (0.1, 50.0)),
    "check_lowstate_crc": Param(True, "drop LowState_ messages with a wrong CRC"),
    "gravity_compensation": Param(False, "add the G1 model's gravity torque of the measured pose as feed-forward "
                                         "(what the simulated demonstrations were executed with)"),
    "rt_priority": Param(0, "SCHED_FIFO priority of the bridge's threads (0 = normal; needs CAP_SYS_NICE)", (0, 99)),
    "state_dir": Param("", "directory of the e-stop latch that survives restarts "
                           "('' = $XDG_STATE_HOME/neon or ~/.local/state/neon)"),
    "command_dds_nice": Param(10, "nice value of the DDS threads receiving chunks and teleop (their own participant): "
                                  "a flood on those topics yields the CPU to the 500 Hz loop and the e-stop "
                                  "(0 = as the rest of the bridge)", (0, 19)),
    **scheduling_params(slice_us=100.0),  # at rt_priority 0: a waking cycle preempts a busy process
}


class G1Bridge(Node):
    def __init__(self) -> None:
        super().__init__("g1_bridge")
        p = rosutil.declare_parameters(self, PARAMETERS)
        mode, iface, domain, rt_priority = p["mode"], p["network_interface"], p["dds_domain_id"], p["rt_priority"]
        safety = SafetyConfig(limit_margin=p["limit_margin"], max_velocity=p["max_joint_velocity"],
                              future_tolerance=p["future_tolerance"], max_input_age=p["max_input_age"])
        self.cfg = ControllerConfig(
            mode=mode, command_timeout=p["command_timeout"], damp_timeout=p["damp_timeout"],
            teleop_timeout=p["teleop_timeout"], teleop_loss=p["teleop_loss"], handback_time=p["handback_time"],
            torque_grace=p["torque_grace"], enable_ramp=p["enable_ramp"],
            chunk_blend=p["chunk_blend"], lowstate_timeout=p["lowstate_timeout"], damping_kd=p["damping_kd"],
            safety=safety,
        )

        self.controller = Controller(self.cfg)
        # The e-stop latch on disk, read before anything can enable (neon_ros.bridge.latch).
        self.latch = EstopLatchFile(latch_path(p["state_dir"], iface, domain))
        self._latch_lock = threading.Lock()  # the file and _latch_on_disk: e-stop callback, enable, /diagnostics
        self._latch_on_disk = self.latch.is_set()
        if self._latch_on_disk:
            self.controller.restore_estop_latch()
            self.get_logger().warning(f"e-stop latched by a previous run ({self.latch.path}): nothing moves until "
                                      "the e-stop is released and /g1_bridge/enable is called")
        self.rejects = dict.fromkeys(REASONS, 0)
        self.accepted = {"chunk": 0, "teleop": 0}
        # Real-time before the DDS endpoints and executor threads exist, so they inherit it.
        if rt_priority > 0:
            rt_status = set_fifo(rt_priority, whole_process=False, inherit=True)
        else:  # every thread (the DDS ones of the main participant too); those created later inherit it
            rt_status = rosutil.apply_scheduling(p)
        # The e-stop first: autostart waits until every e-stop publisher is matched, and a
        # participant that joins late can take 1-2 s (Fast DDS, measured) to discover one, so
        # it joins before the slow DDS and RPC set-up below. On a node of its own, spun by its
        # own executor thread (its callback never waits for this node's executor, however many
        # commands and timers queue there), in an rclpy context of its own: its own DDS
        # participant, whose receive queue a command flood does not fill. (Measured: with the
        # e-stop reader in this node's participant, an e-stop sent amid a 6,000-message flood
        # from the flooding participant arrived 1.2-3.1 s late in 2 of 4 trials, as if lost and
        # resent at the writer's next reliability heartbeat, 3 s in Fast DDS; from its own
        # participant, 4 of 4 arrived in 8-43 ms.) The context takes the process's ROS
        # arguments (its SROS2 --enclave is the participant's identity); the node takes none (a
        # launch file's __node:=g1_bridge would rename it after this node). Its thread starts
        # last: no callback runs before the loop exists.
        self._estop = rosutil.SideNode(contract.BRIDGE_ESTOP_NODE, self.get_namespace())
        self._estop_subs = [self._estop.node.create_subscription(Bool, contract.TOPIC_ESTOP, self._on_estop, qos)
                            for qos in (rosutil.LATCHED_QOS, rosutil.COMMAND_QOS)]
        self.loop = BridgeLoop(self.controller, iface, domain, check_lowstate_crc=p["check_lowstate_crc"],
                               rt_priority=rt_priority,
                               gravity=GravityModel() if p["gravity_compensation"] else None)
        self.loop.open()
        if rt_priority <= 0:
            self.loop.rt_status = rt_status
        # lowcmd: Unitree's MotionSwitcher must report no motion mode before every enable
        self.motion_switcher = unitree.motion_switcher_client(CHECK_TIMEOUT) if mode == "lowcmd" else None
        enabling = MutuallyExclusiveCallbackGroup()  # the check waits for a DDS RPC: not in the timers' group
        self.js_pub = self.create_publisher(JointState, contract.TOPIC_JOINT_STATES, rosutil.STATE_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        # Chunks and teleop on a node, thread and participant of their own, taken at most
        # max_command_rate per second (the thread sleeps between two; DDS keeps the newest
        # COMMAND_QOS.depth): a flood of commands costs this process a bounded share of a core
        # and never spins the main executor, so the 500 Hz loop and the e-stop keep their time.
        self._command_period = 1.0 / p["max_command_rate"]
        self._command_done = 0.0
        self._commands = rosutil.SideNode(contract.BRIDGE_COMMAND_NODE, self.get_namespace(),
                                          dds_nice=p["command_dds_nice"])
        for kind, topic in (("chunk", contract.TOPIC_ACTION_CHUNK), ("teleop", contract.TOPIC_TELEOP)):
            self._commands.node.create_subscription(JointTrajectory, topic,
                                                    lambda m, k=kind: self._on_command(k, m), rosutil.COMMAND_QOS)
        self.create_service(SetBool, contract.SERVICE_ENABLE, self._on_enable, callback_group=enabling)
        self.create_service(Trigger, contract.SERVICE_DAMP, self._on_damp)
        # /joint_states on a thread of its own, not an rclpy timer: at 100 Hz the executor took ~8%
        # of a core and woke this process ~1,100 times a second, each wake-up a GIL hand-over the
        # 500 Hz loop could wait for (measured: the process 51% -> 35% with the timer at 20 Hz).
        self._joint_states = PeriodicThread(1.0 / p["joint_state_rate"], self._publish_joint_states,
                                            "g1_bridge_joint_states", self._joint_state_error)
        self.create_timer(1.0 / p["diagnostics_rate"], self._publish_diagnostics)
        self._autostart = bool(p["autostart"])
        self._autostart_delay_ns = int(p["autostart_delay"] * 1e9)
        self._estop_matched_since: int | None = None
        self._started_ns = self.loop.clock()
        if self._autostart:
            self._autostart_timer = self.create_timer(0.05, self._try_autostart, callback_group=enabling)
        self._frozen_objects = freeze_heap()  # no full GC pause walks the setup's heap while the loop runs
        self.loop.start()
        self._estop.start()
        self._commands.start()
        self._joint_states.start()
        self.get_logger().info(
            f"g1_bridge: mode={mode} on {self.loop.builder.topic} (DDS domain {domain}, {iface}), "
            f"autostart={self._autostart}, command_timeout={self.cfg.command_timeout}s, "
            f"damp_timeout={self.cfg.damp_timeout}s, max_joint_velocity={safety.max_velocity} rad/s; "
            f"scheduling: {rt_status}")

    # --- inputs ---------------------------------------------------------------------------
    def _on_command(self, kind: str, msg: JointTrajectory) -> None:
        """The command thread: one chunk or teleop message, then a pause to the next slot."""
        self._on_trajectory(kind, msg)
        wait = self._command_done + self._command_period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._command_done = time.monotonic()

    def _on_trajectory(self, kind: str, msg: JointTrajectory) -> None:
        now, received = rosutil.now_ns(self), self.loop.clock()
        if kind == "teleop" and not msg.points:
            with self.loop.lock:
                self.controller.release_teleop()
            self.get_logger().info("teleop released: its joints return to the policy", throttle_duration_sec=1.0)
            return
        try:
            try:
                names, pos, times = msgs.trajectory_to_arrays(msg)
            except msgs.MessageError as e:
                raise InputRejectedError("malformed", str(e)) from None
            traj = validate_trajectory(kind, names, pos, times, msgs.stamp_to_ns(msg.header.stamp), now,
                                       self.cfg.safety, received)
        except InputRejectedError as e:
            self.rejects[e.reason] += 1
            self.get_logger().warning(f"rejected {kind} ({self.rejects[e.reason]} x {e.reason}): {e.detail}",
                                   throttle_duration_sec=1.0)
            return
        self.accepted[kind] += 1
        with self.loop.lock:
            self.controller.push(traj, received)

    def _on_estop(self, msg: Bool) -> None:
        self.loop.set_estop(bool(msg.data))  # first: the loop damps on its next cycle
        if msg.data:
            self._persist_latch()
        self.get_logger().warning("E-STOP: damping, latched until released and /g1_bridge/enable" if msg.data
                                  else "e-stop released; the latch holds until /g1_bridge/enable",
                                  throttle_duration_sec=1.0)

    def _motion_refusal(self) -> str:
        """lowcmd: why the MotionSwitcher forbids enabling now ('' = go ahead); arm_sdk: ''.

        Not asked when enabling changes nothing (already active) or the controller refuses on its
        own (an asserted e-stop, no fresh LowState): the answer would not matter, and the refusal
        then names the real reason at once.
        """
        if self.motion_switcher is None:
            return ""
        with self.loop.lock:
            self.loop.sync_estop()
            if (self.controller.state == "active" or self.controller.estop_asserted
                    or not self.controller.fresh(self.loop.latest, self.loop.clock())):
                return ""
        return motion_mode_refusal(self.motion_switcher)

    def _on_enable(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        refusal = self._motion_refusal() if req.data else ""
        if refusal:
            res.success, res.message = False, refusal
            self.get_logger().error(f"enable(True): {refusal}")
            return res
        # The latch lock across the reset and the file's removal: /diagnostics (another executor
        # thread) never reports a reset latch whose file is still on disk.
        with self._latch_lock:
            with self.loop.lock:
                self.loop.sync_estop()
                ok, text = self.controller.enable(bool(req.data), self.loop.latest, self.loop.clock())
            if ok and req.data:
                self._clear_latch()
        res.success, res.message = ok, text
        self.get_logger().info(f"enable({req.data}): {text}")
        return res

    def _on_damp(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.loop.lock:
            self.controller.damp("damp_service")
            state = self.controller.state
        res.success, res.message = True, f"state: {state}"
        self.get_logger().warning("damp requested: damping, latched until /g1_bridge/enable")
        return res

    def _try_autostart(self) -> None:
        now = self.loop.clock()
        # the volatile subscription matches every publisher (a latched one matches both)
        matched = self._estop_subs[1].get_publisher_count() >= self.count_publishers(contract.TOPIC_ESTOP)
        if not matched:
            self._estop_matched_since = None
            return
        if self._estop_matched_since is None:
            self._estop_matched_since = now
        if now - self._estop_matched_since < self._autostart_delay_ns:
            return
        if (self._estop_subs[1].get_publisher_count() == 0
                and now - self._started_ns < DISCOVERY_WAITS * self._autostart_delay_ns):
            return  # no e-stop publisher known yet: give discovery longer before trusting "none"
        refusal = self._motion_refusal()  # ('' without a fresh LowState: enable refuses, the timer retries)
        if refusal:
            self._autostart_timer.cancel()
            self.get_logger().error(f"autostart cancelled ({refusal}); call /g1_bridge/enable")
            return
        with self.loop.lock:
            self.loop.sync_estop()
            ok, text = self.controller.enable(True, self.loop.latest, self.loop.clock(), reset=False)
            blocked = self.controller.estop_latched or bool(self.controller.fault)
        if ok or blocked:
            self._autostart_timer.cancel()
            self.get_logger().info("autostart: enabled from the measured pose" if ok else
                                   f"autostart cancelled ({text}); call /g1_bridge/enable")

    # --- the e-stop latch on disk -------------------------------------------------------------
    def _persist_latch(self) -> None:
        with self._latch_lock:
            if self._latch_on_disk:
                return
            try:
                self.latch.set()
                self._latch_on_disk = True
            except OSError as e:  # the latch still holds in this process
                self.get_logger().error(f"could not persist the e-stop latch to {self.latch.path}: {e}",
                                        throttle_duration_sec=5.0)

    def _clear_latch(self) -> None:
        """After an explicit enable (``_latch_lock`` held): remove the file, unless an e-stop came in meanwhile."""
        if not self._latch_on_disk or self.loop.estop_pending or self.controller.estop_latched:
            return
        try:
            self.latch.clear()
            self._latch_on_disk = False
            self.get_logger().info(f"e-stop latch reset by /g1_bridge/enable ({self.latch.path} removed)")
        except OSError as e:  # fail-safe: a later bridge still refuses autostart
            self.get_logger().error(f"could not remove the e-stop latch {self.latch.path}: {e}")

    # --- outputs ---------------------------------------------------------------------------
    def _publish_joint_states(self) -> None:
        with self.loop.lock:
            meas = self.loop.latest
        if meas is not None:
            self.js_pub.publish(msgs.joint_state(meas.stamp_ns, meas.q, meas.dq, meas.tau, g1.JOINT_NAMES))

    def _joint_state_error(self, exc: BaseException) -> None:
        if not self.context.ok():  # shutting down (Ctrl-C ends the context before on_shutdown stops the thread)
            return
        self.get_logger().error(f"/joint_states not published: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        # The latch file is being written or removed (an fsync may take a while): skip this one
        # rather than wait or report the controller and the file out of step.
        if not self._latch_lock.acquire(blocking=False):
            return
        try:
            now = self.loop.clock()
            with self.loop.lock:
                status = self.controller.status(now)
                meas = self.loop.latest
            on_disk = self._latch_on_disk
        finally:
            self._latch_lock.release()
        age = (now - meas.received_ns) / 1e9 if meas is not None else float("inf")
        values = {**status, **{f"reject_{k}": v for k, v in self.rejects.items()},
                  **{f"accepted_{k}": v for k, v in self.accepted.items()}, **self.loop.counts,
                  **{k: round(v, 4) for k, v in self.loop.timing().items()}, "lowstate_age_s": round(age, 4),
                  "rt_status": self.loop.rt_status, "gc_frozen_objects": self._frozen_objects,
                  "estop_latch_on_disk": on_disk, "pid": os.getpid(),
                  "command_dds": f"{len(self._commands.dds_threads)} threads, {self._commands.dds_nice}"}
        rejected = sum(self.rejects.values())
        level = "ok"
        if status["state"] == "damping" or status["fault"] or age > self.cfg.lowstate_timeout:
            level = "error"
        elif rejected or status["source"] == "hold" or status["torque_limited"] or status["estop_state"] != "clear":
            level = "warn"
        text = f"{status['state']} ({status['source']}{', ' + status['damp_reason'] if status['damp_reason'] else ''})"
        if status["fault"] and not status["damp_reason"].startswith("fault"):
            text += f", fault: {status['fault']}"
        stamp = rosutil.now_ns(self)
        self.diag_pub.publish(msgs.diagnostic_array(stamp, [msgs.diagnostic_status("g1_bridge", level, text, values)]))

    def on_shutdown(self) -> None:
        self._joint_states.stop()
        self._commands.shutdown()
        self._estop.shutdown()
        self.loop.stop()


def main(args: list[str] | None = None) -> int:
    # 2 executor threads: the timers/damp service and enabling (whose MotionSwitcher check may wait
    # up to CHECK_ATTEMPTS x CHECK_TIMEOUT for a DDS RPC) never wait for each other (the e-stop and
    # the commands have threads of their own).
    return rosutil.node_main(G1Bridge, "g1_bridge", __doc__, PARAMETERS, args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
