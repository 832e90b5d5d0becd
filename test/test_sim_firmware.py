"""The simulator's robot side without DDS channels: LowCmd_ acceptance, LowState_ bytes and CRC, the loop,
the motion service and its rt/arm_sdk blend."""

import time

import numpy as np
import pytest

from neon_ros import g1, unitree
from neon_ros.sim import firmware
from neon_ros.sim.robot_dds import SimRobot, SimRobotConfig

ELBOW = g1.JOINT_INDEX["left_elbow_joint"]
ZEROS = np.zeros(g1.NUM_JOINTS)


def lowcmd(q, kp=g1.DEFAULT_KP, kd=g1.DEFAULT_KD, mode_machine=firmware.G1_29DOF_MODE_MACHINE, enabled=None):
    return unitree.fill_lowcmd(unitree.new_lowcmd(), q, ZEROS, kp, kd, ZEROS, mode_machine, enabled)


def test_inbox_accepts_good_crc_and_counts_bad_crc():
    inbox = firmware.LowCmdInbox()
    q = g1.STANDING_POSE.copy()
    q[ELBOW] = 0.3
    assert inbox.take() is None
    assert inbox.offer(lowcmd(q))
    bad = lowcmd(q + 1.0)
    bad.crc ^= 0x1
    assert not inbox.offer(bad)
    cmd = inbox.take()
    assert cmd is not None and cmd.q[ELBOW] == pytest.approx(0.3) and cmd.enabled.all()
    assert inbox.take() is None  # consumed; the newest stays readable
    assert inbox.newest() is cmd
    c = inbox.snapshot()
    assert (c.received, c.accepted, c.bad_crc, c.invalid) == (2, 1, 1, 0)


def test_inbox_refuses_non_finite_and_negative_gains_but_notes_mode_machine():
    inbox = firmware.LowCmdInbox()
    nan_q = g1.STANDING_POSE.copy()
    nan_q[0] = np.nan
    assert not inbox.offer(lowcmd(nan_q))  # CRC is fine, values are not
    assert not inbox.offer(lowcmd(g1.STANDING_POSE, kp=-g1.DEFAULT_KP))
    enabled = np.ones(g1.NUM_JOINTS, dtype=bool)
    enabled[:12] = False
    assert inbox.offer(lowcmd(g1.STANDING_POSE, mode_machine=3, enabled=enabled))
    c = inbox.snapshot()
    assert (c.invalid, c.accepted, c.mode_machine_mismatch) == (2, 1, 1)
    assert inbox.take().enabled.tolist() == enabled.tolist()


def test_damping_before_first_command_then_newest_good_command_drives():
    robot = SimRobot(SimRobotConfig(camera_width=32, camera_height=32))
    robot.sim.set_command(**{k: getattr(firmware.MotorCommand.damping(), k)
                             for k in ("q", "dq", "kp", "kd", "tau", "enabled")})
    start = robot.sim.q[ELBOW]
    for _ in range(100):
        robot.step_once()  # no channels: physics only
    assert abs(robot.sim.q[ELBOW] - start) > 1e-3  # damping only: the arm sags under gravity
    assert np.all(robot.sim.tau_est * robot.sim.dq <= 1e-12)  # and every torque opposes motion (kp = 0)
    q = g1.STANDING_POSE.copy()
    q[ELBOW] = 0.3
    robot.inbox.offer(lowcmd(q))
    bad = lowcmd(np.full(g1.NUM_JOINTS, 0.5))
    bad.crc ^= 0x4
    robot.inbox.offer(bad)
    for _ in range(750):
        robot.step_once()
    assert robot.sim.q[ELBOW] == pytest.approx(0.3, abs=0.08)
    s = robot.stats()
    assert s.steps == 850 and s.inbox.bad_crc == 1 and s.lowstate_published == 0
    robot.sim.close()


@pytest.mark.timeout(30)
def test_realtime_loop_never_runs_ahead_of_the_wall_clock():
    robot = SimRobot(SimRobotConfig(camera_width=32, camera_height=32, realtime_factor=1.0))
    t0 = time.monotonic()
    robot.start(open_dds=False)
    time.sleep(0.5)
    robot.stop()
    wall = time.monotonic() - t0
    assert not robot.running
    steps = robot.stats().steps
    assert steps > 10  # it ran (no rate assertion: the machine is shared)
    assert robot.sim.time <= wall + 2 * robot.sim.timestep  # absolute deadlines: never ahead of real time
    robot.sim.close()


@pytest.mark.timeout(30)
def test_rt_priority_is_applied_to_the_physics_thread_or_reported():
    robot = SimRobot(SimRobotConfig(camera_width=32, camera_height=32, rt_priority=5))
    robot.start(open_dds=False)
    time.sleep(0.3)
    robot.stop()
    assert robot.scheduling == "SCHED_FIFO 5" or robot.scheduling.startswith("SCHED_FIFO 5 refused")
    assert robot.stats().steps > 0
    robot.sim.close()


def test_config_is_validated():
    with pytest.raises(ValueError, match="realtime_factor"):
        SimRobotConfig(realtime_factor=-1.0)
    with pytest.raises(ValueError, match="dds_domain_id"):
        SimRobotConfig(dds_domain_id=999)
    with pytest.raises(ValueError, match="rt_priority needs realtime_factor"):
        SimRobotConfig(rt_priority=10, realtime_factor=0.0)


# --- rt/arm_sdk and the motion service (issue 12 point 6) -----------------------------------------
UPPER = list(g1.UPPER_BODY_INDICES)
LEGS = list(g1.LEG_INDICES)
KNEE = g1.JOINT_INDEX["left_knee_joint"]


def arm_sdk(weight, q=None, kp=g1.DEFAULT_KP, kd=g1.DEFAULT_KD):
    """An rt/arm_sdk LowCmd_ (weight in motor_cmd[29].q, CRC set); mode_machine 0 as in Unitree's example."""
    msg = unitree.new_lowcmd()
    msg.motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q = weight
    return unitree.fill_lowcmd(msg, g1.STANDING_POSE if q is None else q, ZEROS, kp, kd, ZEROS, 0)


def arm_pose():
    """Targets that differ from the standing pose everywhere, legs included (which must never follow)."""
    q = g1.STANDING_POSE + 0.2
    q[ELBOW] = 0.3
    return q


def motion_robot():
    return SimRobot(SimRobotConfig(camera_width=32, camera_height=32, motion_mode="ai"))


def test_arm_sdk_inbox_checks_crc_and_clips_the_weight():
    inbox = firmware.LowCmdInbox(arm_sdk=True)
    bad = arm_sdk(1.0)
    bad.crc ^= 0x2
    assert not inbox.offer(bad)
    assert not inbox.offer(arm_sdk(float("nan")))  # a non-finite weight is invalid
    assert inbox.offer(arm_sdk(1.7))
    assert inbox.take().weight == 1.0
    assert inbox.offer(arm_sdk(-0.3))
    assert inbox.take().weight == 0.0
    c = inbox.snapshot()
    assert (c.received, c.accepted, c.bad_crc, c.invalid, c.mode_machine_mismatch) == (4, 2, 1, 1, 0)
    low = firmware.LowCmdInbox()
    assert low.offer(arm_sdk(0.5)) and low.take().weight == 0.0  # rt/lowcmd has no blend weight


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_motion_service_blends_arm_sdk_into_the_upper_body_by_its_weight(weight):
    robot = motion_robot()
    service = robot.motion.command
    assert robot.applied is service  # a motion mode owns the motors from the start: the standing hold
    q_arm, kp_arm = arm_pose(), np.full(g1.NUM_JOINTS, 90.0)
    robot.arm_inbox.offer(arm_sdk(weight, q_arm, kp=kp_arm))
    robot.step_once()
    got = robot.applied
    assert got.weight == weight and got.enabled.all()
    for field, arm in (("q", q_arm), ("kp", kp_arm)):
        mine = getattr(got, field)
        want = (1 - weight) * getattr(service, field)[UPPER] + weight * arm[UPPER]
        assert np.allclose(mine[UPPER], want)
        assert np.array_equal(mine[LEGS], getattr(service, field)[LEGS])  # legs never follow arm_sdk
    robot.sim.close()


def test_arm_sdk_weight_one_moves_the_arm_and_stale_arm_sdk_keeps_its_weight():
    robot = motion_robot()
    robot.arm_inbox.offer(arm_sdk(1.0, arm_pose()))
    for _ in range(750):  # 1.5 s, the last arm_sdk long stale: the firmware keeps its weight
        robot.step_once()
    assert robot.applied.weight == 1.0
    assert robot.sim.q[ELBOW] == pytest.approx(0.3, abs=0.08)
    assert abs(robot.sim.q[KNEE] - g1.STANDING_POSE[KNEE]) < 0.02  # the leg stayed with the motion service
    robot.arm_inbox.offer(arm_sdk(0.0, arm_pose()))
    for _ in range(750):
        robot.step_once()
    assert robot.applied is robot.motion.command
    assert robot.sim.q[ELBOW] == pytest.approx(g1.STANDING_POSE[ELBOW], abs=0.08)
    assert robot.stats().arm_sdk_weight == 0.0
    robot.sim.close()


def test_lowcmd_reaches_the_motors_only_after_the_motion_mode_is_released():
    robot = motion_robot()
    q = g1.STANDING_POSE.copy()
    q[ELBOW] = 0.3
    robot.inbox.offer(lowcmd(q))
    robot.step_once()
    assert robot.applied is robot.motion.command and robot.stats().lowcmd_ignored == 1
    assert robot.motion.check() == {"form": firmware.MOTION_FORM, "name": "ai"}
    robot.motion.release()  # MotionSwitcher ReleaseMode: the motors drop to damping until rt/lowcmd
    robot.step_once()
    assert robot.motion.check()["name"] == "" and not robot.applied.kp.any() and robot.applied.kd.all()
    robot.arm_inbox.offer(arm_sdk(1.0, arm_pose()))
    robot.step_once()  # no motion service to blend arm_sdk into
    assert not robot.applied.kp.any() and robot.stats().arm_sdk_ignored == 1
    robot.inbox.offer(lowcmd(q))
    robot.step_once()
    assert robot.applied.q[ELBOW] == pytest.approx(0.3)
    robot.motion.select("ai")  # SelectMode: the motion service takes the motors back, arm_sdk blended in
    robot.step_once()
    assert robot.applied.weight == 1.0 and robot.applied.q[ELBOW] == pytest.approx(0.3)
    assert np.array_equal(robot.applied.q[LEGS], g1.STANDING_POSE[LEGS])
    robot.sim.close()


def test_motion_mode_names_are_validated():
    with pytest.raises(ValueError, match="motion mode"):
        firmware.MotionService().select("")
    with pytest.raises(ValueError, match="motion_mode"):
        SimRobotConfig(motion_mode="x" * 40)
    with pytest.raises(ValueError, match="fixed_base"):
        SimRobotConfig(motion_mode="ai", fixed_base=False)
