"""The bridge beside Unitree's motion service, without processes (issue 12 point 6).

arm_sdk mode against the simulated robot's motion service (the bridge's own controller and
LowCmd_ builder feeding ``SimRobot``'s rt/arm_sdk inbox on one simulated clock), a disabled
lowcmd bridge writing nothing, and the MotionSwitcher check of lowcmd mode with a fake client.
"""

import time

import numpy as np
import pytest

from neon_ros import contract, g1
from neon_ros.bridge.command import Measured
from neon_ros.bridge.controller import Controller, ControllerConfig
from neon_ros.bridge.loop import BridgeLoop
from neon_ros.bridge.lowcmd import LowCmdBuilder
from neon_ros.bridge.motion_switcher import motion_mode_refusal
from neon_ros.bridge.safety import NS, validate_trajectory
from neon_ros.sim.robot_dds import SimRobot, SimRobotConfig

DT_NS = int(contract.LOWCMD_DT * NS)
TIMES = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT
ELBOW = g1.JOINT_INDEX["left_elbow_joint"]
WAIST = list(g1.GROUPS["waist"])
ELBOW_TARGET = 0.8


class ArmSdkRig:
    """The bridge controller in arm_sdk mode driving a simulated G1 whose motion mode is active."""

    def __init__(self):
        self.robot = SimRobot(SimRobotConfig(camera_width=32, camera_height=32, motion_mode="ai"))
        self.ctrl = Controller(ControllerConfig(mode="arm_sdk", enable_ramp=0.5))
        self.builder = LowCmdBuilder("arm_sdk")
        self.now = 0
        self.weights = []

    def meas(self):
        return Measured(self.robot.sim.q, self.robot.sim.dq, self.now)

    def run(self, seconds, chunk=None):
        for k in range(int(round(seconds / contract.LOWCMD_DT))):
            if chunk is not None and k % 25 == 0:
                traj = validate_trajectory("chunk", g1.JOINT_NAMES, np.tile(chunk, (contract.CHUNK_STEPS, 1)),
                                           TIMES, self.now, self.now, self.ctrl.cfg.safety)
                self.ctrl.push(traj, self.now)
            cmd = self.ctrl.step(self.now, self.meas())
            msg = self.builder.build(cmd, self.robot.config.mode_machine)
            if cmd.publish:
                assert self.robot.arm_inbox.offer(msg)
            self.robot.step_once()
            self.weights.append(self.robot.applied.weight)
            self.now += DT_NS


@pytest.mark.timeout(120)
def test_arm_sdk_damping_leaves_the_waist_stiff_with_the_motion_service():
    rig = ArmSdkRig()
    robot, service = rig.robot, rig.robot.motion.command
    assert rig.ctrl.enable(True, rig.meas(), rig.now)[0]
    pose = g1.STANDING_POSE.copy()
    pose[ELBOW] = ELBOW_TARGET
    rig.run(2.5, chunk=pose)
    assert robot.applied.weight == 1.0  # arm_sdk owns the upper body
    assert robot.sim.q[ELBOW] == pytest.approx(ELBOW_TARGET, abs=0.08)
    waist_before = robot.sim.q[WAIST].copy()
    rig.ctrl.damp("damp_service", rig.now)
    rig.run(2.0)
    # damping in arm_sdk mode hands the upper body back: weight 0, the waist at the motion
    # service's stiffness (not kp = 0 through weight 1, a limp waist under the torso)
    assert robot.applied.weight == 0.0 and rig.ctrl.state == "damping"
    assert np.array_equal(robot.applied.kp[WAIST], service.kp[WAIST]) and service.kp[WAIST].all()
    assert np.all(np.diff(rig.weights[-1000:]) <= 0)  # a ramp down, never a jump back up
    assert robot.sim.q[ELBOW] == pytest.approx(g1.STANDING_POSE[ELBOW], abs=0.08)  # the service's hold
    assert np.max(np.abs(robot.sim.q[WAIST] - waist_before)) < 0.05
    robot.sim.close()


class Writer:
    def __init__(self):
        self.calls = 0

    def Write(self, msg):  # noqa: N802 (the SDK's name)
        self.calls += 1


@pytest.mark.timeout(30)
def test_disabled_lowcmd_bridge_writes_nothing():
    writer = Writer()
    loop = BridgeLoop(Controller(ControllerConfig(mode="lowcmd")), "lo", 1)
    loop._pub = writer  # no DDS: the loop writes into the fake publisher
    loop.start()
    try:
        time.sleep(0.5)
        assert loop.controller.cycle > 10 and loop.controller.state == "disabled"  # it ran (machine is shared)
    finally:
        loop.stop()
    assert writer.calls == 0 and loop.counts["lowcmd_sent"] == 0


class FakeSwitcher:
    """MotionSwitcherClient.CheckMode answers, one per call (the last repeats)."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

    def CheckMode(self):  # noqa: N802 (the SDK's name)
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def test_lowcmd_enables_only_when_no_motion_mode_owns_the_motors():
    assert motion_mode_refusal(FakeSwitcher((0, {"form": "0", "name": ""}))) == ""
    why = motion_mode_refusal(FakeSwitcher((0, {"form": "0", "name": "ai"})))
    assert why.startswith("refused") and "'ai'" in why and "release" in why
    silent = FakeSwitcher((3104, None))  # RPC timeout: no answer is no permission
    assert "no answer" in motion_mode_refusal(silent) and silent.calls == 2
    late = FakeSwitcher((3104, None), (0, {"form": "0", "name": ""}))  # the first request lost to discovery
    assert motion_mode_refusal(late) == "" and late.calls == 2
    with pytest.raises(ValueError, match="attempts"):
        motion_mode_refusal(late, attempts=0)
