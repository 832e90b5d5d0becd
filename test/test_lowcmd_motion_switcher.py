"""g1_bridge in lowcmd mode asks Unitree's MotionSwitcher before it enables (real processes)."""

import subprocess

import pytest
from support import REPO, Proc, python, random_dds_domain, ros_env
from test_arm_sdk_end_to_end import MOTION_MODE, result, sim_cmd

from neon_ros.tools import processes

pytestmark = [pytest.mark.ros, pytest.mark.dds]

# The call waits for the bridge's /joint_states first: without a fresh LowState the bridge refuses
# for that reason at once, without asking the MotionSwitcher.
CALL = """
import json, sys, time, rclpy
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from neon_ros import contract
from neon_ros.ros import rosutil
rclpy.init()
node = rclpy.create_node("enable_caller")
seen = []
node.create_subscription(JointState, contract.TOPIC_JOINT_STATES, seen.append, rosutil.STATE_QOS)
cli = node.create_client(SetBool, contract.SERVICE_ENABLE)
assert cli.wait_for_service(timeout_sec=60)
deadline = time.monotonic() + 60
while not seen and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
assert seen, "no /joint_states from the bridge"
fut = cli.call_async(SetBool.Request(data=True))
rclpy.spin_until_future_complete(node, fut, timeout_sec=30)
print("RESULT " + json.dumps([fut.result().success, fut.result().message]), flush=True)
"""


@pytest.mark.timeout(150)
def test_lowcmd_enable_is_refused_while_a_motion_mode_owns_the_motors(tmp_path):
    domain, env = random_dds_domain(), ros_env()
    bridge = processes.node_command("g1_bridge", {"mode": "lowcmd", "network_interface": "lo",
                                                  "dds_domain_id": domain, "lowstate_timeout": 1.0})
    with Proc(sim_cmd(domain), env, tmp_path / "sim.log"), Proc(bridge, env, tmp_path / "bridge.log") as b:
        out = subprocess.run(python("-c", CALL), env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        ok, message = result(out.stdout + out.stderr)
        print("\nenable:", ok, message)
        assert not ok and repr(MOTION_MODE) in message, (message, b.output()[-2000:])
