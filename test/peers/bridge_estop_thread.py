"""A G1Bridge whose own executor never spins: an e-stop must still reach its 500 Hz loop.

Builds the node in this process (lowcmd, no robot needed: a disabled bridge latches an
e-stop too) and never adds it to an executor, as if every callback of its executor were
stuck behind a flood. A second node publishes /neon/estop true. Prints ``RESULT {json}``:
whether the loop applied it (controller asserted and latched), the latch file, the names
of this process's threads, and whether the e-stop node has an rclpy context (a DDS
participant) of its own.

usage: python -m test.peers.bridge_estop_thread DOMAIN STATE_DIR
"""

import json
import sys
import threading
import time

import rclpy
from std_msgs.msg import Bool

from neon_ros import contract
from neon_ros.nodes.g1_bridge import G1Bridge
from neon_ros.ros import rosutil


def main() -> int:
    domain, state_dir = sys.argv[1], sys.argv[2]
    rclpy.init(args=["bridge_estop_thread", "--ros-args", "-p", "mode:=lowcmd", "-p", f"dds_domain_id:={domain}",
                     "-p", f"state_dir:={state_dir}"])
    bridge = G1Bridge()  # never spun
    sender = rclpy.create_node("estop_sender")
    pub = sender.create_publisher(Bool, contract.TOPIC_ESTOP, rosutil.LATCHED_QOS)
    pub.publish(Bool(data=True))  # latched: delivered whenever the bridge's subscription matches
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not bridge.controller.estop_asserted:
        time.sleep(0.05)
    # the callback writes the latch file (fsync) after the loop was told: give it a moment
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not bridge.latch.is_set():
        time.sleep(0.05)
    r = {"asserted": bridge.controller.estop_asserted, "latched": bridge.controller.estop_latched,
         "latch_file": bridge.latch.is_set(), "threads": sorted(t.name for t in threading.enumerate()),
         "own_context": bridge._estop_node.context is not bridge.context}
    print("RESULT " + json.dumps(r), flush=True)
    bridge.on_shutdown()
    sender.destroy_node()
    bridge.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
