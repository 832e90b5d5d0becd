"""Drives a running g1_bridge through a scenario over ROS 2 and prints ``RESULT {json}``.

Watches /joint_states and /diagnostics, publishes chunks / teleop / e-stop, calls the
enable and damp services. Scenarios (argv[1]):
- ``closed_loop``: bad inputs of every kind, then chunks that bend the left elbow, then a
  teleop override, its hold after teleop stops, and the hand-back after a release;
- ``watchdog``: nothing moves before enable; prints KILL_NOW once the policy drives (the
  test kill -9s the chunk publisher), then expects hold, damping; e-stop (enable refused
  while asserted, latched after release until enable); damp service;
- ``estop_flood``: 3,000 chunks and 3,000 teleop messages published as fast as possible; the
  e-stop is published in the middle of the flood;
- ``estop_restart``: a latched e-stop; prints RESTART_NOW (the test restarts the bridge with
  autostart), then expects the new bridge to stay disabled until release + enable;
- ``arm_sdk``: waits for the policy, then disables (the weight ramps out).

usage: python -m test.peers.bridge_scenario SCENARIO
"""

import json
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.bridge.safety import REASONS
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.teleop import EstopSender
from neon_ros.runtime.timing import PeriodicThread

ELBOW = g1.JOINT_INDEX["left_elbow_joint"]
ELBOW_TARGET = 0.6
TELEOP_TARGET = 1.3
TOL = 0.1


class Scenario(Node):
    def __init__(self):
        super().__init__("bridge_scenario")
        self.lock = threading.Lock()
        self.q: np.ndarray | None = None
        self.js_names: list[str] = []
        self.diag: dict[str, str] = {}
        self.sources: list[str] = []
        self.create_subscription(JointState, contract.TOPIC_JOINT_STATES, self._on_js, rosutil.STATE_QOS)
        self.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, self._on_diag, rosutil.STATE_QOS)
        self.chunk_pub = self.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
        self.teleop_pub = self.create_publisher(JointTrajectory, contract.TOPIC_TELEOP, rosutil.COMMAND_QOS)
        self.estop = EstopSender("bridge_scenario_estop")  # as from an e-stop device's own process
        self.enable_cli = self.create_client(SetBool, contract.SERVICE_ENABLE)
        self.damp_cli = self.create_client(Trigger, contract.SERVICE_DAMP)
        self.chunk_pose: np.ndarray | None = None
        self.teleop_value: float | None = None
        # The 20 Hz command stream on a thread of its own, not an rclpy timer: under the executor's
        # load (joint states at 100 Hz, diagnostics at 10 Hz) the timer once stalled for 1.1 s, and
        # the bridge rightly damped on its 1 s command timeout (1 run in 6 here).
        self.commands = PeriodicThread(contract.CONTROL_DT, self._tick, "scenario_commands")
        self.commands.start()

    def close(self) -> None:
        self.commands.stop()
        self.estop.close()

    def _on_js(self, m: JointState) -> None:
        q, _ = msgs.joint_state_to_g1(m)
        with self.lock:
            self.q = q
            self.js_names = list(m.name)

    def _on_diag(self, m: DiagnosticArray) -> None:
        for s in m.status:
            if s.name == "g1_bridge":
                with self.lock:
                    self.diag = msgs.diagnostic_values(s)
                    self.sources.append(f"{self.diag['state']}/{self.diag['source']}")

    def _tick(self) -> None:
        now = rosutil.now_ns(self)
        if self.chunk_pose is not None:
            self.chunk_pub.publish(msgs.chunk_to_trajectory(np.tile(self.chunk_pose, (16, 1)), now))
        if self.teleop_value is not None:
            t = msgs.chunk_to_trajectory(np.array([[self.teleop_value]]), 0, ["left_elbow_joint"])
            self.teleop_pub.publish(t)

    # --- helpers -----------------------------------------------------------------------
    def get(self):
        with self.lock:
            return (None if self.q is None else self.q.copy()), dict(self.diag)

    def wait(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            q, d = self.get()
            if q is not None and d and pred(q, d):
                return True
            time.sleep(0.02)
        return False

    def call(self, client, req, timeout=10.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"service {client.srv_name} not available")
        fut = client.call_async(req)
        deadline = time.monotonic() + timeout
        while not fut.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        return fut.result()

    def enable(self, on: bool):
        res = self.call(self.enable_cli, SetBool.Request(data=on))
        return bool(res.success), res.message


def state(d):
    return d.get("state"), d.get("source"), d.get("damp_reason")


def bad_messages(now: int) -> list[tuple[str, JointTrajectory]]:
    """One message per reject reason of the safety layer."""
    pose = np.tile(g1.STANDING_POSE, (16, 1))
    names = list(g1.JOINT_NAMES)
    out = [("unknown_joint", msgs.chunk_to_trajectory(pose, now, names[:-1] + ["left_tail_joint"])),
           ("duplicate_joint", msgs.chunk_to_trajectory(pose, now, names[:-1] + [names[0]])),
           ("missing_joint", msgs.chunk_to_trajectory(pose[:, :-1], now, names[:-1])),
           ("point_count", msgs.chunk_to_trajectory(pose[:15], now)),
           ("future_stamp", msgs.chunk_to_trajectory(pose, now + 2 * msgs.NS)),
           ("stale", msgs.chunk_to_trajectory(pose, now - 5 * msgs.NS))]
    nan = pose.copy()
    nan[4, ELBOW] = np.nan
    out.append(("non_finite", msgs.chunk_to_trajectory(nan, now)))
    bad_time = msgs.chunk_to_trajectory(pose, now)
    bad_time.points[3].time_from_start = bad_time.points[2].time_from_start
    out.append(("bad_time", bad_time))
    malformed = msgs.chunk_to_trajectory(pose, now)
    malformed.points[5].positions = [0.1, 0.2]
    out.append(("malformed", malformed))
    return out


def closed_loop(node: Scenario) -> dict:
    r: dict = {}
    r["active"] = node.wait(lambda q, d: d["state"] == "active", 30)
    r["joint_state_names_in_g1_order"] = node.js_names == list(g1.JOINT_NAMES)
    time.sleep(1.5)
    q0, _ = node.get()
    r["commands_matched"] = node.wait(lambda q, d: node.chunk_pub.get_subscription_count() >= 1
                                      and node.teleop_pub.get_subscription_count() >= 1, 10)
    inf = msgs.chunk_to_trajectory(np.array([[np.inf]]), 0, ["left_elbow_joint"])
    node.teleop_pub.publish(inf)
    # DDS delivers nothing to a reader that has not yet discovered this writer (the bridge's
    # command intake is a participant of its own): a reason not counted within a few seconds is
    # sent again, at most three rounds, each message once per round
    missing = set(REASONS)
    for _ in range(3):
        for reason, msg in bad_messages(rosutil.now_ns(node)):
            if reason in missing:
                node.chunk_pub.publish(msg)
                time.sleep(0.05)  # the command QoS keeps the newest 5: no burst
        node.wait(lambda q, d, want=frozenset(missing): all(int(d[f"reject_{k}"]) >= 1 for k in want), 5)
        _, d = node.get()
        missing = {k for k in missing if int(d.get(f"reject_{k}", 0)) < 1}
        if not missing:
            break
    r["rejects_counted"] = node.wait(lambda q, d: all(int(d[f"reject_{k}"]) >= 1 for k in REASONS), 5)
    q1, d = node.get()
    r["rejects"] = {k: int(d[f"reject_{k}"]) for k in REASONS}
    r["after_bad"] = state(d)
    r["accepted_after_bad"] = [int(d["accepted_chunk"]), int(d["accepted_teleop"])]
    r["moved_by_bad"] = float(np.max(np.abs(q1 - q0)))
    # bend the left elbow with chunks
    pose = g1.STANDING_POSE.copy()
    pose[ELBOW] = ELBOW_TARGET
    node.chunk_pose = pose
    t0 = time.monotonic()
    r["reached"] = node.wait(lambda q, d: abs(q[ELBOW] - ELBOW_TARGET) < TOL, 15)
    r["reach_s"] = round(time.monotonic() - t0, 3)
    time.sleep(1.0)
    q2, d = node.get()
    others = np.arange(g1.NUM_JOINTS) != ELBOW
    r["elbow_start"], r["elbow_final"] = float(q1[ELBOW]), float(q2[ELBOW])
    r["elbow_error"] = float(abs(q2[ELBOW] - ELBOW_TARGET))
    r["others_max_dev"] = float(np.max(np.abs(q2 - q1)[others]))
    limbs = others.copy()
    limbs[list(g1.GROUPS["waist"])] = False
    r["limbs_max_dev"] = float(np.max(np.abs(q2 - q1)[limbs]))
    r["waist_max_dev"] = float(np.max(np.abs(q2 - q1)[list(g1.GROUPS["waist"])]))
    r["others_worst"] = g1.JOINT_NAMES[int(np.argmax(np.where(others, np.abs(q2 - q1), -1)))]
    r["during_chunks"] = state(d)
    # teleop override, then hand-back to the policy
    node.teleop_value = TELEOP_TARGET
    r["teleop_source"] = node.wait(lambda q, d: d["source"] == "teleop", 5)
    r["teleop_reached"] = node.wait(lambda q, d: abs(q[ELBOW] - TELEOP_TARGET) < TOL, 10)
    node.teleop_value = None
    r["teleop_hold"] = node.wait(lambda q, d: d["source"] == "teleop_hold", 5)
    time.sleep(1.5)  # no release yet: teleop's target holds
    q3, d = node.get()
    r["held_after_loss"] = [d["source"], round(float(q3[ELBOW]), 3)]
    release = JointTrajectory()
    release.joint_names = ["left_elbow_joint"]
    node.teleop_pub.publish(release)
    r["handback_seen"] = node.wait(lambda q, d: d["source"] == "handback", 5)
    r["back_to_policy"] = node.wait(lambda q, d: d["source"] == "policy" and abs(q[ELBOW] - ELBOW_TARGET) < TOL, 10)
    node.chunk_pose = None
    _, d = node.get()
    r["diag"] = d
    return r


def watchdog(node: Scenario) -> dict:
    r: dict = {}
    r["chunks_while_disabled"] = node.wait(lambda q, d: int(d["accepted_chunk"]) > 5, 30)
    _, d = node.get()
    r["state_before_enable"] = state(d)
    r["t_enable"] = time.time()
    r["enable"] = node.enable(True)
    r["policy"] = node.wait(lambda q, d: d["source"] == "policy", 10)
    print("KILL_NOW", flush=True)
    t_kill = time.monotonic()
    r["hold"] = node.wait(lambda q, d: d["source"] == "hold", 10)
    r["hold_after_s"] = round(time.monotonic() - t_kill, 3)
    r["damped"] = node.wait(lambda q, d: d["state"] == "damping", 10)
    r["damp_after_s"] = round(time.monotonic() - t_kill, 3)
    r["damp_state"] = state(node.get()[1])
    time.sleep(0.3)
    r["reenable"] = node.enable(True)
    r["reenabled"] = node.wait(lambda q, d: d["state"] == "active", 5)
    time.sleep(0.5)
    r["t_estop"] = time.time()
    node.estop.send(True, 2.0)
    r["estop_damped"] = node.wait(lambda q, d: d["state"] == "damping" and d["damp_reason"] == "estop", 5)
    _, d = node.get()
    r["estop_latency_cycles"] = d.get("estop_latency_cycles")
    r["estop_latency_ms"] = d.get("estop_latency_ms")
    r["enable_while_asserted"] = node.enable(True)
    node.estop.send(False, 2.0)
    # the bridge's first report after it saw the release (diagnostics at 10 Hz, later on a loaded machine)
    node.wait(lambda q, d: d["estop_state"] != "asserted", 5)
    r["still_latched"] = state(node.get()[1])
    r["estop_state_after_release"] = node.get()[1].get("estop_state")
    node.enable(True)
    node.wait(lambda q, d: d["state"] == "active", 5)
    node.call(node.damp_cli, Trigger.Request())
    r["damp_service"] = node.wait(lambda q, d: d["damp_reason"] == "damp_service", 5)
    return r


def arm_sdk(node: Scenario) -> dict:
    r: dict = {}
    r["policy"] = node.wait(lambda q, d: d["source"] == "policy", 30)
    r["weight_full"] = node.wait(lambda q, d: float(d["arm_sdk_weight"]) >= 1.0, 10)
    time.sleep(1.0)
    r["disable"] = node.enable(False)
    r["weight_zero"] = node.wait(lambda q, d: float(d["arm_sdk_weight"]) == 0.0, 10)
    time.sleep(0.3)
    r["diag"] = node.get()[1]
    return r


def estop_flood(node: Scenario) -> dict:
    r: dict = {}
    r["active"] = node.wait(lambda q, d: d["state"] == "active", 30)
    time.sleep(1.0)
    rng = np.random.default_rng(0)
    chunks = [msgs.chunk_to_trajectory(np.tile(g1.STANDING_POSE + rng.normal(0, 0.02, g1.NUM_JOINTS), (16, 1)), 0)
              for _ in range(50)]
    teleop = [msgs.chunk_to_trajectory(np.array([[v]]), 0, ["left_elbow_joint"]) for v in rng.uniform(0.9, 1.4, 50)]
    t0 = time.monotonic()
    for k in range(3000):
        now = rosutil.now_ns(node)
        chunk = chunks[k % 50]
        chunk.header.stamp = msgs.ns_to_stamp(now)
        node.chunk_pub.publish(chunk)
        node.teleop_pub.publish(teleop[k % 50])
        if k == 1500:  # from the e-stop's own participant and thread, while the flood goes on
            sender = threading.Thread(target=node.estop.send, args=(True, 5.0))
            sender.start()
    r["flood_s"] = round(time.monotonic() - t0, 3)
    sender.join()
    r["t_estop"] = node.estop.sent_ns / 1e9  # its thread's first publish
    r["estop_damped"] = node.wait(lambda q, d: d["state"] == "damping" and d["damp_reason"] == "estop", 10)
    _, d = node.get()
    r["estop_latency_cycles"] = d.get("estop_latency_cycles")
    r["estop_latency_ms"] = d.get("estop_latency_ms")
    return r


def estop_restart(node: Scenario) -> dict:
    r: dict = {}
    r["active"] = node.wait(lambda q, d: d["state"] == "active", 30)
    node.estop.send(True, 2.0)  # latched: the sender's publisher keeps it for late joiners
    r["damped"] = node.wait(lambda q, d: d["state"] == "damping" and d["estop_state"] == "asserted", 5)
    with node.lock:
        node.diag = {}
    print("RESTART_NOW", flush=True)
    # the new bridge: its cycle counter starts again
    r["restarted"] = node.wait(lambda q, d: int(d["cycle"]) < 2000 and d["estop_state"] == "asserted", 60)
    time.sleep(2.0)  # autostart would have enabled by now
    _, d = node.get()
    r["after_restart"] = [d.get("state"), d.get("estop_state"), int(d.get("enable", -1))]
    r["enable_while_asserted"] = node.enable(True)
    node.estop.send(False, 2.0)
    r["released"] = node.wait(lambda q, d: d["estop_state"] == "latched" and d["state"] == "disabled", 5)
    r["enable_after_release"] = node.enable(True)
    r["active_after_reset"] = node.wait(lambda q, d: d["state"] == "active" and d["estop_state"] == "clear", 5)
    return r


SCENARIOS = {"closed_loop": closed_loop, "watchdog": watchdog, "arm_sdk": arm_sdk, "estop_flood": estop_flood,
             "estop_restart": estop_restart}


def run_peer(make_node, scenario, cleanup=None) -> int:
    """rclpy up, ``make_node()`` spun on two threads, ``scenario(node)``'s dict printed as the
    RESULT line; ``cleanup(node)`` and the node's ``close()`` (its own threads) before the executor
    stops (shut down before the node goes)."""
    rclpy.init(args=[])
    node = make_node()
    ex = MultiThreadedExecutor(num_threads=2)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        print("RESULT " + json.dumps(scenario(node), default=str), flush=True)
    finally:
        if cleanup is not None:
            cleanup(node)
        if hasattr(node, "close"):
            node.close()  # its own threads (the command stream, the e-stop sender's node) first
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _named_scenario(node) -> dict:
    result = SCENARIOS[sys.argv[1]](node)
    with node.lock:
        result["sources_seen"] = list(dict.fromkeys(node.sources))
    return result


def main() -> int:
    return run_peer(Scenario, _named_scenario)


if __name__ == "__main__":
    sys.exit(main())
