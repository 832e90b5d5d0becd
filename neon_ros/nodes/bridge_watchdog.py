"""`bridge_watchdog`: damps the robot when g1_bridge stops commanding it (kill -9, crash, hung loop).

Runs as its own process beside g1_bridge, on the same Unitree DDS interface and domain.
The bridge's 500 Hz thread writes a liveness heartbeat after each LowCmd_
(rt/neon/bridge_heartbeat, neon_ros.bridge.heartbeat); after ``timeout`` without one the
watchdog takes over with the bridge's own damping from its last heartbeat
(neon_ros.bridge.watchdog): in ``lowcmd`` mode kp = 0, kd = ``damping_kd``, tau = 0 (CRC
set) on rt/lowcmd every 2 ms until the heartbeat comes back; in ``arm_sdk`` mode the
upper body is handed back to Unitree's motion service on rt/arm_sdk (the weight ramps to 0
over ``hand_back_time``). Publishes /diagnostics (state, trips, silence at the last trip).
The robot's firmware keeps the last command it received, so a stopped watchdog leaves
damping in place.

    ros2 run neon_ros bridge_watchdog --ros-args -p mode:=lowcmd -p dds_domain_id:=1
"""

from __future__ import annotations

import sys

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from neon_ros import contract
from neon_ros.bridge.command import MODES
from neon_ros.bridge.watchdog import BridgeWatchdog, WatchdogConfig
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable
from neon_ros.runtime.timing import freeze_heap, set_fifo

PARAMETERS: ParamTable = {
    "mode": Param("arm_sdk", f"the bridge's mode: {' | '.join(MODES)} (the topic damping is written to)"),
    "network_interface": Param("lo", "network interface of the robot's DDS (the bridge's)"),
    "dds_domain_id": Param(1, "Unitree DDS domain (the bridge's; 0 on the robot)", (0, 232)),
    "timeout": Param(0.05, "s without a bridge heartbeat before damping starts", (0.005, 1.0)),
    "damping_kd": Param(2.0, "N m s/rad per commanded joint while damping (the bridge's damping_kd)", (0.01, 20.0)),
    "hand_back_time": Param(1.0, "s the arm_sdk weight takes to ramp to 0 when handing back (the bridge's "
                                 "enable_ramp)", (0.0, 10.0)),
    "diagnostics_rate": Param(2.0, "Hz of /diagnostics", (0.1, 50.0)),
    "rt_priority": Param(0, "SCHED_FIFO priority of the watching thread (0 = normal; needs CAP_SYS_NICE)", (0, 99)),
}


class BridgeWatchdogNode(Node):
    def __init__(self) -> None:
        super().__init__("bridge_watchdog")
        p = rosutil.declare_parameters(self, PARAMETERS)
        cfg = WatchdogConfig(mode=p["mode"], timeout=p["timeout"], damping_kd=p["damping_kd"],
                             hand_back_time=p["hand_back_time"])
        # Real-time before the DDS threads exist, so they inherit it (as g1_bridge does).
        rt_status = set_fifo(p["rt_priority"], whole_process=False, inherit=True)
        self.watchdog = BridgeWatchdog(cfg, p["network_interface"], p["dds_domain_id"], rt_priority=p["rt_priority"],
                                       on_event=self._on_event)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.create_timer(1.0 / p["diagnostics_rate"], self._publish_diagnostics)
        self._frozen_objects = freeze_heap()  # as g1_bridge: no full GC pause walks the setup's heap
        self.watchdog.start()
        self.get_logger().info(
            f"bridge_watchdog: watching the bridge's heartbeat (DDS domain {p['dds_domain_id']}, "
            f"{p['network_interface']}); damping on {self.watchdog.builder.topic} after {cfg.timeout * 1e3:.0f} ms "
            f"without one; heap frozen ({self._frozen_objects} objects); scheduling: {rt_status}")

    def _on_event(self, kind: str, text: str) -> None:
        # (rclpy's logger refuses one call site with two severities)
        if kind == "trip":
            self.get_logger().error(text)
        else:
            self.get_logger().info(text)

    def _publish_diagnostics(self) -> None:
        values = {**self.watchdog.status(), "gc_frozen_objects": self._frozen_objects}
        state = values["state"]
        level = "error" if state == "damping" or not self.watchdog.alive else "warn" if state == "waiting" else "ok"
        text = {"waiting": "no bridge heartbeat heard yet", "watching": "the bridge commands the robot",
                "released": "the bridge fell silent with nothing to damp (off, or handed back)",
                "damping": "the bridge is silent: damping"}[state]
        stamp = rosutil.now_ns(self)
        self.diag_pub.publish(msgs.diagnostic_array(stamp, [msgs.diagnostic_status("bridge_watchdog", level, text,
                                                                                   values)]))

    def on_shutdown(self) -> None:
        self.watchdog.stop()


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(BridgeWatchdogNode, "bridge_watchdog", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    sys.exit(main())
