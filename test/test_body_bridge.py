"""body_bridge end to end: the head's loco and grip commands -> safety -> Unitree's loco service and Dex3 hands.

Real processes on a random ROS domain and a random Unitree DDS domain: sim_g1 with a motion
mode active (its loco service answers SetVelocity over the Unitree DDS and walks the pinned
base; its monitor records rt/dex3/<side>/cmd), body_bridge with the robot's settings on the
loopback, and a peer that publishes /neon/loco_cmd, /neon/grip_cmd and /neon/estop over ROS 2.
"""

import json
import subprocess

import pytest
from support import REPO, Proc, python, random_dds_domain, ros_env

from neon_ros import g1
from neon_ros.bridge.body import hand_positions
from neon_ros.tools import processes, stack

pytestmark = [pytest.mark.ros, pytest.mark.dds]


def sim_cmd(domain: int, motion_mode: str) -> list[str]:
    mode = {"motion_mode": motion_mode} if motion_mode else {}  # '' (none) is the default, and no ROS argument
    return processes.node_command("sim_g1", {**stack.node("sim_g1").sim, "dds_domain_id": domain, "camera_rate": 0.0,
                                             "diagnostics_period": 0.2, **mode})


def body_cmd(domain: int, state_dir, **params) -> list[str]:
    robot = {**stack.node("body_bridge").robot, "network_interface": "lo", "dds_domain_id": domain}
    return processes.node_command("body_bridge", {**robot, "diagnostics_rate": 10.0, "state_dir": str(state_dir),
                                                  **params})


def run(tmp_path, domain, env, scenario: str, motion_mode: str, **params) -> tuple[dict, str]:
    sim = Proc(sim_cmd(domain, motion_mode), env, tmp_path / "sim.log")
    bridge = Proc(body_cmd(domain, tmp_path / "state", **params), env, tmp_path / "body.log")
    try:
        out = subprocess.run(python("-m", "test.peers.body_scenario", scenario), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=240)
        text = out.stdout + out.stderr
        logs = f"{bridge.output()[-3000:]}\n{sim.output()[-2000:]}"
    finally:
        for p in (bridge, sim):
            p.stop()
    line = next((ln for ln in text.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, text[-3000:] + logs
    return json.loads(line[len("RESULT "):]), logs


@pytest.mark.timeout(300)
def test_loco_and_grip_reach_the_loco_service_and_the_hands_through_the_safety_layer(tmp_path):
    domain, env = random_dds_domain(), ros_env()
    assert stack.node("body_bridge").robot["mode"] == "arm_sdk" and not stack.node("body_bridge").robot["autostart"]
    r, logs = run(tmp_path, domain, env, "arm_sdk", "ai", estop_damp=True)
    print("\nbody_bridge arm_sdk:", json.dumps(r))
    assert r["ready"], logs
    # disabled on the robot: nothing reaches the loco service or the hands
    assert r["before_enable"]["velocity_calls"] == 0 and r["hands_before_enable"] == "0", (r, logs)
    # (a) a loco command becomes a clamped SetVelocity the simulator answers, and the base moves
    assert r["enable"][0] and r["walking"] and r["walked"], (r, logs)
    assert r["while_walking"]["base_x"] > 0.1 and r["while_walking"]["base_yaw"] != 0.0, r
    # (c) the grip reaches rt/dex3/<side>/cmd as HandCmd_ inside the Dex3 ranges (less the margin)
    h = r["hands"]
    assert r["hands_closed"] and int(h["left_received"]) > 0 and int(h["right_received"]) > 0, (r, logs)
    assert h["left_invalid"] == "0" and h["right_invalid"] == "0", h
    left = [float(v) for v in h["left_q"].split()]
    assert all(lo + 0.049 <= q <= hi - 0.049 for q, lo, hi in zip(left, g1.DEX3_LOWER["left"], g1.DEX3_UPPER["left"],
                                                                   strict=True)), left
    right = [float(v) for v in h["right_q"].split()]  # closure 0: the open hand, the margin inside its ranges
    assert right == pytest.approx(hand_positions("right", 0.0, 0.05).tolist(), abs=1e-4), h
    assert h["left_mode"] == " ".join(str(16 + i) for i in range(7)) and h["left_kp"] == " ".join(["1.5"] * 7), h
    # (b) stale -> zero; non-finite refused whole; e-stop -> zero + damp, nothing until enable
    assert r["stale_stops"] and r["stale_body"] == "[0.0, 0.0, 0.0]", r
    assert r["non_finite_refused"] and r["non_finite_moved"] == 0.0, r
    assert r["walking_again"] and r["estop_stops"] and r["estop_body"], (r, logs)
    assert not r["enable_while_asserted"][0], r
    assert r["calls_while_latched"] == 0 and r["latched_body"]["estop_latched"] == "True", r
    assert r["enable_after_release"][0] and r["calls_after_enable"] and r["sim_ignores_while_damped"], (r, logs)


@pytest.mark.timeout(240)
def test_lowcmd_mode_refuses_loco_with_the_reason_and_still_drives_the_hands(tmp_path):
    domain, env = random_dds_domain(), ros_env()
    r, logs = run(tmp_path, domain, env, "lowcmd", "", mode="lowcmd", autostart=True, autostart_delay=0.2)
    print("\nbody_bridge lowcmd:", json.dumps(r))
    assert r["ready"] and r["refused"], (r, logs)
    assert "loco refused" in r["message"] and "lowcmd" in r["message"], r["message"]
    assert r["body"]["loco"].startswith("refused: mode lowcmd"), r["body"]
    assert r["base"]["velocity_calls"] == 0, r  # nothing asked the loco service
    assert r["hands"], (r, logs)
