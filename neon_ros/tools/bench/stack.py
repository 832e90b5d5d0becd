"""`neon-ros bench stack`: latencies of the perception -> control -> robot stack, and the head's timing.

1. Perception (real nodes in child processes, random ROS domain): a synthetic moving
   camera published from this process at --camera-rate -> camera_buffer -> backbone
   (--preset) -> action_head (--checkpoint, or a random-weight head saved in a temp dir)
   for --seconds. Reports camera stamp -> chunk received here (p50/p99), and the head
   node's own figures from /diagnostics: step time excluding the backbone, 20 Hz period
   error |actual period - 50 ms|, wake-up lateness against the absolute deadline.
2. Bridge: sim_g1 + g1_bridge (lowcmd mode, autostart) in child processes; this process
   publishes 20 Hz chunks whose left-elbow target steps every second and listens to
   rt/lowcmd over Unitree DDS: chunk published -> first LowCmd moving toward the new
   target (p50/p99).
3. In process: the cost of one control step (gate + head + safety clamp, and FK for the
   markers) with torch and onnxruntime, over --steps calls.
4. Demo: `neon-ros demo --headless` for --demo-seconds with the demo's own configuration
   (tools/bench/stack_demo.py): camera -> features and camera -> chunk p50/p99, also in
   frame periods of the same run, every topic's rate, CPU per node, the live-loop goals.

Figures only, no pass/fail; the machine's load average is printed beside them.
Goals (2-core machine): head step p99 <= 5 ms, period error p99 <= 2 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ELBOW = "left_elbow_joint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement time of each stage (default 20 s)")
    parser.add_argument("--preset", default="cpu_default", help="backbone preset (default cpu_default)")
    parser.add_argument("--tiny", action="store_true", help="tiny random config of the preset (no weights)")
    parser.add_argument("--checkpoint", default="", help="head checkpoint ('' = random weights, saved to a temp dir)")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch", help="head runtime in stage 1")
    parser.add_argument("--rt-priority", type=int, default=0,
                        help="rt_priority of action_head, g1_bridge and sim_g1 (SCHED_FIFO; 0 = normal)")
    parser.add_argument("--camera-rate", type=float, default=15.0, help="synthetic camera Hz (default 15)")
    parser.add_argument("--max-feature-age", type=float, default=0.3, help="action_head max_feature_age (s)")
    parser.add_argument("--steps", type=int, default=500, help="in-process head steps per runtime (default 500)")
    parser.add_argument("--step-runtimes", default="torch,onnxruntime", help="runtimes of the in-process stage")
    parser.add_argument("--demo-seconds", type=float, default=30.0, help="live seconds of the demo stage (default 30)")
    parser.add_argument("--skip", default="", help="comma list of stages to skip: perception,bridge,step,demo")
    parser.add_argument("--json", action="store_true", help="also print all figures as one JSON line")


def _ms(p: dict) -> str:
    return f"p50 {p['p50']:.2f} ms, p99 {p['p99']:.2f} ms, max {p['max']:.2f} ms (n={p['n']})"


def _backbone_identity(preset: str, tiny: bool) -> tuple[str, int]:
    """backbone id and width, as the backbone node will publish them."""
    from neon_ros.backbones import load_backbone, load_config

    cfg = load_config(preset, tiny=tiny)
    if not tiny:
        return cfg.backbone_id, int(cfg.width)
    bb = load_backbone(preset, tiny=True)  # tiny configs set their width when built
    return bb.backbone_id, bb.width


def _tails(kids, *names: str) -> str:
    """The last log lines of some children of a processes.ProcessGroup."""
    return "".join(f"--- {name}\n{kids.child(name).tail(30)}\n" for name in names)


def _spin_until(executor, predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if predicate():
            return True
    return False


# --- stage 1: perception stack ---------------------------------------------------------------

def perception(args, kids, ckpt: Path) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState
    from tqdm import tqdm
    from trajectory_msgs.msg import JointTrajectory

    from neon_ros import contract, g1
    from neon_ros.ros import msgs, rosutil
    from neon_ros.runtime.image import rgb_to_image_fields
    from neon_ros.runtime.timing import percentiles

    common = {"preset": args.preset, "tiny": args.tiny}
    kids.start_stack({
        "camera_buffer": {**common, "clip_rate": args.camera_rate},
        "backbone": common,
        "action_head": {"checkpoint": str(ckpt), "runtime": args.runtime, "max_feature_age": args.max_feature_age,
                        "diagnostics_period": 1.0, "rt_priority": args.rt_priority}})
    node = rclpy.create_node("stack_bench")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    cam = node.create_publisher(Image, contract.TOPIC_CAMERA, rosutil.SENSOR_QOS)
    js = node.create_publisher(JointState, contract.TOPIC_JOINT_STATES, rosutil.STATE_QOS)
    lat: list[float] = []
    diags: dict[str, dict] = {}
    node.create_subscription(JointTrajectory, contract.TOPIC_ACTION_CHUNK, lambda m: lat.append(
        (rosutil.now_ns(node) - msgs.stamp_to_ns(m.header.stamp)) * 1e-9), rosutil.COMMAND_QOS)

    def on_diag(m):
        for s in m.status:
            diags[s.name] = msgs.diagnostic_values(s)
    node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
    k = [0]
    yy, xx = np.mgrid[0:240, 0:320]

    def frame():
        img = np.stack([xx % 256, yy % 256, np.full_like(xx, (k[0] * 9) % 256)], -1).astype(np.uint8)
        x0 = (k[0] * 7) % 280
        img[100:140, x0:x0 + 40] = 255
        m = Image()
        for key, val in rgb_to_image_fields(img).items():
            setattr(m, key, val)
        m.header.stamp = msgs.ns_to_stamp(rosutil.now_ns(node))
        k[0] += 1
        cam.publish(m)
    node.create_timer(1.0 / args.camera_rate, frame)
    node.create_timer(0.01, lambda: js.publish(msgs.joint_state(rosutil.now_ns(node), g1.STANDING_POSE)))
    try:
        if not _spin_until(ex, lambda: len(lat) > 0, 240.0):
            raise RuntimeError("no chunk within 240 s:\n" + _tails(kids, "action_head", "backbone"))
        lat.clear()
        end = time.monotonic() + args.seconds
        with tqdm(total=int(args.seconds), unit="s", desc="perception stack", mininterval=1.0) as bar:
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.05)
                bar.update(int(args.seconds - (end - time.monotonic())) - bar.n)
    finally:
        ex.shutdown()
        node.destroy_node()
        kids.stop(5.0, ("action_head", "backbone", "camera_buffer"))
    return {"camera_to_chunk_ms": percentiles(np.array(lat) * 1e3), "head_diag": diags.get("action_head", {}),
            "backbone_diag": diags.get("backbone", {}), "camera_diag": diags.get("camera_buffer", {})}


# --- stage 2: chunk -> LowCmd -------------------------------------------------------------------

def bridge_latency(args, kids) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from tqdm import tqdm
    from trajectory_msgs.msg import JointTrajectory

    from neon_ros import contract, g1, unitree
    from neon_ros.ros import msgs, rosutil
    from neon_ros.runtime.timing import percentiles, set_fifo
    from neon_ros.tools import processes, stack

    domain = processes.random_domain(processes.UNITREE_DDS_DOMAINS)
    common = {"dds_domain_id": domain, "rt_priority": args.rt_priority}
    kids.start_stack({"g1_bridge": common, "sim_g1": {**common, "camera_rate": 0.0}})
    print(f"bench process: {set_fifo(args.rt_priority)}")
    unitree.init_channels(domain, stack.node("sim_g1").sim["network_interface"])
    low_cmd, _ = unitree.hg_types()
    elbow = g1.JOINT_INDEX[ELBOW]
    lock = threading.Lock()
    st = {"switch_ns": None, "before": None, "target": None, "last_q": None, "n": 0}
    lat: list[float] = []

    def on_cmd(msg):
        t = time.time_ns()
        q = float(msg.motor_cmd[elbow].q)
        with lock:
            st["n"] += 1
            if st["switch_ns"] is not None and st["before"] is not None:
                direction = np.sign(st["target"] - st["before"])
                if (q - st["before"]) * direction > 1e-4:
                    lat.append((t - st["switch_ns"]) * 1e-9)
                    st["switch_ns"] = None
            st["last_q"] = q
    sub = unitree.subscriber(contract.DDS_LOWCMD, low_cmd, on_cmd, 0)  # noqa: F841  (kept alive)
    node = rclpy.create_node("stack_bench_chunks")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    pub = node.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
    bridge_state: dict = {}

    def on_diag(m):
        for s in m.status:
            if s.name == "g1_bridge":
                bridge_state.update(message=s.message, values=msgs.diagnostic_values(s))
    node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, on_diag, rosutil.STATE_QOS)
    targets = (1.0, 1.25)
    cur = {"v": targets[0]}

    def publish():
        pos = np.tile(g1.STANDING_POSE, (contract.CHUNK_STEPS, 1))
        pos[:, elbow] = cur["v"]
        pub.publish(msgs.chunk_to_trajectory(pos, time.time_ns()))
    node.create_timer(contract.CONTROL_DT, publish)
    try:
        if not _spin_until(ex, lambda: st["n"] > 500, 120.0):
            raise RuntimeError("no rt/lowcmd from g1_bridge:\n" + _tails(kids, "g1_bridge", "sim_g1"))
        _spin_until(ex, lambda: False, 2.0)  # settle on the first target
        end = time.monotonic() + args.seconds
        i = 0
        with tqdm(total=int(args.seconds), unit="s", desc="chunk -> LowCmd", mininterval=1.0) as bar:
            while time.monotonic() < end:
                i += 1
                new = targets[i % 2]
                with lock:
                    st["before"], st["target"] = st["last_q"], new
                    cur["v"] = new
                    st["switch_ns"] = time.time_ns()
                publish()  # the switch goes out now, not at the next timer tick
                _spin_until(ex, lambda: False, 1.0)
                bar.update(int(args.seconds - (end - time.monotonic())) - bar.n)
    finally:
        ex.shutdown()
        node.destroy_node()
        kids.stop(5.0, ("g1_bridge", "sim_g1"))
    return {"chunk_to_lowcmd_ms": percentiles(np.array(lat) * 1e3), "switches": i, "lowcmd_seen": st["n"],
            "bridge_at_end": bridge_state.get("message", "?")}


# --- stage 3: in-process head step ---------------------------------------------------------------

def step_cost(ckpt: Path, steps: int, runtimes: list[str]) -> dict:
    from neon_ros import g1
    from neon_ros.runtime import gate
    from neon_ros.runtime.control import HeadStep
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.runtime.kinematics import G1Kinematics
    from neon_ros.runtime.timing import percentiles

    out = {}
    kin = G1Kinematics()
    for runtime in runtimes:
        head = HeadRuntime(ckpt, runtime=runtime, threads=1)
        core = HeadStep(head, gate.GateConfig(head.backbone_id, head.feature_dim), kinematics=kin)
        rng = np.random.default_rng(0)
        step, fk = [], []
        for _ in range(steps):
            now = time.time_ns()
            f = gate.Features(rng.standard_normal(head.feature_dim).astype(np.float32), now, head.backbone_id)
            j = gate.JointInput(g1.STANDING_POSE, np.zeros(g1.NUM_JOINTS), now)
            t0 = time.perf_counter()
            res = core.step(f, j, now, with_paths=True)
            total = time.perf_counter() - t0
            fk.append(res.timings.get("fk", 0.0))
            step.append(total - fk[-1])
        out[runtime] = {"step_ms": percentiles(np.array(step[10:]) * 1e3), "fk_ms": percentiles(np.array(fk[10:]) * 1e3)}
    return out


def run(args: argparse.Namespace) -> int:
    from neon_ros.tools import processes
    from neon_ros.tools.random_head import save_random_checkpoint

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          "(other work on the machine shows up in p99/max)")
    out: dict = {"loadavg": load, "preset": args.preset, "tiny": args.tiny}
    tmp = Path(tempfile.mkdtemp(prefix="neon_stack_bench_"))
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    if ckpt is None:
        bid, width = _backbone_identity(args.preset, args.tiny)
        ckpt = save_random_checkpoint(tmp / "head", width, bid)
        print(f"head: random weights for {bid} (width {width}) in {ckpt}")
    env = processes.child_env()
    processes.join_domain(env)
    if "step" not in skip:
        runtimes = [r.strip() for r in args.step_runtimes.split(",") if r.strip()]
        out["step"] = s = step_cost(ckpt, args.steps, runtimes)
        for rt, v in s.items():
            print(f"control step in process ({rt}; gate + head + clamp, FK excluded): {_ms(v['step_ms'])}; "
                  f"hand FK for markers: p50 {v['fk_ms']['p50']:.2f} ms")
    if "demo" not in skip:  # a child process with its own rclpy: before this one starts rclpy
        from neon_ros.tools.bench.stack_demo import demo_stage

        out["demo"] = demo_stage(args.demo_seconds, tmp)
    if {"perception", "bridge"} <= skip:
        if args.json:
            print(json.dumps(out, default=str))
        return 0
    import rclpy

    rclpy.init()
    try:
        with processes.ProcessGroup(env, tmp) as kids:
            if "perception" not in skip:
                out["perception"] = p = perception(args, kids, ckpt)
                h = p["head_diag"]
                print(f"perception stack ({args.preset}{' tiny' if args.tiny else ''}, head {args.runtime}), "
                      f"{args.seconds:.0f} s:")
                print(f"  camera stamp -> chunk received: {_ms(p['camera_to_chunk_ms'])}")
                if h:
                    print(f"  action_head step (no backbone): p50 {h['step_ms_p50']} ms, p99 {h['step_ms_p99']} ms; "
                          f"gap between steps p50 {h['step_gap_ms_p50']} ms, p99 {h['step_gap_ms_p99']} ms, "
                          f"max {h['step_gap_ms_max']} ms; lateness p99 {h['lateness_ms_p99']} ms; "
                          f"missed deadlines {h['missed_deadlines']}; chunks {h['chunks_total']}, "
                          f"refused stale {h['refused_stale']}; {h['rt_status']}")
                b = p["backbone_diag"]
                if b:
                    print(f"  backbone: encode p50 {b['encode_ms_p50']} ms, {b['features_rate_hz']} features/s, "
                          f"skipped clips {b['skipped_clips']}")
            if "bridge" not in skip:
                out["bridge"] = b = bridge_latency(args, kids)
                print(f"chunk published -> first rt/lowcmd toward it (g1_bridge + sim_g1): "
                      f"{_ms(b['chunk_to_lowcmd_ms'])}; {b['switches']} target steps, "
                      f"bridge at the end: {b['bridge_at_end']}")
    finally:
        rclpy.try_shutdown()
    if args.json:
        print(json.dumps(out, default=str))
    return 0
