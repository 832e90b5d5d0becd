"""`body_bridge`: the head's base velocity and hand closures -> safety -> Unitree's loco service and Dex3 hands.

Subscribes /neon/loco_cmd (geometry_msgs/TwistStamped: linear.x = vx, linear.y = vy m/s,
angular.z = yaw rate rad/s, in the base frame) and /neon/grip_cmd (sensor_msgs/JointState:
names left_hand / right_hand, position = closure, 0 open .. 1 closed), both published by
action_head from the same prediction as each chunk; /neon/estop (Bool, a level, latched as in
g1_bridge: transient-local and volatile, on a node and DDS participant of its own); serves
/body_bridge/enable (SetBool). All decisions are in neon_ros.bridge.body (plain Python): whole
messages refused with a reason (non-finite, stale or future stamps, unknown hands), velocities
clamped (``max_vx``, ``max_vy``, ``max_yaw_rate``) and rate-limited (``max_*_acceleration``),
closures clamped to [0, 1] and rate-limited (``max_grip_rate``), hand targets inside the Dex3
ranges by ``hand_margin``.

Loco (mode ``arm_sdk`` only: g1_bridge drives the arms, Unitree's controller the legs): a thread
calls the loco service's SetVelocity (unitree_sdk2py LocoClient, service "sport", over the
Unitree DDS on ``network_interface`` / ``dds_domain_id``) ``loco_rate`` times a second while the
velocity is not zero, each call holding for ``velocity_duration`` s, so a silent or dead bridge's
robot stops by itself within it. Disabled, e-stopped, or without a command for
``command_timeout`` s: zero velocity at once, sent until the service confirms it; an e-stop wakes
the thread at once and, with ``estop_damp``, also damps the legs (SetFsmId 1: the robot falls
unless it hangs on a gantry). In mode ``lowcmd`` loco commands are refused and /diagnostics says why.

Hands: a thread writes a unitree_hg HandCmd_ (7 Dex3 motors, position targets with ``hand_kp`` /
``hand_kd``; the message has no CRC) to rt/dex3/left/cmd and rt/dex3/right/cmd ``hand_rate``
times a second for each hand ever commanded; e-stopped or stale, each hand holds the closure it
reached; disabled, no hand command is sent.

With ``autostart`` false (the default, for a real robot) nothing is sent until /body_bridge/enable
is called with data: true; an e-stop is latched in this process and on disk (its own file under
``state_dir``), and only an explicit enable after the release resets it.

    ros2 run neon_ros body_bridge --ros-args -p network_interface:=eth0 -p dds_domain_id:=0
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from neon_ros import contract, unitree
from neon_ros.bridge.body import (
    HANDS,
    LOCO_REFUSED_IN_LOWCMD,
    MODES,
    REASONS,
    BodyConfig,
    BodyController,
    CommandRejectedError,
    hand_positions,
)
from neon_ros.bridge.latch import EstopLatchFile, latch_path
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable

ESTOP_NODE = "body_bridge_estop"  # the node (and thread) of the e-stop subscriptions

PARAMETERS: ParamTable = {
    "mode": Param("arm_sdk", f"g1_bridge's mode ({' | '.join(MODES)}): arm_sdk sends loco commands to Unitree's "
                             "loco service; lowcmd refuses them (the bridge drives the legs)"),
    "network_interface": Param("lo", "network interface of the robot's DDS (lo, eth0, ...)"),
    "dds_domain_id": Param(1, "Unitree DDS domain (0 on the robot)", (0, 232)),
    "autostart": Param(False, "enable at start (simulation only; a robot waits for /body_bridge/enable)"),
    "autostart_delay": Param(1.0, "s after start before autostart enables (a latched e-stop arrives first)",
                             (0.0, 10.0)),
    "max_vx": Param(0.3, "m/s: fastest forward / backward velocity sent", (0.0, 1.0)),
    "max_vy": Param(0.2, "m/s: fastest sideways velocity sent", (0.0, 0.5)),
    "max_yaw_rate": Param(0.5, "rad/s: fastest turn sent", (0.0, 1.5)),
    "max_linear_acceleration": Param(0.5, "m/s^2: fastest change of vx and vy toward a command", (0.01, 5.0)),
    "max_yaw_acceleration": Param(1.0, "rad/s^2: fastest change of the yaw rate toward a command", (0.01, 10.0)),
    "command_timeout": Param(0.3, "s without a loco (grip) command -> zero velocity (hands hold)", (0.05, 5.0)),
    "max_input_age": Param(1.0, "s a command's header stamp may lie in the past", (0.05, 10.0)),
    "future_tolerance": Param(0.05, "s a command's header stamp may lie in the future", (0.0, 0.9)),
    "loco_rate": Param(10.0, "Hz of SetVelocity calls while the velocity is not zero", (1.0, 50.0)),
    "velocity_duration": Param(0.5, "s each SetVelocity holds on the robot (a silent bridge's base stops "
                                    "within it); more than 1 / loco_rate", (0.05, 5.0)),
    "rpc_timeout": Param(0.2, "s to wait for the loco service's answer", (0.01, 5.0)),
    "estop_damp": Param(False, "an e-stop also damps the legs (SetFsmId 1: the robot falls unless on a gantry); "
                               "false: zero velocity, Unitree's controller keeps balance"),
    "hand_rate": Param(50.0, "Hz of HandCmd_ per commanded hand", (1.0, 500.0)),
    "max_grip_rate": Param(1.0, "closure per s (1: open to closed in one second)", (0.05, 10.0)),
    "hand_kp": Param(1.5, "Dex3 position gain per motor", (0.0, 5.0)),
    "hand_kd": Param(0.1, "Dex3 velocity gain per motor", (0.0, 1.0)),
    "hand_margin": Param(0.05, "rad kept inside each Dex3 motor range", (0.0, 0.3)),
    "state_dir": Param("", "directory of the e-stop latch that survives restarts "
                           "('' = $XDG_STATE_HOME/neon or ~/.local/state/neon)"),
    "diagnostics_rate": Param(2.0, "Hz of /diagnostics", (0.1, 50.0)),
}


def _mono_ns() -> int:
    return time.monotonic_ns()


class BodyBridge(Node):
    def __init__(self) -> None:
        super().__init__("body_bridge")
        p = rosutil.declare_parameters(self, PARAMETERS)
        if p["velocity_duration"] * p["loco_rate"] <= 1.0:
            raise ValueError(f"body_bridge: velocity_duration ({p['velocity_duration']} s) must exceed the period "
                             f"of loco_rate ({1.0 / p['loco_rate']:.3f} s), or the base stops between two calls")
        self.cfg = BodyConfig(
            mode=p["mode"], max_velocity=(p["max_vx"], p["max_vy"], p["max_yaw_rate"]),
            max_acceleration=(p["max_linear_acceleration"],) * 2 + (p["max_yaw_acceleration"],),
            command_timeout=p["command_timeout"], max_input_age=p["max_input_age"],
            future_tolerance=p["future_tolerance"], max_grip_rate=p["max_grip_rate"], hand_margin=p["hand_margin"],
            estop_damp=p["estop_damp"])
        self.ctl = BodyController(self.cfg)
        self.lock = threading.Lock()  # self.ctl and the counters below
        iface, domain = p["network_interface"], p["dds_domain_id"]
        self.latch = EstopLatchFile(latch_path(p["state_dir"], iface, domain, owner="body_bridge"))
        if self.latch.is_set():
            self.ctl.estop_latched = True
            self.get_logger().warning(f"e-stop latched by a previous run ({self.latch.path}): nothing moves until "
                                      "the e-stop is released and /body_bridge/enable is called")
        self.rejects = {f"{kind}_{r}": 0 for kind in ("loco", "grip") for r in REASONS
                        if (kind, r) != ("grip", "mode")}  # the mode refuses loco only
        self.accepted = {"loco": 0, "grip": 0}
        self.last_reject = ""
        self.loco_calls, self.loco_errors, self.last_code, self.damp_calls = 0, 0, 0, 0
        self.hand_msgs = dict.fromkeys(HANDS, 0)
        self.velocity_duration, self.kp, self.kd = p["velocity_duration"], p["hand_kp"], p["hand_kd"]
        self.stop = threading.Event()
        self.wake = threading.Event()

        # The e-stop first (latched publishers need time to be discovered), on a participant of its own.
        self._estop = rosutil.SideNode(ESTOP_NODE, self.get_namespace())
        for qos in (rosutil.LATCHED_QOS, rosutil.COMMAND_QOS):
            self._estop.node.create_subscription(Bool, contract.TOPIC_ESTOP, self._on_estop, qos)
        unitree.init_channels(domain, iface)
        self.loco = unitree.loco_client(p["rpc_timeout"]) if self.cfg.mode == "arm_sdk" else None
        hand_type = unitree.hand_cmd_type()
        self.hand_pubs = {side: unitree.publisher(topic, hand_type)
                          for side, topic in zip(HANDS, contract.DDS_DEX3_CMD, strict=True)}
        self.hand_cmds = {side: unitree.new_hand_cmd() for side in HANDS}
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.create_subscription(TwistStamped, contract.TOPIC_LOCO_CMD, self._on_loco, rosutil.COMMAND_QOS)
        self.create_subscription(JointState, contract.TOPIC_GRIP_CMD, self._on_grip, rosutil.COMMAND_QOS)
        self.create_service(SetBool, contract.SERVICE_BODY_ENABLE, self._on_enable)
        self.create_timer(1.0 / p["diagnostics_rate"], self._publish_diagnostics)
        if p["autostart"]:
            self._autostart_timer = self.create_timer(max(p["autostart_delay"], 0.01), self._autostart)
        self.threads = [threading.Thread(target=self._hand_loop, args=(1.0 / p["hand_rate"],), name="body_hands",
                                         daemon=True)]
        if self.loco is not None:
            self.threads.append(threading.Thread(target=self._loco_loop, args=(1.0 / p["loco_rate"],),
                                                 name="body_loco", daemon=True))
        for t in self.threads:
            t.start()
        self._estop.start()
        self.get_logger().info(
            f"body_bridge: mode={self.cfg.mode} on DDS domain {domain} ({iface}), autostart={p['autostart']}; loco "
            + (f"at {p['loco_rate']:g} Hz, |v| <= {self.cfg.max_velocity}" if self.loco is not None else "refused")
            + f"; hands at {p['hand_rate']:g} Hz on {', '.join(contract.DDS_DEX3_CMD)}")

    # --- inputs ---------------------------------------------------------------------------------
    def _refuse(self, kind: str, e: CommandRejectedError) -> None:
        key = f"{kind}_{e.reason}"
        self.rejects[key] += 1
        self.last_reject = f"{kind} {e}"
        self.get_logger().warning(f"refused {kind} ({self.rejects[key]} x {e.reason}): {e.detail}",
                                  throttle_duration_sec=2.0)

    def _on_loco(self, msg: TwistStamped) -> None:
        now, received = rosutil.now_ns(self), _mono_ns()
        with self.lock:
            try:
                try:
                    v = msgs.twist_to_loco(msg)
                except msgs.MessageError as e:
                    raise CommandRejectedError("malformed", str(e)) from None
                self.ctl.loco_command(v, msgs.stamp_to_ns(msg.header.stamp), now, received)
            except CommandRejectedError as e:
                self._refuse("loco", e)
                return
            self.accepted["loco"] += 1

    def _on_grip(self, msg: JointState) -> None:
        now, received = rosutil.now_ns(self), _mono_ns()
        with self.lock:
            try:
                self.ctl.grip_command(list(msg.name), np.asarray(msg.position, dtype=np.float64),
                                      msgs.stamp_to_ns(msg.header.stamp), now, received)
            except CommandRejectedError as e:
                self._refuse("grip", e)
                return
            self.accepted["grip"] += 1

    def _on_estop(self, msg: Bool) -> None:
        with self.lock:
            self.ctl.set_estop(bool(msg.data))
        self.wake.set()  # the loco thread sends the zero velocity now
        if msg.data:
            try:
                if not self.latch.is_set():
                    self.latch.set()
            except OSError as e:  # the latch still holds in this process
                self.get_logger().error(f"could not persist the e-stop latch to {self.latch.path}: {e}")
        self.get_logger().warning("E-STOP: zero velocity, hands hold; latched until released and /body_bridge/enable"
                                  if msg.data else "e-stop released; the latch holds until /body_bridge/enable",
                                  throttle_duration_sec=1.0)

    def _on_enable(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        with self.lock:
            ok, text = self.ctl.enable(bool(req.data))
            if ok and req.data:
                try:
                    self.latch.clear()
                except OSError as e:  # fail-safe: a later body_bridge still refuses autostart
                    self.get_logger().error(f"could not remove the e-stop latch {self.latch.path}: {e}")
        self.wake.set()
        res.success, res.message = ok, text
        self.get_logger().info(f"enable({req.data}): {text}")
        return res

    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        with self.lock:
            if self.ctl.estop_latched or self.ctl.estop_asserted:
                text = "autostart cancelled (e-stop latched); call /body_bridge/enable"
            else:
                text = "autostart: " + self.ctl.enable(True)[1]
        self.get_logger().info(text)

    # --- outputs --------------------------------------------------------------------------------
    def _loco_loop(self, period: float) -> None:
        while not self.stop.is_set():
            self.wake.wait(period)
            self.wake.clear()
            if self.stop.is_set():
                return
            with self.lock:
                v = self.ctl.loco_step(_mono_ns())
                damp = self.ctl.damp_pending
            if v is not None:
                code = self.loco.SetVelocity(float(v[0]), float(v[1]), float(v[2]), self.velocity_duration)
                with self.lock:
                    self.ctl.loco_sent(v, code)
                    self.loco_calls += 1
                    self.loco_errors += int(code != 0)
                    self.last_code = code
                if code != 0:
                    self.get_logger().error(f"loco SetVelocity{tuple(round(float(x), 3) for x in v)} answered "
                                            f"{code}", throttle_duration_sec=2.0)
            if damp:
                code = self.loco.SetFsmId(unitree.LOCO_FSM_DAMP)
                with self.lock:
                    self.ctl.damp_sent(code)
                    self.damp_calls += 1
                    self.last_code = code
                self.get_logger().warning(f"e-stop: loco damp answered {code}", throttle_duration_sec=1.0)

    def _hand_loop(self, period: float) -> None:
        deadline = time.monotonic()
        while not self.stop.is_set():
            deadline += period
            if self.stop.wait(max(deadline - time.monotonic(), 0.0)):
                return
            deadline = max(deadline, time.monotonic() - period)  # behind: skip, do not bunch
            with self.lock:
                closures = self.ctl.hand_step(_mono_ns())
            for i, side in enumerate(HANDS):
                c = closures.get(contract.GRIP_NAMES[i])
                if c is None:
                    continue
                q = hand_positions(side, c, self.cfg.hand_margin)
                if not np.all(np.isfinite(q)):  # the controller never yields one; a motor never gets one
                    raise RuntimeError(f"non-finite {side} hand target {q.tolist()}")
                self.hand_pubs[side].Write(unitree.fill_hand_cmd(self.hand_cmds[side], q, self.kp, self.kd))
                with self.lock:
                    self.hand_msgs[side] += 1

    def _publish_diagnostics(self) -> None:
        with self.lock:
            status = self.ctl.status(_mono_ns())
            values = {**status, **self.rejects, **{f"accepted_{k}": v for k, v in self.accepted.items()},
                      "loco_calls": self.loco_calls, "loco_errors": self.loco_errors, "damp_calls": self.damp_calls,
                      "last_rpc_code": self.last_code, "last_reject": self.last_reject,
                      **{f"hand_cmds_{side}": n for side, n in self.hand_msgs.items()}}
            loco_refused = sum(v for k, v in self.rejects.items() if k == "loco_mode")
        dead = [t.name for t in self.threads if not t.is_alive()]
        if dead:
            level, text = "error", f"thread stopped: {', '.join(dead)}"
        elif self.cfg.mode != "arm_sdk":
            level, text = ("warn" if loco_refused else "ok"), f"loco refused ({loco_refused} commands): " \
                                                             f"{LOCO_REFUSED_IN_LOWCMD}"
        elif values["last_rpc_code"] != 0:
            level, text = "error", f"loco service answered {values['last_rpc_code']}"
        elif status["blocked"] != "no":
            level, text = "warn", f"{status['blocked']}: zero velocity, hands hold"
        else:
            level, text = "ok", "enabled"
        values["loco"] = "refused: " + LOCO_REFUSED_IN_LOWCMD if self.cfg.mode != "arm_sdk" else "arm_sdk"
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), [
            msgs.diagnostic_status("body_bridge", level, text, values)]))

    def on_shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        for t in self.threads:
            t.join(timeout=2.0)
        self._estop.shutdown()


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(BodyBridge, "body_bridge", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    sys.exit(main())
