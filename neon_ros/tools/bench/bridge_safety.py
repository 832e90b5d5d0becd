"""The safety stages of `neon-ros bench bridge` (see neon_ros.tools.bench.bridge, stages 3-4).

sim_g1 + g1_bridge + bridge_watchdog started as the stack starts them; e-stop published ->
first damping LowCmd_ (quiet and amid a flood of random chunks and teleop messages), the
LowCmd_ rate from the bridge's heartbeat, and SIGKILL of the bridge -> the watchdog's first
damping LowCmd_. Figures only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from neon_ros import contract
from neon_ros.bridge.command import STATES

DAMPING, POWERED, OFF = 0, 1, 2  # kinds of LowCmd_ seen on the wire
FULL_RATE = 1.0 / contract.LOWCMD_DT


class DdsLog:
    """Samples of one Unitree DDS topic as rows (writer's source timestamp ns, *fields(sample))."""

    def __init__(self, domain: int, topic: str, msg_type: type, fields, width: int):
        from neon_ros import unitree

        self.lock = threading.Lock()
        self.rows: list[tuple] = []
        self.fields, self.width = fields, 1 + width
        unitree.init_channels(domain, "lo")
        # queue_len 0: recorded in the DDS listener as each sample arrives
        self._sub = unitree.subscriber(topic, msg_type, self._on_sample, 0)

    def _on_sample(self, msg) -> None:
        info = getattr(msg, "sample_info", None)
        row = (int(info.source_timestamp) if info is not None else time.time_ns(), *self.fields(msg))
        with self.lock:
            self.rows.append(row)

    def array(self) -> np.ndarray:
        """(n, 1 + fields) int64, in arrival order."""
        with self.lock:
            return np.array(self.rows, dtype=np.int64).reshape(len(self.rows), self.width)

    def heard_since(self, t_ns: int, timeout: float) -> bool:
        """Wait until a sample written after ``t_ns`` arrived (a new reader is matched after discovery)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.rows and self.rows[-1][0] > t_ns:
                    return True
            time.sleep(0.02)
        return False

    def first_after(self, t_ns: int, match, timeout: float = 5.0) -> tuple[float | None, np.ndarray | None]:
        """(ms from ``t_ns`` (wall clock) to the first sample written at or after it whose row
        ``match``es, the last row written before ``t_ns``); None for what never came."""
        deadline = time.monotonic() + timeout
        while True:
            a = self.array()
            before = a[a[:, 0] < t_ns]
            prev = before[np.argmax(before[:, 0])] if len(before) else None
            after = a[(a[:, 0] >= t_ns) & match(a)]
            if len(after):
                return (int(after[:, 0].min()) - t_ns) / 1e6, prev
            if time.monotonic() > deadline:
                return None, prev
            time.sleep(0.02)


def wire_log(domain: int) -> DdsLog:
    """rt/lowcmd as (t, kind): OFF, POWERED (some kp > 0) or DAMPING. Decoding each LowCmd_ in
    Python costs 0.5-0.9 ms: this log runs only where the LowCmd_ itself must be seen."""
    from neon_ros import g1, unitree

    def kind(msg) -> tuple[int]:
        motors = msg.motor_cmd[:g1.NUM_JOINTS]
        return (OFF if not any(m.mode for m in motors) else POWERED if any(m.kp for m in motors) else DAMPING,)

    return DdsLog(domain, contract.DDS_LOWCMD, unitree.hg_types()[0], kind, 1)


def beat_log(domain: int) -> DdsLog:
    """The bridge's heartbeat as (t, state index, published, lowcmd_sent): written right after each LowCmd_."""
    from neon_ros.bridge import heartbeat

    return DdsLog(domain, heartbeat.TOPIC, heartbeat.heartbeat_type(),
                  lambda b: (int(b.state), int(b.published), int(b.lowcmd_sent)), 3)


def lowcmd_rate(beats: np.ndarray, t0_ns: int, t1_ns: int) -> float:
    """LowCmd_ the bridge wrote per second in [t0, t1) (its own count, from the heartbeats), % of 500 Hz."""
    w = beats[(beats[:, 0] >= t0_ns) & (beats[:, 0] < t1_ns)]
    if len(w) < 2:
        return 0.0
    first, last = w[np.argmin(w[:, 0])], w[np.argmax(w[:, 0])]
    return 100.0 * (last[3] - first[3]) / max((last[0] - first[0]) / 1e9, 1e-9) / FULL_RATE


def max_gap_ms(beats: np.ndarray, t0_ns: int, t1_ns: int) -> float:
    """The longest time without a heartbeat (so without a bridge cycle) in [t0, t1), ms."""
    t = np.sort(beats[(beats[:, 0] >= t0_ns) & (beats[:, 0] < t1_ns), 0])
    return float(np.max(np.diff(t), initial=0)) / 1e6


def floor_figures(rows: np.ndarray, t0_ns: int, t1_ns: int) -> dict[str, float]:
    """sched_floor's wake-ups (rows of wall-clock ns, lateness ns) within [t0, t1): as % of 500 Hz,
    the largest lateness and the longest gap, ms."""
    t = rows[(rows[:, 0] >= t0_ns) & (rows[:, 0] < t1_ns)]
    span = (t1_ns - t0_ns) / 1e9
    if span <= 0 or not len(t):
        return {"rate_pct": 0.0, "max_late_ms": float("nan"), "max_gap_ms": float("nan")}
    return {"rate_pct": 100.0 * len(t) * contract.LOWCMD_DT / span,
            "max_late_ms": float(t[:, 1].max()) / 1e6,
            "max_gap_ms": max_gap_ms(t, t0_ns, t1_ns)}


class SafetyRig:
    """sim_g1 + g1_bridge + bridge_watchdog (the stack's simulation settings) and this process's ROS side."""

    def __init__(self, kids, domain: int, rt_priority: int, slice_us: float, watchdog_rt_priority: int,
                 state_dir: Path):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from std_srvs.srv import SetBool
        from trajectory_msgs.msg import JointTrajectory

        from neon_ros.ros import msgs, rosutil
        from neon_ros.ros.teleop import EstopSender

        self.kids, self.SetBool, self.msgs = kids, SetBool, msgs
        # autostart off: every trial enables explicitly (which also resets the persisted e-stop latch)
        # lowstate_timeout 1 s: a sim_g1 stall on a loaded machine must not damp the bridge mid-trial
        self.bridge_params = {"dds_domain_id": domain, "autostart": False, "rt_priority": rt_priority,
                              "slice_us": slice_us,
                              "state_dir": str(state_dir), "diagnostics_rate": 10.0, "lowstate_timeout": 1.0}
        self.domain = domain
        kids.start_stack({"g1_bridge": self.bridge_params,
                          "bridge_watchdog": {"dds_domain_id": domain, "rt_priority": watchdog_rt_priority},
                          "sim_g1": {"dds_domain_id": domain, "camera_rate": 0.0}})
        self.bridge = kids.child("g1_bridge")
        self.beats = beat_log(domain)
        self.wire: DdsLog | None = None  # rt/lowcmd itself: only for the kill trials (decoding it is costly)
        self.node = rclpy.create_node("bridge_bench")
        self.chunk_pub = self.node.create_publisher(JointTrajectory, contract.TOPIC_ACTION_CHUNK, rosutil.COMMAND_QOS)
        self.teleop_pub = self.node.create_publisher(JointTrajectory, contract.TOPIC_TELEOP, rosutil.COMMAND_QOS)
        # The e-stop comes from a participant of its own, as from an e-stop device's process: the
        # flood's writers share this node's participant (and its shared-memory segment).
        self.estop = EstopSender("bridge_bench_estop")
        self.enable_cli = self.node.create_client(SetBool, contract.SERVICE_ENABLE)
        self.diag: dict[str, dict[str, str]] = {}
        self.node.create_subscription(DiagnosticArray, contract.TOPIC_DIAGNOSTICS, self._on_diag, rosutil.STATE_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()

    def _on_diag(self, m) -> None:
        for st in m.status:
            if st.name in ("g1_bridge", "bridge_watchdog"):
                self.diag[st.name] = self.msgs.diagnostic_values(st)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.estop.close()

    def wait(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def bridge_value(self, key: str) -> str | None:
        return self.diag.get("g1_bridge", {}).get(key)

    def activate(self) -> None:
        """Release the e-stop, enable (an explicit reset), and wait until the bridge holds with stiffness."""
        self.estop.send(False, 2.0)
        if not self.enable_cli.wait_for_service(timeout_sec=60.0):
            raise RuntimeError("no /g1_bridge/enable:\n" + self.bridge.tail(30))
        deadline = time.monotonic() + 30.0
        while True:
            fut = self.enable_cli.call_async(self.SetBool.Request(data=True))
            self.wait(fut.done, 10.0)
            if fut.done() and fut.result().success:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bridge does not enable: {fut.result() if fut.done() else 'no answer'}\n"
                                   + self.bridge.tail(30))
            time.sleep(0.2)  # the release has not reached the bridge yet
        if not self.wait(lambda: self.bridge_value("state") == "active", 10.0):
            raise RuntimeError("the bridge did not report active:\n" + self.bridge.tail(30))
        time.sleep(0.5)  # stiffness ramps in; the robot holds its pose

    def estop_trial(self, flood: int) -> dict:
        """E-stop -> first damping LowCmd_, alone (flood 0) or in the middle of ``flood`` x 2 random chunks."""
        from neon_ros import g1

        self.activate()
        if not self.beats.heard_since(time.time_ns(), 30.0):
            raise RuntimeError("the bridge's heartbeat is not heard here:\n" + self.bridge.tail(30))
        rng = np.random.default_rng()
        pool = [self.msgs.chunk_to_trajectory(
            np.tile(g1.STANDING_POSE, (contract.CHUNK_STEPS, 1)) + rng.normal(0.0, 0.02, (contract.CHUNK_STEPS, 29)), 0)
            for _ in range(100)] if flood else []
        quiet0 = time.time_ns()
        time.sleep(1.0)
        t0 = time.time_ns()
        sender = threading.Thread(target=self.estop.send, args=(True, 5.0))  # its own thread, as its own process
        for k in range(flood):
            stamp = self.msgs.ns_to_stamp(time.time_ns())
            chunk, teleop = pool[k % 50], pool[50 + k % 50]
            chunk.header.stamp = teleop.header.stamp = stamp
            self.chunk_pub.publish(chunk)
            self.teleop_pub.publish(teleop)
            if k == flood // 2:
                sender.start()
        t1 = time.time_ns()
        if not flood:
            sender.start()
        sender.join()
        t_estop = self.estop.sent_ns  # its thread's first publish (it waited for this process's GIL first)
        damping = STATES.index("damping")
        latency, before = self.beats.first_after(t_estop, lambda a: (a[:, 1] == damping) & (a[:, 2] == 1))
        estops = _float(self.bridge_value("estop"))
        time.sleep(1.0)
        self.wait(lambda: _float(self.bridge_value("estop")) != estops, 2.0)  # the diagnostics of this e-stop
        active = before is not None and before[1] == STATES.index("active")
        beats = self.beats.array()
        out = {"estop_to_damping_ms": latency if active else None, "active_before": active,
               "bridge_side_ms": _float(self.bridge_value("estop_latency_ms")) if active else None,
               "quiet_rate_pct": lowcmd_rate(beats, quiet0, t0)}
        if flood:
            out |= {"flood_s": (t1 - t0) / 1e9, "flood_t0_ns": t0, "flood_t1_ns": t1,
                    "flood_rate_pct": lowcmd_rate(beats, t0, t1),
                    "after_rate_pct": lowcmd_rate(beats, t1, t1 + 1_000_000_000),
                    "flood_max_gap_ms": max_gap_ms(beats, t0, t1)}
        return out

    def kill_trial(self, k: int, restart: bool) -> dict:
        """SIGKILL the bridge while it holds a pose; kill -> first damping LowCmd_ (the watchdog's)."""
        from neon_ros.tools import processes, stack

        if self.wire is None:
            self.wire = wire_log(self.domain)
        self.activate()
        if not self.wire.heard_since(time.time_ns(), 30.0):
            raise RuntimeError("rt/lowcmd is not heard here:\n" + self.bridge.tail(30))
        trips = _float(self.diag.get("bridge_watchdog", {}).get("trips"))
        t_kill = time.time_ns()
        os.kill(self.bridge.popen.pid, signal.SIGKILL)
        latency, before = self.wire.first_after(t_kill, lambda a: a[:, 1] == DAMPING)
        time.sleep(1.0)
        after = self.wire.array()
        sent = np.count_nonzero((after[:, 0] >= t_kill + 200_000_000) & (after[:, 0] < t_kill + 1_000_000_000))
        out = {"kill_to_damping_ms": latency, "powered_before": before is not None and before[1] == POWERED,
               "damping_rate_pct": 100.0 * sent / 0.8 / FULL_RATE, "watchdog_trips_before": trips}
        if restart:
            entry = stack.node("g1_bridge")
            self.bridge = self.kids.start(f"g1_bridge_{k + 2}", processes.node_command(
                "g1_bridge", {**entry.sim, **self.bridge_params}))
            if not self.bridge.wait_for_line(entry.ready, 60.0):
                raise RuntimeError("the bridge did not restart:\n" + self.bridge.tail(30))
        return out


def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _stats(values) -> dict:
    from neon_ros.runtime.timing import percentiles

    v = [x for x in values if x is not None]
    p = percentiles(v)
    return {"median": p["p50"], "max": p["max"], "n": p["n"], "missed": len(values) - len(v)}


def safety_figures(args: argparse.Namespace, domain: int, slice_us: float, skip: set[str], keep: list) -> dict:
    import rclpy

    from neon_ros.tools import processes, stack

    logs = Path(tempfile.mkdtemp(prefix="neon_bench_bridge_safety_"))
    env = processes.child_env()
    processes.join_domain(env)
    rclpy.init()
    out: dict = {"logs": str(logs)}
    try:
        with processes.ProcessGroup(env, logs) as kids:
            dog_rt = args.watchdog_rt_priority
            if dog_rt is None:
                dog_rt = stack.node("bridge_watchdog").robot["rt_priority"]
            rig = SafetyRig(kids, domain, args.rt_priority, slice_us, dog_rt, logs / "state")
            keep.append(rig)
            try:
                if "estop" not in skip:
                    floor = None if "floor" in skip else start_floor(kids, logs, args.rt_priority, slice_us)
                    quiet = [rig.estop_trial(0) for _ in range(args.trials)]
                    flood = [rig.estop_trial(args.flood) for _ in range(args.flood_trials)]
                    out["estop_quiet"] = quiet
                    out["estop_flood"] = flood
                    if floor is not None:
                        out["floor"] = stop_floor(floor, logs, flood)
                if "kill" not in skip:
                    out["kill"] = [rig.kill_trial(k, restart=k + 1 < args.kill_trials) for k in range(args.kill_trials)]
                out["watchdog_diag"] = rig.diag.get("bridge_watchdog", {})
                out["bridge_scheduling"] = rig.bridge_value("rt_status") or "?"
            finally:
                rig.close()
    finally:
        rclpy.try_shutdown()
    return out


def start_floor(kids, logs: Path, rt_priority: int, slice_us: float):
    """sched_floor beside the bridge, at its priority (see neon_ros.tools.bench.sched_floor)."""
    child = kids.start("sched_floor", [sys.executable, "-m", "neon_ros.tools.bench.sched_floor",
                                       "--out", str(logs / "sched_floor.npy"), "--rt-priority", str(rt_priority),
                                       "--slice-us", str(slice_us)])
    if not child.wait_for_line("sched_floor:", 30.0):
        raise RuntimeError(f"sched_floor did not start; log tail:\n{child.tail()}")
    return child


def stop_floor(child, logs: Path, flood_trials: list[dict]) -> list[dict]:
    """Stop sched_floor; its figures within each flood."""
    child.stop()
    rows = np.load(logs / "sched_floor.npy")
    return [floor_figures(rows, t["flood_t0_ns"], t["flood_t1_ns"]) for t in flood_trials]


def print_safety(out: dict, flood: int) -> None:
    if "estop_quiet" in out:
        q, f = out["estop_quiet"], out["estop_flood"]
        sq, sf = _stats([t["estop_to_damping_ms"] for t in q]), _stats([t["estop_to_damping_ms"] for t in f])
        bq, bf = _stats([t["bridge_side_ms"] for t in q]), _stats([t["bridge_side_ms"] for t in f])
        print(f"e-stop published -> first damping LowCmd_ (g1_bridge + sim_g1 + bridge_watchdog; bridge: "
              f"{out.get('bridge_scheduling', '?')}):")
        print(f"  quiet: median {sq['median']:.2f} ms, max {sq['max']:.2f} ms (n={sq['n']}, not measured: {sq['missed']}); "
              f"bridge-side (callback -> applying cycle): median {bq['median']:.2f} ms, max {bq['max']:.2f} ms")
        print(f"  amid {flood} + {flood} random chunks: median {sf['median']:.2f} ms, max {sf['max']:.2f} ms "
              f"(n={sf['n']}, not measured: {sf['missed']}); bridge-side: median {bf['median']:.2f} ms, max {bf['max']:.2f} ms")
        if f:
            rates = {k: _stats([t[k] for t in f]) for k in ("quiet_rate_pct", "flood_rate_pct", "after_rate_pct")}
            print(f"  LowCmd_ rate, % of 500 Hz (median / min over trials): before {rates['quiet_rate_pct']['median']:.1f}"
                  f" / {min(t['quiet_rate_pct'] for t in f):.1f}, during the flood {rates['flood_rate_pct']['median']:.1f}"
                  f" / {min(t['flood_rate_pct'] for t in f):.1f}, in the second after "
                  f"{rates['after_rate_pct']['median']:.1f} / {min(t['after_rate_pct'] for t in f):.1f}; flood "
                  f"{np.median([t['flood_s'] for t in f]):.2f} s, longest gap {max(t['flood_max_gap_ms'] for t in f):.1f} ms")
            print(f"  goal e-stop -> damping <= 2 ms: {'met' if sf['max'] <= 2.0 and sq['max'] <= 2.0 else 'NOT met'}; "
                  f"goal LowCmd_ >= 95% under the flood: "
                  f"{'met' if min(t['flood_rate_pct'] for t in f) >= 95.0 else 'NOT met'}")
        if f and out.get("floor"):
            fl = out["floor"]
            late = float(np.nanmax([t["max_late_ms"] for t in fl]))
            print(f"  scheduler floor (a process that only keeps the bridge's 500 Hz schedule beside it, at its "
                  f"priority), during the floods: wake-ups {np.median([t['rate_pct'] for t in fl]):.1f} / "
                  f"{min(t['rate_pct'] for t in fl):.1f}% of 500 Hz (median / min), latest wake-up {late:.2f} ms late, "
                  f"longest gap {max(t['max_gap_ms'] for t in fl):.1f} ms"
                  + (": more than a cycle, so no loop at this priority is sure to damp within one cycle here"
                     if late > 1e3 * contract.LOWCMD_DT else ""))
    if "kill" in out:
        k = _stats([t["kill_to_damping_ms"] for t in out["kill"]])
        rate = min(t["damping_rate_pct"] for t in out["kill"])
        wd = out["watchdog_diag"]
        print(f"SIGKILL g1_bridge -> first damping LowCmd_ (bridge_watchdog, timeout {wd.get('timeout_ms', '?')} ms, "
              f"{wd.get('rt_status', '?')}): median {k['median']:.1f} ms, max {k['max']:.1f} ms "
              f"(n={k['n']}, not measured: {k['missed']}); damping then at >= {rate:.0f}% of 500 Hz; "
              f"safety bound 100 ms: {'met' if k['missed'] == 0 and k['max'] <= 100.0 else 'NOT met'}")
