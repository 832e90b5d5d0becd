"""A G1Bridge whose own executor never spins: an e-stop must still reach its 500 Hz loop, and
chunks its controller, at no more than ``max_command_rate`` however fast they come.

Builds the node in this process (lowcmd, no robot needed: a disabled bridge latches an
e-stop too) and never adds it to an executor, as if every callback of its executor were
stuck behind a flood. A second node publishes /neon/estop true. Prints ``RESULT {json}``:
whether the loop applied it (controller asserted and latched), the latch file, the names
of this process's threads, and whether the e-stop node has an rclpy context (a DDS
participant) of its own. Then 300 chunks as fast as they can be published (max_command_rate
20/s): how many the bridge took (accepted or rejected) within the flood and the second after.

usage: python -m test.peers.bridge_estop_thread DOMAIN STATE_DIR
"""

import json
import sys
import threading
import time

import numpy as np
import rclpy
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory

from neon_ros import contract, g1
from neon_ros.nodes.g1_bridge import G1Bridge
from neon_ros.ros import msgs, rosutil

RATE = 20.0  # max_command_rate of the bridge under test


def main() -> int:
    domain, state_dir = sys.argv[1], sys.argv[2]
    rclpy.init(args=["bridge_estop_thread", "--ros-args", "-p", "mode:=lowcmd", "-p", f"dds_domain_id:={domain}",
                     "-p", f"state_dir:={state_dir}", "-p", f"max_command_rate:={RATE}"])
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
         "own_context": bridge._estop.context is not bridge.context,
         "commands_own_context": bridge._commands.context is not bridge.context}
    chunks = sender.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
    chunk = msgs.chunk_to_trajectory(np.tile(g1.STANDING_POSE, (contract.CHUNK_STEPS, 1)), 0)

    def taken() -> int:
        return bridge.accepted["chunk"] + sum(bridge.rejects.values())

    deadline = time.monotonic() + 30  # discovery: until the first chunk is taken
    while time.monotonic() < deadline and taken() == 0:
        chunk.header.stamp = msgs.ns_to_stamp(time.time_ns())
        chunks.publish(chunk)
        time.sleep(0.1)
    time.sleep(0.5)
    before, t0 = taken(), time.monotonic()
    for _ in range(300):
        chunk.header.stamp = msgs.ns_to_stamp(time.time_ns())
        chunks.publish(chunk)
    time.sleep(1.0)
    r |= {"flood_taken": taken() - before, "flood_window_s": time.monotonic() - t0, "rate": RATE,
          "chunks_accepted": bridge.accepted["chunk"]}
    print("RESULT " + json.dumps(r), flush=True)
    bridge.on_shutdown()
    sender.destroy_node()
    bridge.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
