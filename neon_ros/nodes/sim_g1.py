"""sim_g1: a MuJoCo G1 that speaks the robot's own DDS topics and publishes its head camera.

    ros2 run neon_ros sim_g1 --ros-args -p dds_domain_id:=1 -p camera_rate:=15.0

rt/lowcmd and rt/arm_sdk in and rt/lowstate out (unitree_hg, CRC checked and set, 500 Hz)
run in the simulator's own physics thread (``neon_ros.sim.robot_dds``), beside a simulated
Unitree motion service and its MotionSwitcher RPCs: with ``motion_mode`` "" (the default, a
lowcmd simulation) rt/lowcmd drives the motors; with a mode name (e.g. ``ai``, the robot's
default) the motion service holds the standing pose and blends rt/arm_sdk into the waist
and arms by its weight, as the robot does for g1_bridge's default arm_sdk mode. It also serves Unitree's loco
service (SetVelocity walks the pinned base kinematically, SetFsmId damp stops it; status
"sim_g1: base" on /diagnostics: pose, velocity, calls) and records the Dex3 hand commands on
rt/dex3/<side>/cmd (the model has no hands; status "sim_g1: hands"). The head
camera renders in a second thread to /camera/image_raw; the rclpy executor only serves
/diagnostics.
"""

from __future__ import annotations

import sys

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from neon_ros import contract
from neon_ros.ros import msgs, rosutil
from neon_ros.ros.params import Param, ParamTable
from neon_ros.sim.camera import CameraLoop
from neon_ros.sim.robot_dds import SimRobot, SimRobotConfig

PARAMETERS: ParamTable = {
    "network_interface": Param("lo", "Unitree DDS network interface (lo for a local sim)"),
    "dds_domain_id": Param(1, "Unitree DDS domain (the robot uses 0; sims default to 1)", (0, 232)),
    "fixed_base": Param(True, "pin the pelvis at standing height, as on a gantry"),
    "realtime_factor": Param(1.0, "simulated s per wall s: 1.0 real time, 0 = as fast as possible", (0.0, 100.0)),
    "rt_priority": Param(0, "SCHED_FIFO priority of the physics thread (0 = normal; needs CAP_SYS_NICE)", (0, 99)),
    "motion_mode": Param("", "Unitree motion mode active at start: '' = none (rt/lowcmd drives the motors), "
                             "or a name such as ai (the motion service holds the pose and blends rt/arm_sdk)"),
    "camera_rate": Param(15.0, "head camera frames per wall second on /camera/image_raw (0 = off)", (0.0, 120.0)),
    "camera_width": Param(224, "head camera image width, px", (16, 4096)),
    "camera_height": Param(224, "head camera image height, px", (16, 4096)),
    "frame_id": Param("head_camera", "frame_id of /camera/image_raw"),
    "diagnostics_period": Param(1.0, "seconds between /diagnostics messages", (0.1, 60.0)),
}


class SimG1(Node):
    def __init__(self) -> None:
        super().__init__("sim_g1")
        p = rosutil.declare_parameters(self, PARAMETERS)
        self.config = SimRobotConfig(
            network_interface=p["network_interface"], dds_domain_id=p["dds_domain_id"],
            fixed_base=p["fixed_base"], realtime_factor=p["realtime_factor"],
            camera_width=p["camera_width"], camera_height=p["camera_height"], rt_priority=p["rt_priority"],
            motion_mode=p["motion_mode"])
        self.camera_rate = p["camera_rate"]
        self.frame_id = p["frame_id"]
        self.image_pub = self.create_publisher(Image, contract.TOPIC_CAMERA, rosutil.SENSOR_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, rosutil.STATE_QOS)
        self.create_timer(p["diagnostics_period"], self.publish_diagnostics)
        topics = (contract.DDS_LOWCMD, contract.DDS_ARM_SDK)
        self._bad_crc_logged, self._invalid_logged, self._ignored_logged = (dict.fromkeys(topics, 0) for _ in range(3))
        self._camera_error_logged = False
        self.robot = SimRobot(self.config)
        self.robot.on_first_command = self._on_first_command
        self.camera: CameraLoop | None = None
        if self.camera_rate > 0:
            self.camera = CameraLoop(self.robot.sim, self.camera_rate, self._publish_frame)
        if self.camera is not None:
            self.camera.start()  # returns after the first frame: GL setup done before physics runs
        self.robot.start()  # threads last: everything they touch exists
        c = self.config
        self.get_logger().info(
            f"simulated G1 on DDS domain {c.dds_domain_id} ({c.network_interface}), fixed_base={c.fixed_base}, "
            f"realtime_factor={c.realtime_factor}, camera {c.camera_width}x{c.camera_height} at "
            f"{self.camera_rate} Hz; " + (f"motion mode {c.motion_mode!r}: the motion service holds the standing "
                                          f"pose, rt/arm_sdk blends into the upper body" if c.motion_mode else
                                          "no motion mode: motors in damping until the first good rt/lowcmd"))

    def _on_first_command(self, topic: str, cmd) -> None:
        detail = (f"weight {cmd.weight:.3f}" if topic == contract.DDS_ARM_SDK else
                  f"{int(cmd.enabled.sum())} motors enabled, mode_machine={cmd.mode_machine}")
        self.get_logger().info(f"first good {topic}: {detail}")

    def _publish_frame(self, frame) -> None:
        stamp = rosutil.now_ns(self)
        self.image_pub.publish(msgs.clip_to_image(frame[None], stamp, frame_id=self.frame_id))

    def publish_diagnostics(self) -> None:
        s = self.robot.stats()
        ib = s.inbox
        new_drops, ignoring = 0, []
        for topic, counts, ignored in ((contract.DDS_LOWCMD, s.inbox, s.lowcmd_ignored),
                                       (contract.DDS_ARM_SDK, s.arm_sdk, s.arm_sdk_ignored)):
            new_drops += self._log_drops(topic, counts.bad_crc, counts.invalid)
            if ignored > self._ignored_logged[topic]:
                why = (f"motion mode {s.motion_mode!r} owns the motors" if topic == contract.DDS_LOWCMD else
                       "no motion mode is active to blend it into")
                ignoring.append(f"ignoring {topic}: {why}")
                self.get_logger().warning(f"{ignoring[-1]} ({ignored} steps so far)", throttle_duration_sec=10.0)
                self._ignored_logged[topic] = ignored
        values = {
            "physics_rate_hz": f"{s.physics_rate_hz:.1f}",
            "realtime_factor_achieved": f"{s.realtime_factor:.3f}",
            "realtime_factor_target": self.config.realtime_factor,
            "scheduling": self.robot.scheduling,
            "sim_time_s": f"{self.robot.sim.time:.3f}",
            "steps": s.steps,
            "lowstate_published": s.lowstate_published,
            "overruns": s.overruns,
            "step_late_p50_ms": f"{s.late_p50_ms:.3f}",
            "step_late_p99_ms": f"{s.late_p99_ms:.3f}",
            "step_late_max_ms": f"{s.late_max_ms:.3f}",
            "lowcmd_received": ib.received,
            "lowcmd_accepted": ib.accepted,
            "lowcmd_bad_crc": ib.bad_crc,
            "lowcmd_invalid": ib.invalid,
            "lowcmd_mode_machine_mismatch": ib.mode_machine_mismatch,
            "lowcmd_ignored": s.lowcmd_ignored,
            "motion_mode": s.motion_mode,
            "arm_sdk_received": s.arm_sdk.received,
            "arm_sdk_accepted": s.arm_sdk.accepted,
            "arm_sdk_bad_crc": s.arm_sdk.bad_crc,
            "arm_sdk_invalid": s.arm_sdk.invalid,
            "arm_sdk_ignored": s.arm_sdk_ignored,
            "arm_sdk_weight": f"{s.arm_sdk_weight:.4f}",
        }
        level, message = "ok", "running"
        target = self.config.realtime_factor
        if not self.robot.running:
            level, message = "error", "physics thread stopped"
        elif target > 0 and s.steps > 0 and s.realtime_factor and s.realtime_factor < 0.8 * target:
            level, message = "warn", f"slower than requested: real-time factor {s.realtime_factor:.2f}"
        elif new_drops:
            level, message = "warn", (f"dropping commands: rt/lowcmd {ib.bad_crc} bad CRC, {ib.invalid} invalid; "
                                      f"rt/arm_sdk {s.arm_sdk.bad_crc} bad CRC, {s.arm_sdk.invalid} invalid in total")
        elif ignoring:
            level, message = "warn", "; ".join(ignoring)
        statuses = [msgs.diagnostic_status("sim_g1: physics", level, message, values), *self._body_statuses()]
        if self.camera is not None:
            cam = self.camera
            if cam.error is not None and not self._camera_error_logged:
                self._camera_error_logged = True
                self.get_logger().error(f"head camera stopped: {cam.error!r} (camera_rate:=0.0 runs without it)")
            cam_level = "error" if cam.error else "ok"
            statuses.append(msgs.diagnostic_status(
                "sim_g1: head camera", cam_level, repr(cam.error) if cam.error else "rendering",
                {"rate_hz": self.camera_rate, "frames": cam.frames, "skipped": cam.skipped,
                 "mean_render_ms": f"{1e3 * cam.render_seconds / max(1, cam.frames):.1f}"}))
        self.diag_pub.publish(msgs.diagnostic_array(rosutil.now_ns(self), statuses))

    def _body_statuses(self) -> list:
        """The loco service's base and the Dex3 command monitor, as diagnostic statuses."""
        lo = self.robot.loco.stats()
        moving = any(lo.command)
        base = msgs.diagnostic_status(
            "sim_g1: base", "ok", "walking" if moving else "standing",
            {"base_x": f"{lo.pose[0]:.4f}", "base_y": f"{lo.pose[1]:.4f}", "base_yaw": f"{lo.pose[2]:.4f}",
             "distance_m": f"{lo.distance:.4f}", "cmd_vx": f"{lo.command[0]:.4f}", "cmd_vy": f"{lo.command[1]:.4f}",
             "cmd_yaw_rate": f"{lo.command[2]:.4f}", "velocity_calls": lo.velocity_calls,
             "velocity_ignored": lo.ignored, "fsm_id": lo.fsm_id})
        values = {}
        for side, r in self.robot.hands.snapshot().items():
            values |= {f"{side}_received": r.received, f"{side}_invalid": r.invalid,
                       f"{side}_q": " ".join(f"{v:.4f}" for v in r.q), f"{side}_kp": " ".join(f"{v:g}" for v in r.kp),
                       f"{side}_kd": " ".join(f"{v:g}" for v in r.kd), f"{side}_mode": " ".join(map(str, r.mode))}
        bad = values["left_invalid"] or values["right_invalid"]
        hands = msgs.diagnostic_status("sim_g1: hands", "warn" if bad else "ok",
                                       "invalid hand commands received" if bad else "recording Dex3 commands", values)
        return [base, hands]

    def _log_drops(self, topic: str, bad_crc: int, invalid: int) -> int:
        """Log new drops of ``topic`` (bad CRC, invalid values); returns how many are new."""
        new = (bad_crc - self._bad_crc_logged[topic]) + (invalid - self._invalid_logged[topic])
        if bad_crc > self._bad_crc_logged[topic]:
            self.get_logger().warning(f"dropped {bad_crc - self._bad_crc_logged[topic]} {topic} with a bad CRC "
                                      f"(total {bad_crc})")
        if invalid > self._invalid_logged[topic]:
            self.get_logger().warning(f"dropped {invalid - self._invalid_logged[topic]} {topic} with non-finite "
                                      f"values or negative gains (total {invalid})")
        self._bad_crc_logged[topic], self._invalid_logged[topic] = bad_crc, invalid
        return new

    def on_shutdown(self) -> None:
        if self.camera is not None:
            self.camera.stop()
        self.robot.stop()
        self.robot.sim.close()


def main(args: list[str] | None = None) -> int:
    return rosutil.node_main(SimG1, "sim_g1", __doc__, PARAMETERS, args)


if __name__ == "__main__":
    sys.exit(main())
