"""sim_g1 as a real process: real Unitree DDS (rt/lowcmd, rt/lowstate) and real rclpy topics.

One sim_g1 process (random ROS and DDS domains, loopback) serves the whole module; peers
in separate processes play the controller (unitree_sdk2py) and a ROS listener.
"""

import subprocess

import pytest
from support import REPO, Proc, python, random_dds_domain, ros_env, script, wait_for

from neon_ros.sim.firmware import G1_29DOF_MODE_MACHINE

pytestmark = [pytest.mark.ros, pytest.mark.dds]

WIDTH, HEIGHT = 96, 72


def result(out: subprocess.CompletedProcess) -> dict[str, str]:
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, out.stdout + out.stderr
    return dict(kv.split("=", 1) for kv in line.split()[1:])


@pytest.fixture(scope="module")
def sim_node(tmp_path_factory):
    domain = random_dds_domain()
    env = ros_env()
    log = tmp_path_factory.mktemp("sim_g1") / "sim_g1.log"
    cmd = script("sim_g1") + ["--ros-args", "-p", f"dds_domain_id:={domain}", "-p", "network_interface:=lo",
                              "-p", "camera_rate:=5.0", "-p", f"camera_width:={WIDTH}",
                              "-p", f"camera_height:={HEIGHT}", "-p", "diagnostics_period:=0.5"]
    with Proc(cmd, env, log) as proc:
        assert wait_for(lambda: "simulated G1 on DDS domain" in proc.output() or not proc.alive(), 60), proc.output()
        assert proc.alive(), proc.output()
        yield proc, domain, env
        rc = proc.stop()
        text = log.read_text(errors="replace")
        assert rc == 0 and "Traceback" not in text, text  # clean shutdown on SIGTERM


@pytest.mark.timeout(120)
def test_lowcmd_moves_elbow_bad_crc_ignored_lowstate_fast_and_valid(sim_node):
    proc, domain, env = sim_node
    out = subprocess.run(python("-m", "test.peers.sim_lowcmd_peer", str(domain), "40"), env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=90)
    r = result(out)
    assert proc.alive(), proc.output()
    # rt/lowstate: high rate (lenient bound, no timing precision), every CRC valid, robot identity, ticking
    assert float(r["lowstate_per_s"]) > 100, r
    assert float(r["crc_ok_frac"]) == 1.0, r
    assert int(r["mode_machine"]) == G1_29DOF_MODE_MACHINE
    assert int(r["tick_advanced"]) > 0
    assert float(r["quat_w"]) == pytest.approx(1.0, abs=1e-3)  # pinned pelvis: level IMU
    # good CRC: the left elbow goes from where damping left it to 0.3 rad, others hold the standing pose
    assert abs(float(r["elbow_start"]) - 0.3) > 0.3, r
    assert float(r["elbow_good"]) == pytest.approx(0.3, abs=0.08), r
    assert float(r["others_max_err"]) < 0.15, r
    # bad CRC asking for 1.8 rad: ignored, the elbow stays at the last good target
    assert int(r["bad_sent"]) > 20
    assert float(r["elbow_after_bad"]) == pytest.approx(0.3, abs=0.08), r
    assert wait_for(lambda: "with a bad CRC" in proc.output(), 10), proc.output()


@pytest.mark.timeout(120)
def test_camera_image_and_diagnostics(sim_node):
    proc, _, env = sim_node
    out = subprocess.run(python("-m", "test.peers.sim_ros_listener", "60", "3"), env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=90)
    r = result(out)
    assert int(r["frames"]) >= 3, r
    assert r["encoding"] == "rgb8" and int(r["width"]) == WIDTH and int(r["height"]) == HEIGHT, r
    assert int(r["step"]) == 3 * WIDTH and int(r["data_len"]) == 3 * WIDTH * HEIGHT
    assert r["frame_id"] == "head_camera"
    assert float(r["std"]) > 10 and int(r["red_px"]) > 5, r  # a real picture with the red cup in it
    for key in ("physics_rate_hz", "realtime_factor_achieved", "lowcmd_bad_crc", "lowcmd_received",
                "lowstate_published", "overruns"):
        assert key in r, r
    assert int(r["lowstate_published"]) > 0 and float(r["physics_rate_hz"]) > 0
    print(f"sim_g1 physics {r['physics_rate_hz']} Hz, real-time factor {r['realtime_factor_achieved']}, "
          f"received {r['lowcmd_received']}, bad CRC {r['lowcmd_bad_crc']}")

