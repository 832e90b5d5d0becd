"""The bridge watchdog: damps the robot when the bridge stops commanding it (no rclpy).

The robot's firmware keeps executing the last LowCmd_ it received, so a bridge that dies
(kill -9, a crash, a hung loop) would leave the robot holding its last stiff pose forever.
The watchdog runs in its own process beside the bridge and listens to the bridge's
liveness heartbeat (``bridge.heartbeat``: written by the 500 Hz thread right after each
LowCmd_, on the robot's DDS). When no heartbeat has come for ``timeout`` it takes over
with the bridge's own damping, on the bridge's topic, from the targets, mode_machine and
arm_sdk weight of the last heartbeat: a ``Controller`` put into damping
(``Controller.take_over``) steps every ``dt`` and its commands are built and CRC'd by the
bridge's ``LowCmdBuilder``. In ``lowcmd`` mode that is kp = 0, kd = damping_kd, tau = 0 on
every joint, until a heartbeat comes again; then the watchdog goes quiet at once (a
restarted bridge takes over from its first cycle). In ``arm_sdk`` mode the bridge's damping
hands the upper body back to Unitree's motion service (the weight ramps to 0 over
``hand_back_time`` at the last target, then nothing is sent), and so does the watchdog.

Nothing is guarded before the first heartbeat, and nothing is sent when the last heartbeat
says the bridge wrote nothing that cycle (silent on purpose: a disabled lowcmd bridge after
its "off" commands, an arm_sdk bridge after its hand-back) or was a disabled lowcmd bridge
(the robot's last command is "every motor off").

States (``state``): ``waiting`` (no heartbeat heard yet), ``watching``, ``damping``,
``released`` (silent bridge, nothing to send). One thread sleeps until the newest
heartbeat's arrival + ``timeout``, then re-reads the arrival time (sleeping again while the
bridge lives), so watching costs about 1/timeout wake-ups per second; while damping it
writes on absolute deadlines (``runtime.timing.AbsoluteTicker``). The thread outlives any
fault of its own (counted, logged).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neon_ros import contract, hg_wire, unitree
from neon_ros.bridge import heartbeat
from neon_ros.bridge.command import MODES
from neon_ros.bridge.controller import Controller, ControllerConfig
from neon_ros.bridge.lowcmd import LowCmdBuilder
from neon_ros.runtime.timing import AbsoluteTicker, set_fifo

log = logging.getLogger(__name__)

NS = 1_000_000_000


@dataclass(frozen=True)
class WatchdogConfig:
    """mode: the bridge's (``lowcmd`` -> rt/lowcmd, ``arm_sdk`` -> rt/arm_sdk).
    timeout: s without a heartbeat after which the bridge counts as gone and damping starts.
    damping_kd: N m s/rad per commanded joint while damping (the bridge's damping_kd).
    hand_back_time: s the arm_sdk blend weight takes from 1 to 0 (the bridge's enable_ramp).
    dt: s between damping commands (the bridge's period).
    """

    mode: str = "lowcmd"
    timeout: float = 0.05
    damping_kd: float = 2.0
    hand_back_time: float = 1.0
    dt: float = contract.LOWCMD_DT

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 < self.dt <= 0.02:
            raise ValueError(f"dt must be in (0, 0.02] s, got {self.dt}")
        if not 2.0 * self.dt < self.timeout <= 1.0:
            raise ValueError(f"timeout must be in (2 dt = {2.0 * self.dt}, 1] s, got {self.timeout}")
        if not 0.0 < self.damping_kd <= 20.0:
            raise ValueError(f"damping_kd must be in (0, 20] N m s/rad, got {self.damping_kd}")
        if not 0.0 <= self.hand_back_time <= 10.0:
            raise ValueError(f"hand_back_time must be in [0, 10] s, got {self.hand_back_time}")


class BridgeWatchdog:
    """Owns the heartbeat reader, the writer on the bridge's topic and the watching thread.

    ``on_event(kind, text)`` (optional) hears ``armed`` (first heartbeat), ``trip``, ``return``
    and ``released`` (arm_sdk hand-back done) from the thread, for logs.
    """

    def __init__(self, cfg: WatchdogConfig, network_interface: str, domain_id: int, rt_priority: int = 0,
                 on_event: Callable[[str, str], None] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns):
        self.cfg = cfg
        self.network_interface = network_interface
        self.domain_id = int(domain_id)
        self.rt_priority = int(rt_priority)
        self.on_event = on_event
        self.clock = clock
        self.builder = LowCmdBuilder(cfg.mode)
        self.lock = threading.Lock()
        self.state = "waiting"
        self.counts = {"heartbeats": 0, "trips": 0, "returns": 0, "damping_sent": 0, "write_faults": 0,
                       "faults": 0}
        self.last_trip_silence_ms = float("nan")  # how long the bridge was silent when damping started
        self.rt_status = "normal priority"
        self._last_rx: int | None = None  # monotonic ns of the newest heartbeat
        self._last_beat: Any = None  # that heartbeat (each DDS take is a new object)
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pub: Any = None
        self._sub: Any = None

    # --- DDS ------------------------------------------------------------------------------
    def open(self) -> None:
        """Join the robot's DDS domain: the heartbeat reader and a writer on the bridge's topic."""
        unitree.init_channels(self.domain_id, self.network_interface)
        low_cmd, _ = unitree.hg_types()
        self._pub = unitree.publisher(self.builder.topic, low_cmd)
        # Taken as bytes in the DDS listener as each heartbeat arrives, decoded only when the
        # watchdog needs its contents (the SDK's subscriber decoded every one in Python: 500 a
        # second took ~7% of a core in the live demo).
        self._sub = hg_wire.NewestReader(heartbeat.TOPIC, heartbeat.heartbeat_type(), self.domain_id,
                                         on_data=self._on_heartbeat_data)

    def _on_heartbeat_data(self) -> None:
        raw = self._sub.take()
        if raw is not None:
            self.on_heartbeat(raw)

    def on_heartbeat(self, beat: Any) -> None:
        """A heartbeat of the bridge arrived (DDS listener thread): its CDR bytes, or decoded."""
        with self.lock:
            self._last_rx = self.clock()
            self._last_beat = beat
            self.counts["heartbeats"] += 1
        self._arrived.set()

    @staticmethod
    def _decoded(beat: Any) -> Any:
        return heartbeat.heartbeat_type().deserialize(beat) if isinstance(beat, bytes) else beat

    # --- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        if self._pub is None:
            self.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bridge_watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the robot keeps the last command it got: damping, if the watchdog was damping)
        and hearing: the heartbeat reader's listener is detached (``NewestReader.close``)."""
        self._stop.set()
        self._arrived.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._sub is not None:
            self._sub.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        if self.rt_priority > 0:
            self.rt_status = set_fifo(self.rt_priority, whole_process=False)
        while not self._stop.is_set():
            try:
                self._watch_once()
            except Exception as exc:  # the thread that damps must outlive any fault; counted and logged
                self.counts["faults"] += 1
                n = self.counts["faults"]
                if n & (n - 1) == 0:  # 1st, 2nd, 4th, ...
                    log.error("watchdog fault #%d: %s", n, exc, exc_info=n == 1)
                self._stop.wait(self.cfg.dt)

    def _watch_once(self) -> None:
        with self.lock:
            last, beat = self._last_rx, self._last_beat
        if last is None:  # nothing heard yet: nothing to guard
            self._wait_for_heartbeat(None)
            return
        silent = self.clock() - last
        if silent < self.cfg.timeout * NS:
            if self.state == "waiting":
                self._event("armed", "the bridge's heartbeat is heard: watching")
            self.state = "watching"
            self._stop.wait((self.cfg.timeout * NS - silent) / NS)
            return
        beat = self._decoded(beat)  # silent: now its contents matter
        if self.takes_over(beat) and not self._take_over(last, silent, beat):
            return  # the bridge is back
        self.state = "released"  # the robot's last command is the bridge's "off", or Unitree's controller has it
        self._wait_for_heartbeat(last)

    def _wait_for_heartbeat(self, last: int | None) -> None:
        """Sleep until a heartbeat newer than ``last`` arrives (or stop)."""
        self._arrived.clear()
        with self.lock:
            if self._last_rx != last:
                return
        self._arrived.wait()

    @staticmethod
    def takes_over(beat: Any) -> bool:
        """Whether the bridge's last heartbeat left the robot something to damp: it wrote a command
        that cycle, and was not a disabled lowcmd bridge (whose last command is "every motor off")."""
        return bool(beat.published) and not (heartbeat.state_name(beat) == "disabled" and beat.weight <= 0.0)

    def _take_over(self, last: int, silent_ns: int, beat: Any) -> bool:
        """Send the controller's damping from the bridge's last heartbeat every dt until a heartbeat
        newer than ``last`` arrives (False) or, arm_sdk, the upper body is handed back (True)."""
        ctrl = Controller(ControllerConfig(mode=self.cfg.mode, damping_kd=self.cfg.damping_kd,
                                           enable_ramp=self.cfg.hand_back_time, dt=self.cfg.dt))
        ctrl.take_over(np.asarray(beat.q, dtype=np.float64), float(beat.weight), "bridge_silent")
        mode_machine = int(beat.mode_machine)
        self.state = "damping"
        self.counts["trips"] += 1
        self.last_trip_silence_ms = silent_ns / 1e6
        self._event("trip", f"no bridge heartbeat for {silent_ns / 1e6:.1f} ms: damping"
                            + (" (arm_sdk: handing the upper body back)" if self.cfg.mode == "arm_sdk" else ""))
        ticker = AbsoluteTicker(self.cfg.dt)
        while not self._stop.is_set():
            with self.lock:
                back = self._last_rx != last
            if back:
                self.counts["returns"] += 1
                self.state = "watching"
                self._event("return", "the bridge's heartbeat is back: it commands the robot again")
                return False
            cmd = ctrl.step(self.clock(), None)
            if not cmd.publish:  # arm_sdk: weight 0, Unitree's controller has the upper body
                self._event("released", "upper body handed back to Unitree's controller; nothing more to send")
                return True
            try:
                self._pub.Write(self.builder.build(cmd, mode_machine))
                self.counts["damping_sent"] += 1
            except Exception as exc:  # a DDS hiccup must not end the thread that damps
                self.counts["write_faults"] += 1
                n = self.counts["write_faults"]
                if n & (n - 1) == 0:
                    log.error("damping write failed (#%d): %s", n, exc)
            ticker.wait(self._stop.is_set)
        return True

    def _event(self, kind: str, text: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, text)
        except Exception:  # a log line must never stop the damping
            log.exception("watchdog event handler failed (%s: %s)", kind, text)

    def status(self) -> dict:
        """Values for /diagnostics."""
        with self.lock:
            last = self._last_rx
        age = (self.clock() - last) / 1e6 if last is not None else float("inf")
        return {"state": self.state, "mode": self.cfg.mode, "topic": self.builder.topic,
                "timeout_ms": round(self.cfg.timeout * 1e3, 3), "bridge_silent_ms": round(min(age, 1e9), 1),
                "last_trip_silence_ms": round(self.last_trip_silence_ms, 2), "rt_status": self.rt_status,
                **self.counts}
