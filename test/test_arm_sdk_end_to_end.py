"""The robot's default mode end to end: sim_g1 with Unitree's motion service + g1_bridge in arm_sdk mode.

Real processes on a random ROS domain and a random Unitree DDS domain: sim_g1 with a motion
mode active (it holds the robot and blends rt/arm_sdk into the waist and arms by the weight
in motor_cmd[29].q, as the G1 does), g1_bridge with the stack's robot settings (arm_sdk,
no autostart) on the loopback, an independent rt/arm_sdk monitor, and scenario peers that
drive the bridge over ROS 2 or ask the simulated MotionSwitcher over the Unitree DDS.
"""

import json
import subprocess

import pytest
from support import REPO, Proc, python, random_dds_domain, ros_env

from neon_ros import contract
from neon_ros.tools import processes, stack

pytestmark = [pytest.mark.ros, pytest.mark.dds]

MOTION_MODE = "ai"


def sim_cmd(domain: int) -> list[str]:
    return processes.node_command("sim_g1", {**stack.node("sim_g1").sim, "dds_domain_id": domain,
                                             "camera_rate": 0.0, "motion_mode": MOTION_MODE})


def bridge_cmd(domain: int) -> list[str]:
    # the robot's bridge settings, on this machine's loopback; a loaded CI machine can stall the
    # sim beyond the default lowstate_timeout, which would damp (the tested path, but too early)
    robot = {**stack.node("g1_bridge").robot, "network_interface": "lo", "dds_domain_id": domain}
    return processes.node_command("g1_bridge", {**robot, "enable_ramp": 0.5, "lowstate_timeout": 1.0,
                                                "command_timeout": 0.3, "damp_timeout": 1.0,
                                                "diagnostics_rate": 10.0})


def result(text: str) -> dict:
    line = next((ln for ln in text.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, text[-3000:]
    return json.loads(line[len("RESULT "):])


@pytest.mark.timeout(180)
def test_arm_sdk_mode_drives_the_arm_through_the_motion_service_and_damping_hands_it_back(tmp_path):
    domain, env = random_dds_domain(), ros_env()
    assert stack.node("g1_bridge").robot["mode"] == "arm_sdk"  # the default on the robot
    stop_file = tmp_path / "stop"
    monitor = Proc(python("-m", "test.peers.bridge_lowcmd_monitor", str(domain), contract.DDS_ARM_SDK, "170",
                          "1.5", str(stop_file)), env, tmp_path / "monitor.log")
    sim = Proc(sim_cmd(domain), env, tmp_path / "sim.log")
    bridge = Proc(bridge_cmd(domain), env, tmp_path / "bridge.log")
    try:
        out = subprocess.run(python("-m", "test.peers.arm_sdk_scenario"), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=150)
        r = result(out.stdout + out.stderr)
        logs = f"{bridge.output()[-6000:]}\n{sim.output()[-2500:]}"
        bridge.stop()
        stop_file.touch()
        monitor.popen.wait(30)
        mon = result(monitor.output())
    finally:
        for p in (bridge, sim, monitor):
            p.stop()
    print("\narm_sdk end to end:", json.dumps({k: v for k, v in r.items() if k != "sim"}))
    print("sim:", json.dumps(r["sim"]))
    print("monitor:", json.dumps({k: v for k, v in mon.items() if k != "damping_starts"}))
    print("bridge warnings:", *[ln for ln in logs.splitlines() if "[WARN]" in ln or "[ERROR]" in ln][-20:], sep="\n")
    assert r["ready"] and r["motion_mode"] == MOTION_MODE, (r, logs)
    assert r["arm_sdk_before_enable"] == 0, r  # disabled: the bridge wrote nothing
    # enabled: the weight ramps to 1 on both sides and the simulated arm reaches the chunk's target
    assert len(r["damped_by_itself"]) <= 1, (r, logs)  # see arm_sdk_scenario: one retry, with its reason
    assert r["enable"][0] and r["policy"] and r["sim_weight_full"], (r, logs)
    assert r["reached"], (r, logs)
    # damp: the weight ramps to 0 and the motion service holds the upper body again, waist stiff
    assert r["damp"][0] and r["bridge_weight_zero"] and r["sim_weight_zero"], (r, logs)
    assert r["back_to_hold"] and r["waist_max_dev"] < 0.05, r
    assert int(r["sim"]["arm_sdk_bad_crc"]) == 0 and int(r["sim"]["arm_sdk_invalid"]) == 0, r["sim"]
    assert mon["n"] > 200 and mon["weights"]["max"] == 1.0 and mon["weights"]["last"] == [0.0], mon
    for key in ("crc_bad", "non_finite", "out_of_limits", "too_fast", "leg_commanded", "bad_weight"):
        assert mon[key] == 0, (key, mon)
    assert mon["damping"] == 0, mon  # never kp = 0 on rt/arm_sdk: no limp waist


@pytest.mark.timeout(120)
def test_simulated_motion_switcher_answers_the_lowcmd_check(tmp_path):
    domain, env = random_dds_domain(), ros_env()
    with Proc(sim_cmd(domain), env, tmp_path / "sim.log") as sim:
        assert sim.wait_for_line("simulated G1 on DDS domain", 60), sim.output()[-3000:]
        out = subprocess.run(python("-m", "test.peers.motion_switcher_peer", str(domain)), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=90)
        r = result(out.stdout + out.stderr)
        print("\nMotionSwitcher:", json.dumps(r))
    # a motion mode owns the motors: lowcmd mode would be refused, with the reason
    assert r["check_before"] == [0, {"form": "0", "name": MOTION_MODE}], r
    assert r["refusal_before"].startswith("refused") and repr(MOTION_MODE) in r["refusal_before"], r
    # released (as an operator would, robot on a gantry): nothing to refuse
    assert r["release"] == 0 and r["check_after"][1]["name"] == "" and r["refusal_after"] == "", r
    assert r["select"] == 0 and r["check_selected"][1]["name"] == MOTION_MODE, r
