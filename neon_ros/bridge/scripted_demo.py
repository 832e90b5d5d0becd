"""A scripted arm motion on the simulated G1, through the real bridge: the fallback main job.

    python -m neon_ros.bridge.scripted_demo --seconds 10

Starts sim_g1 (MuJoCo, pelvis pinned) and g1_bridge (mode lowcmd, autostart) as child
processes in an isolated ROS domain and a Unitree DDS domain away from the robot's, then
publishes /neon/action_chunk at 20 Hz: 16 points x 29 joints sampled from a keyframed
motion (raise the left arm, then the right, turn the waist, return), each chunk stamped
now so the bridge plays it on its own time base. It prints each phase as it starts, the
commanded vs measured pose once a second, and the tracking error per moved joint at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

from neon_ros import contract, g1

# (fraction of the run, phase description, {joint: target rad}); joints not named: standing pose.
KEYFRAMES: tuple[tuple[float, str, dict[str, float]], ...] = (
    (0.10, "hold the standing pose", {}),
    (0.30, "raise the left arm forward, open the elbow",
     {"left_shoulder_pitch_joint": -0.8, "left_elbow_joint": 0.5}),
    (0.50, "lower the left arm; raise the right arm",
     {"right_shoulder_pitch_joint": -0.8, "right_elbow_joint": 0.5}),
    (0.70, "turn the waist, bend both elbows",
     {"waist_yaw_joint": 0.3, "left_elbow_joint": 1.0, "right_elbow_joint": 1.0}),
    (0.90, "return to the standing pose", {}),
)
MOVED = ("left_shoulder_pitch_joint", "left_elbow_joint", "right_shoulder_pitch_joint", "right_elbow_joint",
         "waist_yaw_joint")


def keyframe_pose(targets: dict[str, float]) -> np.ndarray:
    q = g1.STANDING_POSE.copy()
    for name, value in targets.items():
        q[g1.JOINT_INDEX[name]] = value
    return q


class Motion:
    """Piecewise-linear pose over time: a phase moves for MOVE_SHARE of its time, then holds."""

    MOVE_SHARE = 0.6

    def __init__(self, seconds: float):
        ends = [0.0] + [f * seconds for f, _, _ in KEYFRAMES]
        self.starts = np.array(ends[:-1])
        times, poses = [0.0], [g1.STANDING_POSE]
        for (start, end), (_, _, targets) in zip(zip(ends[:-1], ends[1:], strict=True), KEYFRAMES, strict=True):
            times += [start + self.MOVE_SHARE * (end - start), end]
            poses += [keyframe_pose(targets)] * 2
        self.times, self.poses = np.array(times), np.stack(poses)
        self.names = [n for _, n, _ in KEYFRAMES]

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        out = np.empty((t.size, g1.NUM_JOINTS))
        for j in range(g1.NUM_JOINTS):
            out[:, j] = np.interp(t, self.times, self.poses[:, j])
        return out

    def phase(self, t: float) -> int:
        return int(np.searchsorted(self.starts, t, side="right")) - 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neon_ros.bridge.scripted_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the scripted motion (>= 4 s)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="s to wait for sim_g1 + g1_bridge")
    args = parser.parse_args(argv)
    if args.seconds < 4.0:
        parser.error("--seconds must be >= 4")

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from neon_ros import msgs, rosutil
    from neon_ros.bridge import procs

    env = procs.isolated_env()
    domain = procs.random_dds_domain()
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")})
    print(f"starting sim_g1 + g1_bridge (ROS domain {env['ROS_DOMAIN_ID']}, Unitree DDS domain {domain} on lo)",
          flush=True)
    with procs.ChildProcesses(env) as kids:
        kids.start("sim_g1", procs.node_command("sim_g1", {"dds_domain_id": domain, "network_interface": "lo",
                                                           "fixed_base": True, "camera_rate": 0.0}))
        kids.start("g1_bridge", procs.node_command("g1_bridge", {
            "mode": "lowcmd", "autostart": True, "dds_domain_id": domain, "network_interface": "lo",
            "diagnostics_rate": 5.0, "lowstate_timeout": 0.5}))
        rclpy.init(args=[])
        node = Node("scripted_demo")
        lock = threading.Lock()
        latest: dict = {"q": None, "diag": {}, "rtf": []}

        def on_js(m: JointState) -> None:
            with lock:
                latest["q"] = msgs.joint_state_to_g1(m)[0]

        def on_diag(m: DiagnosticArray) -> None:
            for s in m.status:
                if s.name == "g1_bridge":
                    with lock:
                        latest["diag"] = msgs.diagnostic_values(s)
                elif "realtime_factor_achieved" in (values := msgs.diagnostic_values(s)):
                    with lock:
                        latest["rtf"].append(float(values["realtime_factor_achieved"]))

        node.create_subscription(JointState, contract.TOPIC_JOINT_STATES, on_js, rosutil.STATE_QOS)
        node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
        pub = node.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        spin = threading.Thread(target=ex.spin, daemon=True)
        spin.start()
        try:
            return _run(args, kids, node, pub, lock, latest, msgs, rosutil)
        finally:
            ex.shutdown(timeout_sec=1.0)
            node.destroy_node()
            rclpy.try_shutdown()


def _run(args, kids, node, pub, lock, latest, msgs, rosutil) -> int:
    deadline = time.monotonic() + args.startup_timeout
    while True:
        with lock:
            active = latest["q"] is not None and latest["diag"].get("state") == "active"
        if active:
            break
        for name in ("sim_g1", "g1_bridge"):
            if not kids.alive(name):
                print(f"{name} exited:\n{kids.tail(name)}", file=sys.stderr)
                return 1
        if time.monotonic() > deadline:
            print("sim_g1 + g1_bridge did not come up in time; logs:\n" + kids.tail("sim_g1") + kids.tail("g1_bridge"),
                  file=sys.stderr)
            return 1
        time.sleep(0.05)
    print("bridge enabled from the measured pose (autostart); playing the scripted motion as 20 Hz chunks",
          flush=True)
    motion = Motion(args.seconds)
    k = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT
    idx = [g1.JOINT_INDEX[n] for n in MOVED]
    errors, phase, next_print = [], -1, 1.0
    t0 = time.monotonic()
    next_tick = t0
    while (t := time.monotonic() - t0) < args.seconds + 1.0:
        pub.publish(msgs.chunk_to_trajectory(motion(t + k), rosutil.now_ns(node)))
        if motion.phase(t) != phase and motion.phase(t) < len(motion.names):
            phase = motion.phase(t)
            print(f"[{t:5.1f} s] phase {phase + 1}/{len(motion.names)}: {motion.names[phase]}", flush=True)
        with lock:
            q, diag = latest["q"], dict(latest["diag"])
        want = motion(t)[0]
        if q is not None and t > 0.5:
            errors.append(np.abs(q - motion(t - 0.15)[0])[idx])  # allow the bridge's 150 ms of smoothing
        if t >= next_print and q is not None:
            next_print += 1.0
            pairs = "  ".join(f"{n.replace('_joint', '')} {want[i]:+.2f}/{q[i]:+.2f}" for n, i in zip(MOVED, idx, strict=True))
            print(f"[{t:5.1f} s] {diag.get('state')}/{diag.get('source')}  cmd/measured rad: {pairs}", flush=True)
        next_tick += contract.CONTROL_DT
        time.sleep(max(0.0, next_tick - time.monotonic()))
    time.sleep(0.5)
    with lock:
        q, diag = latest["q"], dict(latest["diag"])
    final = np.abs(q - g1.STANDING_POSE)[idx]
    err = np.array(errors)
    print("\ntracking of the moved joints (|measured - commanded 150 ms earlier|, rad):")
    for j, n in enumerate(MOVED):
        print(f"  {n:28s} median {np.median(err[:, j]):.3f}  max {err[:, j].max():.3f}  "
              f"final error vs standing {final[j]:.3f}")
    rejects = {k: v for k, v in diag.items() if k.startswith("reject_") and v != "0"}
    print(f"bridge: state {diag.get('state')}/{diag.get('source')}, chunks accepted {diag.get('accepted_chunk')}, "
          f"rejected {rejects or 'none'}, loop period error p99 {diag.get('period_error_p99_ms')} ms, "
          f"overruns {diag.get('overruns')}")
    with lock:
        rtf = latest["rtf"][1:]  # the first window includes start-up
    if rtf:
        print(f"sim_g1: real-time factor achieved min {min(rtf):.2f}, median {np.median(rtf):.2f} "
              "(below 1 the physics runs slower than the wall clock: the machine is overloaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
