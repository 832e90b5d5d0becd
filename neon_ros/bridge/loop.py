"""The 500 Hz bridge loop over unitree_sdk2py DDS: LowState in, LowCmd out, absolute deadlines.

One dedicated thread wakes at t0 + k*dt (``runtime.timing.AbsoluteTicker``), never
``sleep(dt)`` after the work, so the work time does not accumulate as drift. A loop a
whole period behind skips the missed deadlines (counted in ``overruns``) instead of bursting.
Each cycle: take the newest LowState_ from DDS (polled here, decoded by ``hg_wire`` in tens of
microseconds: no listener thread), apply the e-stop level (``set_estop`` only records it, from
any thread, without the lock, and wakes the thread: an asserted e-stop's damping command goes
out at once, in place of the next deadline's cycle, not up to a period later), ask the controller for a command, check it, build the
LowCmd_ (CRC, mode_machine from the LowState), write it, then write the liveness heartbeat
(``bridge.heartbeat``) that bridge_watchdog listens to.
An exception in a cycle does not end the thread: it is counted, the controller latches
damping with ``fault: ...`` as the reason, and the same cycle retries once to send that
damping command. Every age is measured on ``clock`` (monotonic); ``wall_clock`` only stamps
the LowState for message headers. The node and the benchmark share this class; callers
serialise controller access through ``lock``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from neon_ros import contract, hg_wire, unitree
from neon_ros.bridge import heartbeat
from neon_ros.bridge.command import Command, Measured
from neon_ros.bridge.controller import Controller
from neon_ros.bridge.gravity import with_gravity
from neon_ros.bridge.lowcmd import LowCmdBuilder, UnsafeCommandError
from neon_ros.runtime.timing import AbsoluteTicker, percentiles, set_fifo

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0002  # s, GIL hand-over interval while the loop runs


class BridgeLoop:
    """Owns the DDS endpoints and the timing thread of one bridge."""

    def __init__(self, controller: Controller, network_interface: str, domain_id: int,
                 check_lowstate_crc: bool = True, history: int = 5000, rt_priority: int = 0,
                 on_command: Callable[[Command], None] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, wall_clock: Callable[[], int] = time.time_ns,
                 gravity=None):
        """``gravity``: a ``bridge.gravity.GravityModel`` to add the gravity feed-forward, or None."""
        self.controller = controller
        self.gravity = gravity
        self.mode = controller.cfg.mode
        self.dt = controller.cfg.dt
        self.network_interface = network_interface
        self.domain_id = int(domain_id)
        self.check_lowstate_crc = check_lowstate_crc
        self.rt_priority = int(rt_priority)
        self.on_command = on_command
        self.clock, self.wall_clock = clock, wall_clock
        self.lock = threading.RLock()
        self.builder = LowCmdBuilder(self.mode)
        self.latest: Measured | None = None
        self.counts = {"lowstate": 0, "lowstate_bad_crc": 0, "lowstate_non_finite": 0, "lowcmd_sent": 0,
                       "overruns": 0, "unsafe_refused": 0, "loop_faults": 0, "fault_damping_failed": 0}
        self._estop_level = False
        self._estop_seq = 0  # e-stop assertions recorded (written by set_estop only)
        self._estop_applied = 0
        self._estop_ns = 0
        self.period_error = deque(maxlen=history)  # s, |actual period - dt|
        self.lateness = deque(maxlen=history)  # s, wake-up time - deadline
        self.step_cost = deque(maxlen=history)  # s, controller + check + LowCmd + CRC + write
        self.rt_status = "normal priority"
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by an e-stop assertion: run the next cycle now
        self._thread: threading.Thread | None = None
        self._pub: Any = None
        self._reader: hg_wire.NewestReader | None = None
        self._decode = hg_wire.LowStateDecoder()
        self._beat_pub: Any = None
        self._beat: Any = None

    # --- DDS ------------------------------------------------------------------------------
    def open(self) -> None:
        unitree.init_channels(self.domain_id, self.network_interface)
        low_cmd, low_state = unitree.hg_types()
        self._pub = unitree.publisher(self.builder.topic, low_cmd)
        self._beat = heartbeat.new_heartbeat()
        self._beat_pub = unitree.publisher(heartbeat.TOPIC, type(self._beat))
        # Polled by the loop thread at the start of each cycle (history 1: the newest wins); no
        # listener thread decoding every 500 Hz sample and competing with the loop for the GIL.
        self._reader = hg_wire.NewestReader(contract.DDS_LOWSTATE, low_state, self.domain_id)

    def poll_lowstate(self) -> None:
        """Take the newest LowState_ from DDS, if one arrived since the last poll."""
        if self._reader is not None:
            data = self._reader.take()
            if data is not None:
                self.offer_lowstate(data)

    def offer_lowstate(self, data: bytes) -> bool:
        """One LowState_'s bytes: CRC (``check_lowstate_crc``) and finiteness checked, then the latest."""
        received, stamp = self.clock(), self.wall_clock()
        crc_ok, s = self._decode(data)
        if self.check_lowstate_crc and not crc_ok:
            self.counts["lowstate_bad_crc"] += 1
            return False
        if not (np.all(np.isfinite(s["q"])) and np.all(np.isfinite(s["dq"]))):
            self.counts["lowstate_non_finite"] += 1
            return False
        meas = Measured(q=s["q"], dq=s["dq"], received_ns=received, mode_machine=s["mode_machine"],
                        tau=s["tau_est"], stamp_ns=stamp)
        with self.lock:
            self.latest = meas
            self.counts["lowstate"] += 1
        return True

    # --- e-stop: recorded by any thread, applied by the loop ----------------------------------
    def set_estop(self, asserted: bool) -> None:
        """Record the e-stop level; the next cycle applies it (no lock: never waits for one)."""
        if asserted:
            self._estop_ns = self.clock()
            self._estop_seq += 1  # an assertion is latched even if a release follows before the cycle
        self._estop_level = asserted
        if asserted:
            self._wake.set()

    def sync_estop(self) -> None:
        """Apply the recorded e-stop level to the controller (call with ``lock`` held)."""
        seq = self._estop_seq
        if seq != self._estop_applied:
            self._estop_applied = seq
            self.controller.estop(True, self._estop_ns)
        if not self._estop_level and self.controller.estop_asserted:
            self.controller.estop(False, self.clock())

    @property
    def estop_pending(self) -> bool:
        """An e-stop assertion was recorded that no cycle (or ``sync_estop``) has applied yet."""
        return self._estop_seq != self._estop_applied

    def measured(self) -> Measured | None:
        with self.lock:
            return self.latest

    # --- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the 500 Hz thread.

        Also shortens the interpreter's GIL switch interval (default 5 ms) to SWITCH_INTERVAL:
        otherwise the loop thread, waking from its sleep, can wait up to 5 ms for the GIL
        held by a DDS listener or rclpy thread. Process-wide: the bridge owns its process.
        """
        sys.setswitchinterval(SWITCH_INTERVAL)
        if self._pub is None:
            self.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="g1_bridge_500hz", daemon=True)
        self._thread.start()

    def stop(self, final_damping_cycles: int = 50) -> None:
        """Stop the thread, leaving the robot safe first.

        lowcmd mode: an active bridge latches damping (kp = 0, kd = damping_kd) and sends it for
        final_damping_cycles; a damping or disabled bridge changes nothing. The robot keeps the
        last command, and bridge_watchdog continues damping once the heartbeat stops.
        arm_sdk mode: the hand-back (``Controller``: the blend weight ramps to 0 at the last
        target with the active gains, whether the bridge was active or damping; Unitree's
        controller takes the upper body back), then the bridge goes silent.
        """
        ctrl = self.controller
        with self.lock:
            if self.mode == "arm_sdk":
                ramping = ctrl.weight > 0.0
                if ramping:
                    ctrl.enable(False, None, self.clock())
            else:
                ramping = ctrl.state == "active"
                if ramping:
                    ctrl.damp("shutdown")
        if ramping and self._thread is not None:
            # Wait for the loop to have sent them (counted in cycles: a starved loop is slow),
            # within a wall-clock bound.
            start = ctrl.cycle
            deadline = time.monotonic() + 2.0 * ctrl.cfg.enable_ramp + 2.0
            while time.monotonic() < deadline and self._thread.is_alive():
                with self.lock:
                    done = (ctrl.weight == 0.0 if self.mode == "arm_sdk" else
                            ctrl.cycle - start >= final_damping_cycles)
                if done:
                    break
                time.sleep(self.dt)
            time.sleep(5 * self.dt)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        if self.rt_priority > 0:
            self.rt_status = set_fifo(self.rt_priority, whole_process=False)
        # Sleeps end early when ``_wake`` is set; the cycle then takes the slot of the deadline it
        # was waiting for, so the schedule (and the rate) stays as it was.
        ticker = AbsoluteTicker(self.dt, sleep=self._wake.wait)
        prev_start: float | None = None
        while not self._stop.is_set():
            late = ticker.wait(lambda: self._stop.is_set() or self._wake.is_set())
            if self._stop.is_set():
                break
            woken = self._wake.is_set()
            self._wake.clear()  # before the cycle: an e-stop during it wakes the next one
            start = time.monotonic()
            self.counts["overruns"] = ticker.missed
            if woken:  # off schedule: no lateness or period figure for it, nor for the period after it
                prev_start = None
            else:
                self.lateness.append(late)
                if prev_start is not None:
                    self.period_error.append(abs(start - prev_start - self.dt))
                prev_start = start
            self.guarded_cycle()
            self.step_cost.append(time.monotonic() - start)

    def guarded_cycle(self) -> None:
        """One cycle that never raises: a fault latches damping and the cycle retries once to send it."""
        try:
            self.cycle_once()
        except Exception as exc:
            self.counts["loop_faults"] += 1
            text = f"{type(exc).__name__}: {exc}"
            n = self.counts["loop_faults"]
            if n & (n - 1) == 0:  # 1st, 2nd, 4th, ... (a repeating fault must not flood the log)
                log.error("bridge cycle fault #%d (%s); damping latched", n, text, exc_info=n == 1)
            with self.lock:
                self.controller.set_fault(text)
            try:
                self.cycle_once()
            except Exception:
                self.counts["fault_damping_failed"] += 1

    def cycle_once(self) -> Command:
        """One 2 ms step (also called directly by the benchmark for the cost figure)."""
        self.poll_lowstate()
        with self.lock:
            self.sync_estop()
            now = self.clock()  # after the e-stop was read: its latency is never negative
            meas = self.latest
            cmd = self.controller.step(now, meas)
            if self.gravity is not None and meas is not None:
                cmd = with_gravity(cmd, self.gravity, meas.q)
            mode_machine = meas.mode_machine if meas is not None else 0
        try:
            msg = self.builder.build(cmd, mode_machine)
        except UnsafeCommandError as e:  # never reached by design; damping if it ever is
            self.counts["unsafe_refused"] += 1
            log.error("refused an unsafe command (%s); damping", e)
            with self.lock:
                self.controller.damp("internal_error")
                cmd = self.controller.step(now, meas)
            msg = self.builder.build(cmd, mode_machine)
        if cmd.publish and self._pub is not None:
            self._pub.Write(msg)
            self.counts["lowcmd_sent"] += 1
        if self._beat_pub is not None:
            self._beat_pub.Write(heartbeat.fill(self._beat, cmd, mode_machine, self.controller.cycle,
                                                self.counts["lowcmd_sent"]))
        if self.on_command is not None:
            self.on_command(cmd)
        return cmd

    def timing(self) -> dict[str, float]:
        """Loop timing over the recent history, in ms."""
        err, cost = percentiles(_copy(self.period_error)), percentiles(_copy(self.step_cost))
        return {"period_error_p50_ms": err["p50"] * 1e3, "period_error_p99_ms": err["p99"] * 1e3,
                "period_error_max_ms": err["max"] * 1e3, "step_cost_p50_ms": cost["p50"] * 1e3,
                "overruns": self.counts["overruns"]}


def _copy(d: deque) -> list[float]:
    """The samples of a deque the loop thread appends to; none if it kept changing meanwhile."""
    for _ in range(10):
        try:
            return list(d)
        except RuntimeError:  # deque mutated during iteration
            continue
    return []
