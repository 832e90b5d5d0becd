"""Drives body_bridge against sim_g1 over ROS 2 (the bridge talks to the sim over the Unitree DDS).

usage: python -m test.peers.body_scenario arm_sdk|lowcmd

Publishes /neon/loco_cmd and /neon/grip_cmd as action_head does, /neon/estop as an operator,
calls /body_bridge/enable, and watches /diagnostics of body_bridge and of the simulator's loco
service ("sim_g1: base") and Dex3 command monitor ("sim_g1: hands"). Prints one ``RESULT {json}``.
"""

import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from neon_ros.runtime.timing import PeriodicThread
from test.peers.bridge_scenario import run_peer

STATUSES = ("body_bridge", "sim_g1: base", "sim_g1: hands")


class BodyScenario(Node):
    def __init__(self):
        super().__init__("body_scenario")
        self.lock = threading.Lock()
        self.diag: dict[str, dict[str, str]] = {}
        self.messages: dict[str, str] = {}
        self.loco = None  # (vx, vy, wz) published at 20 Hz while set
        self.grip = None  # (left, right) closures published at 20 Hz while set
        self.loco_pub = self.create_publisher(TwistStamped, contract.TOPIC_LOCO_CMD, rosutil.COMMAND_QOS)
        self.grip_pub = self.create_publisher(JointState, contract.TOPIC_GRIP_CMD, rosutil.COMMAND_QOS)
        self.estop_pub = self.create_publisher(Bool, contract.TOPIC_ESTOP, rosutil.LATCHED_QOS)
        self.enable_cli = self.create_client(SetBool, contract.SERVICE_BODY_ENABLE)
        self.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, self._on_diag, rosutil.STATE_QOS)
        self.commands = PeriodicThread(0.05, self._publish, "body_scenario_commands")  # as bridge_scenario's
        self.commands.start()

    def close(self) -> None:
        self.commands.stop()

    def _on_diag(self, m: DiagnosticArray) -> None:
        with self.lock:
            for s in m.status:
                if s.name in STATUSES:
                    self.diag[s.name] = msgs.diagnostic_values(s)
                    self.messages[s.name] = s.message

    def _publish(self) -> None:
        now = rosutil.now_ns(self)
        with self.lock:
            loco, grip = self.loco, self.grip
        if loco is not None:
            self.loco_pub.publish(msgs.loco_to_twist(loco, now))
        if grip is not None:
            self.grip_pub.publish(msgs.grip_to_joint_state(grip, now))

    def values(self, name: str) -> dict[str, str]:
        with self.lock:
            return dict(self.diag.get(name, {}))

    def message(self, name: str) -> str:
        with self.lock:
            return self.messages.get(name, "")

    def set(self, loco=None, grip=None) -> None:
        with self.lock:
            self.loco, self.grip = loco, grip

    def wait(self, name: str, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.values(name)
            if v and pred(v):
                return True
            time.sleep(0.05)
        return False

    def enable(self, on: bool) -> list:
        assert self.enable_cli.wait_for_service(30.0), "no /body_bridge/enable"
        fut = self.enable_cli.call_async(SetBool.Request(data=on))
        deadline = time.monotonic() + 30.0
        while not fut.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return [bool(fut.result().success), fut.result().message] if fut.done() else [False, "timeout"]


def base(node: BodyScenario) -> dict[str, float]:
    v = node.values("sim_g1: base")
    return {k: float(v[k]) for k in ("base_x", "base_y", "base_yaw", "cmd_vx", "cmd_yaw_rate", "velocity_calls",
                                     "velocity_ignored", "fsm_id")}


def body(node: BodyScenario) -> dict[str, str]:
    return node.values("body_bridge")


def arm_sdk(node: BodyScenario) -> dict:
    r: dict = {}
    r["ready"] = node.wait("body_bridge", lambda v: True, 60) and node.wait("sim_g1: base", lambda v: True, 60)
    # disabled: commands are taken but nothing reaches the loco service or the hands
    node.set(loco=(1.0, 0.0, 2.0), grip=(1.0, 0.0))
    time.sleep(1.5)
    r["before_enable"] = base(node)
    r["hands_before_enable"] = node.values("sim_g1: hands").get("left_received")
    # enabled: clamped to max_vx 0.3 m/s and max_yaw_rate 0.5 rad/s, the base walks
    r["enable"] = node.enable(True)
    r["walking"] = node.wait("sim_g1: base", lambda v: float(v["cmd_vx"]) == 0.3 and float(v["cmd_yaw_rate"]) == 0.5,
                             20)
    r["walked"] = node.wait("sim_g1: base", lambda v: float(v["distance_m"]) > 0.2, 20)
    r["while_walking"] = base(node)
    # the left hand closes (within the Dex3 ranges), the right stays open
    r["hands_closed"] = node.wait("sim_g1: hands", lambda v: v["left_q"] and abs(float(v["left_q"].split()[4]) + 1.70)
                                  < 0.01, 20)
    r["hands"] = node.values("sim_g1: hands")
    # stale: no more loco commands -> zero velocity, the base stops
    node.set(loco=None, grip=(1.0, 0.0))
    r["stale_stops"] = node.wait("sim_g1: base", lambda v: float(v["cmd_vx"]) == 0.0 and v.get("fsm_id") == "-1", 10)
    # the bridge's own report of it (its /diagnostics come at 10 Hz: the next one, not the last)
    node.wait("body_bridge", lambda v: v.get("velocity") == "[0.0, 0.0, 0.0]", 5)
    r["stale_body"] = body(node).get("velocity")
    time.sleep(1.0)
    b0 = base(node)
    # non-finite: refused whole, nothing moves
    node.set(loco=(float("nan"), 0.0, 0.0))
    r["non_finite_refused"] = node.wait("body_bridge", lambda v: int(v["loco_non_finite"]) > 0, 10)
    time.sleep(1.0)
    b1 = base(node)
    r["non_finite_moved"] = round(abs(b1["base_x"] - b0["base_x"]) + abs(b1["base_y"] - b0["base_y"]), 5)
    # e-stop while walking: zero velocity and damp (estop_damp), then nothing until enable
    node.set(loco=(0.2, 0.0, 0.0), grip=(1.0, 0.0))
    r["walking_again"] = node.wait("sim_g1: base", lambda v: float(v["cmd_vx"]) > 0.0, 20)
    node.estop_pub.publish(Bool(data=True))
    r["estop_stops"] = node.wait("sim_g1: base", lambda v: float(v["cmd_vx"]) == 0.0 and v["fsm_id"] == "1", 10)
    r["estop_body"] = node.wait("body_bridge", lambda v: v["damp_pending"] == "False" and int(v["damp_calls"]) > 0,
                                10)
    r["enable_while_asserted"] = node.enable(True)
    node.estop_pub.publish(Bool(data=False))
    time.sleep(0.5)
    calls0 = int(body(node)["loco_calls"])
    time.sleep(2.0)  # released but latched: loco commands keep coming, nothing is sent
    r["calls_while_latched"] = int(body(node)["loco_calls"]) - calls0
    r["latched_body"] = {k: body(node).get(k) for k in ("blocked", "estop_latched", "velocity")}
    r["enable_after_release"] = node.enable(True)
    r["calls_after_enable"] = node.wait("body_bridge", lambda v: int(v["loco_calls"]) > calls0 + 3, 10)
    # the simulated loco service was damped by the e-stop: it ignores velocities until an operator restarts it
    r["sim_ignores_while_damped"] = node.wait("sim_g1: base", lambda v: float(v["velocity_ignored"]) > 0, 10)
    node.set()
    r["end"] = base(node)
    r["body"] = body(node)
    return r


def lowcmd(node: BodyScenario) -> dict:
    r: dict = {}
    r["ready"] = node.wait("body_bridge", lambda v: v.get("enabled") == "True", 60)
    node.set(loco=(0.2, 0.0, 0.0), grip=(0.5, 0.5))
    r["refused"] = node.wait("body_bridge", lambda v: int(v["loco_mode"]) > 5, 20)
    r["message"] = node.message("body_bridge")
    r["hands"] = node.wait("sim_g1: hands", lambda v: int(v["left_received"]) > 0 and int(v["right_received"]) > 0,
                           20)
    time.sleep(1.0)
    r["base"] = base(node)
    r["body"] = body(node)
    node.set()
    return r


def main() -> int:
    return run_peer(BodyScenario, {"arm_sdk": arm_sdk, "lowcmd": lowcmd}[sys.argv[1]])


if __name__ == "__main__":
    sys.exit(main())
