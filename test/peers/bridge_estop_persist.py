"""Drives g1_bridge through an e-stop that must outlive the bridge process; prints ``RESULT {json}``.

The e-stop is asserted and then released on a VOLATILE publisher (nothing is kept on the
ROS graph for a later bridge: only the bridge's latch file remembers it). Prints KILL_NOW
(the test kill -9s the bridge and restarts it with autostart), expects the new bridge to
stay disabled with the latch restored, resets it with an explicit enable, then prints
RESTART_AGAIN (killed and restarted once more) and expects autostart to enable.

usage: python -m test.peers.bridge_estop_persist
"""

import sys
import time

from std_msgs.msg import Bool

from neon_ros import contract
from neon_ros.ros import rosutil
from test.peers.bridge_scenario import Scenario, run_peer


def new_bridge(node: Scenario, old_pid: str, timeout: float) -> bool:
    """Wait for /diagnostics of a bridge process other than ``old_pid``."""
    return node.wait(lambda q, d: d.get("pid") not in (None, old_pid), timeout)


def run(node: Scenario) -> dict:
    r: dict = {}
    estop = node.create_publisher(Bool, contract.TOPIC_ESTOP, rosutil.COMMAND_QOS)  # volatile
    r["active"] = node.wait(lambda q, d: d["state"] == "active", 60)
    r["rt_status"] = node.get()[1].get("rt_status")
    r["command_dds"] = node.get()[1].get("command_dds")
    r["gc_frozen_objects"] = node.get()[1].get("gc_frozen_objects")
    deadline = time.monotonic() + 30
    while estop.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    estop.publish(Bool(data=True))
    r["damped"] = node.wait(lambda q, d: d["damp_reason"] == "estop" and d["estop_state"] == "asserted", 10)
    estop.publish(Bool(data=False))  # released: the latch alone holds
    r["released"] = node.wait(lambda q, d: d["estop_state"] == "latched", 10)
    r["latch_on_disk"] = node.get()[1].get("estop_latch_on_disk")
    pid = node.get()[1].get("pid")
    print("KILL_NOW", flush=True)
    r["restarted"] = new_bridge(node, pid, 90)
    time.sleep(3.0)  # autostart (delay 0.2 s; with no e-stop publisher known, 3 delays) would have enabled
    _, d = node.get()
    r["after_restart"] = [d.get("state"), d.get("estop_state"), d.get("enable"), d.get("estop_latch_on_disk")]
    r["enable"] = node.enable(True)  # the explicit reset
    r["active_after_reset"] = node.wait(lambda q, d: d["state"] == "active" and d["estop_state"] == "clear", 10)
    r["latch_on_disk_after_reset"] = node.get()[1].get("estop_latch_on_disk")
    pid = node.get()[1].get("pid")
    print("RESTART_AGAIN", flush=True)
    r["restarted_again"] = new_bridge(node, pid, 90)
    r["autostarted"] = node.wait(lambda q, d: d["state"] == "active", 30)
    return r


def main() -> int:
    return run_peer(Scenario, run)


if __name__ == "__main__":
    sys.exit(main())
