"""`neon-ros bench bridge`: timing and safety figures of the bridge against a running sim_g1.

1. Step: the cost of one safety+LowCmd+CRC step (controller.step + check + fill + CRC,
   no DDS) and of validating one 16x29 chunk, as medians over --steps calls.
2. Loop: starts sim_g1 in another process (random Unitree DDS domain, loopback), runs the
   real BridgeLoop (controller + safety + LowCmd_ + CRC + DDS write) in this process,
   enabled and fed a 20 Hz stream of chunks (a slow left-elbow sinusoid) for --seconds,
   and reports the period error |actual period - 2 ms| (p50/p99/max), the wake-up lateness
   against the absolute deadline, overruns (deadlines skipped), and the in-loop step cost.
3. E-stop: sim_g1 + g1_bridge + bridge_watchdog as the stack starts them (child processes);
   this process publishes /neon/estop (from a DDS participant of its own, like an e-stop
   device) and listens to the bridge's heartbeat over Unitree DDS (written right after each
   LowCmd_; writer source timestamps). E-stop published -> first damping LowCmd_, over
   --trials quiet trials and --flood-trials trials in which the e-stop is published in the
   middle of --flood random chunks on /neon/action_chunk and as many on
   /neon/teleop/joint_trajectory, sent as fast as this process can; the LowCmd_ rate during
   and in the second after each flood as % of 500 Hz (the bridge's own count, carried by
   its heartbeat; also before the flood, quiet), and the
   bridge's own figure (e-stop callback -> cycle that applied it) from /diagnostics.
   Floor: meanwhile a process that only keeps the 500 Hz schedule, at the bridge's priority
   (neon_ros.tools.bench.sched_floor), shows what the kernel gives any loop there during the
   floods: its wake-ups as % of 500 Hz and its latest wake-up.
4. Kill: the bridge holds a pose with stiffness and gets SIGKILL; kill -> first damping
   LowCmd_ from bridge_watchdog (on rt/lowcmd itself), over --kill-trials (the bridge is
   restarted in between). The watchdog runs as on the robot, real-time where permitted
   (--watchdog-rt-priority 0: normal scheduling, as in the simulated stack).

Figures only (no pass/fail). A loaded machine shows up in p99/max: the load average is printed.
Goals of issue 12: e-stop -> damping within one cycle (2 ms), LowCmd_ >= 95% of 500 Hz under
the flood; the watchdog's safety bound, kill -> damped <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from neon_ros import contract
from neon_ros.tools.bench.bridge_safety import print_safety, safety_figures

SIM_STAGES = ("loop", "estop", "floor", "kill")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="loop measurement time (default 10 s)")
    parser.add_argument("--steps", type=int, default=3000, help="calls for the step-cost medians (default 3000)")
    parser.add_argument("--mode", choices=("lowcmd", "arm_sdk"), default="lowcmd", help="bridge mode")
    parser.add_argument("--rt-priority", type=int, default=0,
                        help="SCHED_FIFO priority of the bridge side (this process after sim_g1 started; "
                             "needs CAP_SYS_NICE; 0 = normal)")
    parser.add_argument("--slice-us", type=float, default=None,
                        help="at --rt-priority 0: the bridge's fair-scheduler time slice, us (g1_bridge's slice_us; "
                             "default: config/neon.yaml's; 0 = the kernel's default)")
    parser.add_argument("--no-sim", action="store_true", help="step cost only (skips every stage with sim_g1)")
    parser.add_argument("--skip", default="", help=f"comma list of stages to skip: {','.join(SIM_STAGES)}")
    parser.add_argument("--trials", type=int, default=10, help="quiet e-stop trials (default 10)")
    parser.add_argument("--flood-trials", type=int, default=5, help="e-stop trials amid a flood (default 5)")
    parser.add_argument("--flood", type=int, default=3000,
                        help="random chunks per command topic in each flood (default 3000)")
    parser.add_argument("--kill-trials", type=int, default=3, help="SIGKILLs of g1_bridge (default 3)")
    parser.add_argument("--watchdog-rt-priority", type=int, default=None,
                        help="SCHED_FIFO priority of bridge_watchdog (default: the robot's, from the stack table; "
                             "0 = normal)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")


def _ms(p: dict) -> str:
    return f"p50 {p['p50']:.3f} ms, p99 {p['p99']:.3f} ms, max {p['max']:.3f} ms (n={p['n']})"


def step_cost(steps: int, mode: str) -> dict[str, float]:
    """Median microseconds of one controller+check+LowCmd+CRC step and of one chunk validation."""
    from neon_ros import g1
    from neon_ros.bridge.command import Measured
    from neon_ros.bridge.controller import Controller, ControllerConfig
    from neon_ros.bridge.lowcmd import LowCmdBuilder
    from neon_ros.bridge.safety import NS, validate_trajectory
    from neon_ros.runtime.timing import percentiles

    ctrl = Controller(ControllerConfig(mode=mode))
    builder = LowCmdBuilder(mode)
    now = time.time_ns()
    meas = Measured(g1.STANDING_POSE.copy(), np.zeros(g1.NUM_JOINTS), now)
    ctrl.enable(True, meas, now)
    times = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT
    pos = np.tile(g1.STANDING_POSE, (contract.CHUNK_STEPS, 1))
    pos[:, g1.JOINT_INDEX["left_elbow_joint"]] = np.linspace(1.28, 0.8, contract.CHUNK_STEPS)
    step_s, val_s = [], []
    for k in range(steps):
        t = now + k * int(contract.LOWCMD_DT * NS)
        meas.received_ns = t
        if k % 25 == 0:
            t0 = time.perf_counter()
            traj = validate_trajectory("chunk", g1.JOINT_NAMES, pos, times, t, t, ctrl.cfg.safety)
            val_s.append(time.perf_counter() - t0)
            ctrl.push(traj, t)
        t0 = time.perf_counter()
        builder.build(ctrl.step(t, meas), 0)
        step_s.append(time.perf_counter() - t0)
    step_us = percentiles(np.asarray(step_s) * 1e6)
    return {"step_us_median": step_us["p50"], "step_us_p99": step_us["p99"],
            "validate_chunk_us_median": percentiles(np.asarray(val_s) * 1e6)["p50"]}


def loop_timing(seconds: float, mode: str, rt_priority: int, slice_us: float, domain: int, keep: list) -> dict:
    from tqdm import tqdm

    from neon_ros import g1
    from neon_ros.bridge.controller import Controller, ControllerConfig
    from neon_ros.bridge.loop import BridgeLoop
    from neon_ros.bridge.safety import validate_trajectory
    from neon_ros.runtime.timing import percentiles, set_fifo, set_slice
    from neon_ros.tools import processes

    logs = Path(tempfile.mkdtemp(prefix="neon_bench_bridge_"))
    with processes.ProcessGroup(processes.child_env(), logs) as kids:
        kids.start_stack({"sim_g1": {"dds_domain_id": domain, "camera_rate": 0.0}})
        sim = kids.child("sim_g1")
        # After the sim started (it must not inherit it), before any DDS thread exists.
        if rt_priority > 0:
            set_fifo(rt_priority, whole_process=False, inherit=True)
        elif slice_us > 0:  # as g1_bridge does
            set_slice(slice_us, whole_process=False)
        ctrl = Controller(ControllerConfig(mode=mode))
        loop = BridgeLoop(ctrl, "lo", domain, history=int(seconds / contract.LOWCMD_DT) + 100,
                          rt_priority=rt_priority)
        keep.append(loop)
        loop.open()
        deadline = time.monotonic() + 90
        while loop.measured() is None:  # the loop thread polls LowState once it runs; here, before it
            loop.poll_lowstate()
            if time.monotonic() > deadline or not sim.alive():
                raise RuntimeError("no rt/lowstate from sim_g1:\n" + sim.output()[-2000:])
            time.sleep(0.05)
        loop.start()
        with loop.lock:
            ok, text = ctrl.enable(True, loop.latest, loop.clock())
        if not ok:
            raise RuntimeError(f"bridge did not enable: {text}")
        elbow = g1.JOINT_INDEX["left_elbow_joint"]
        times = np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT
        t_start = time.monotonic()
        next_chunk = t_start
        with tqdm(total=round(seconds, 1), unit="s", desc="bridge loop with sim_g1", mininterval=1.0) as bar:
            while (elapsed := time.monotonic() - t_start) < seconds:
                now = loop.clock()
                pos = np.tile(g1.STANDING_POSE, (contract.CHUNK_STEPS, 1))
                pos[:, elbow] = 1.0 + 0.3 * np.sin(2 * np.pi * 0.25 * (elapsed + times))
                traj = validate_trajectory("chunk", g1.JOINT_NAMES, pos, times, now, now, ctrl.cfg.safety)
                with loop.lock:
                    ctrl.push(traj, now)
                next_chunk += contract.CONTROL_DT
                time.sleep(max(0.0, next_chunk - time.monotonic()))
                bar.update(round(min(elapsed, seconds), 1) - bar.n)
        with loop.lock:
            state, source = ctrl.state, ctrl.source + (f", {ctrl.damp_reason}" if ctrl.damp_reason else "")
        loop.stop()
        meas = loop.measured()
        return {
            "period_error_ms": percentiles(np.array(loop.period_error) * 1e3),
            "lateness_ms": percentiles(np.array(loop.lateness) * 1e3),
            "in_loop_step_ms": percentiles(np.array(loop.step_cost) * 1e3),
            "overruns": loop.counts["overruns"], "lowcmd_sent": loop.counts["lowcmd_sent"],
            "lowstate_received": loop.counts["lowstate"], "state_at_end": f"{state}/{source}",
            "elbow_at_end": None if meas is None else round(float(meas.q[elbow]), 3),
            "rt_status": loop.rt_status,
        }


def slice_us(args: argparse.Namespace) -> float:
    """--slice-us, or g1_bridge's slice_us in config/neon.yaml."""
    if args.slice_us is not None:
        return float(args.slice_us)
    import yaml

    from neon_ros.config_files import config_file

    return float(yaml.safe_load(config_file("neon.yaml").read_text())["g1_bridge"]["ros__parameters"]["slice_us"])


def run(args: argparse.Namespace) -> int:
    from neon_ros.tools import processes

    skip = {x.strip() for x in args.skip.split(",") if x.strip()} | (set(SIM_STAGES) if args.no_sim else set())
    if not {"estop", "kill"} <= skip:
        import rclpy  # noqa: F401  (its import re-executes this process once: before anything runs)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          "(other work on the machine shows up in p99/max)")
    out: dict = {"loadavg": load}
    out["step"] = step_cost(args.steps, args.mode)
    s = out["step"]
    print(f"one safety+LowCmd+CRC step ({args.mode}): median {s['step_us_median']:.0f} us, "
          f"p99 {s['step_us_p99']:.0f} us; validating one 16x29 chunk: median {s['validate_chunk_us_median']:.0f} us")
    domain = processes.random_domain(processes.UNITREE_DDS_DOMAINS)  # one per process: the SDK's DDS is a singleton
    # What owns unitree_sdk2py DDS endpoints lives until the process ends: cyclonedds can crash
    # when a reader is created on a topic whose endpoints were garbage-collected meanwhile.
    keep: list = []
    slice_of_bridge = slice_us(args)
    if "loop" not in skip:
        out["loop"] = loop = loop_timing(args.seconds, args.mode, args.rt_priority, slice_of_bridge, domain, keep)
        print(f"500 Hz loop with sim_g1 in another process, {args.seconds:.0f} s ({loop['rt_status']}):")
        print(f"  period error |period - 2 ms|: {_ms(loop['period_error_ms'])}")
        print(f"  wake-up lateness vs absolute deadline: {_ms(loop['lateness_ms'])}")
        print(f"  in-loop step (controller+LowCmd+CRC+DDS write): {_ms(loop['in_loop_step_ms'])}")
        print(f"  overruns (deadlines skipped): {loop['overruns']}; LowCmd sent {loop['lowcmd_sent']}, "
              f"LowState received {loop['lowstate_received']}; at the end: {loop['state_at_end']}, "
              f"left elbow {loop['elbow_at_end']} rad")
        print(f"  goal p99 period error <= 0.5 ms: {'met' if loop['period_error_ms']['p99'] <= 0.5 else 'NOT met'}")
    if not {"estop", "kill"} <= skip:
        out["safety"] = safety = safety_figures(args, domain, slice_of_bridge, skip, keep)
        print_safety(safety, args.flood)
    if args.json:
        print(json.dumps(out, default=str))
    return 0
