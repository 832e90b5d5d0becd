"""The simulated G1's robot side: rt/lowcmd in, physics, rt/lowstate out, in one real-time thread.

``SimRobot`` owns a ``G1Sim`` and the Unitree DDS channels (unitree_sdk2py). Its thread
steps the physics at 500 Hz on ABSOLUTE deadlines (``runtime.timing.AbsoluteTicker``), so
time spent working never accumulates as drift; a loop behind schedule catches up, up to
MAX_LAG, beyond which it skips the missed steps. Each step it applies the newest accepted
LowCmd_, advances the physics one timestep, and publishes a LowState_ with CRC. Before
the first good command the motors are in damping mode (kp = 0, kd > 0), like the robot.

``realtime_factor`` scales the pace: 1.0 is real time, 2.0 twice as fast, 0 as fast as
the machine allows. No rclpy here: the node wraps this and publishes /diagnostics.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, unitree
from neon_ros.runtime.timing import AbsoluteTicker, percentiles, set_fifo
from neon_ros.sim.firmware import G1_29DOF_MODE_MACHINE, InboxCounts, LowCmdInbox, MotorCommand
from neon_ros.sim.g1_sim import G1Sim
from neon_ros.sim.lowstate_wire import LowStateWire

MAX_LAG = 0.1  # s behind schedule before the loop stops catching up and skips the missed steps


@dataclass(frozen=True)
class SimRobotConfig:
    """Settings of the simulated robot.

    network_interface: DDS interface ("lo" for a simulation on this machine).
    dds_domain_id: Unitree DDS domain (the real robot uses 0; simulations default to 1).
    fixed_base: pelvis pinned at standing height, as on a gantry.
    realtime_factor: simulated seconds per wall second (0 = as fast as possible).
    timestep: physics step and LowState_ period in simulated seconds.
    camera_width, camera_height: head camera render size (pixels).
    mode_machine: the LowState_.mode_machine reported (5 = G1 29 DoF).
    rt_priority: SCHED_FIFO priority of the physics thread (0 = normal scheduling; needs
        CAP_SYS_NICE, otherwise a warning and normal scheduling; not with realtime_factor 0).
    """

    network_interface: str = "lo"
    dds_domain_id: int = 1
    fixed_base: bool = True
    realtime_factor: float = 1.0
    timestep: float = contract.LOWCMD_DT
    camera_width: int = 224
    camera_height: int = 224
    mode_machine: int = G1_29DOF_MODE_MACHINE
    rt_priority: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.dds_domain_id <= 232):
            raise ValueError(f"dds_domain_id must be in [0, 232], got {self.dds_domain_id}")
        if not (0.0 <= self.realtime_factor <= 100.0):
            raise ValueError(f"realtime_factor must be in [0, 100] (0 = as fast as possible), got {self.realtime_factor}")
        if not (0.0 < self.timestep <= 0.01):
            raise ValueError(f"timestep must be in (0, 0.01] s, got {self.timestep}")
        if not (0 <= self.rt_priority <= 99):
            raise ValueError(f"rt_priority must be in [0, 99], got {self.rt_priority}")
        if self.rt_priority and self.realtime_factor == 0:
            raise ValueError("rt_priority needs realtime_factor > 0 (an unpaced real-time thread would starve the machine)")
        if not (0 <= self.mode_machine <= 255):
            raise ValueError(f"mode_machine must fit a uint8, got {self.mode_machine}")


@dataclass
class LoopStats:
    """Counters of the physics thread; rates are measured over the last window."""

    steps: int = 0
    lowstate_published: int = 0
    overruns: int = 0  # steps skipped because the loop fell more than MAX_LAG behind
    physics_rate_hz: float = 0.0  # physics steps per wall second
    realtime_factor: float = 0.0  # simulated seconds per wall second
    late_p50_ms: float = 0.0  # how late steps started after their deadline, over the last window
    late_p99_ms: float = 0.0
    late_max_ms: float = 0.0
    inbox: InboxCounts = field(default_factory=InboxCounts)


class SimRobot:
    """G1Sim + rt/lowcmd subscriber + rt/lowstate publisher, stepped by a dedicated thread."""

    def __init__(self, config: SimRobotConfig, sim: G1Sim | None = None):
        self.config = config
        self.sim = sim or G1Sim(fixed_base=config.fixed_base, timestep=config.timestep,
                                camera_size=(config.camera_width, config.camera_height))
        self.inbox = LowCmdInbox(config.mode_machine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._stats = LoopStats()
        self._pub = None
        self._sub = None
        self._wire: LowStateWire | None = None
        self._first_command_logged = False
        self.on_first_command = None  # optional callback(MotorCommand), e.g. a log line
        self.scheduling = "normal"  # what the physics thread got: "normal" or runtime.timing.set_fifo's status

    # --- DDS -----------------------------------------------------------------------------------
    def open_channels(self) -> None:
        """Join the Unitree DDS domain and create rt/lowcmd (subscriber) and rt/lowstate (publisher)."""
        unitree.init_channels(self.config.dds_domain_id, self.config.network_interface)
        lowcmd_type, lowstate_type = unitree.hg_types()
        self._wire = LowStateWire()
        self._pub = unitree.publisher(contract.DDS_LOWSTATE, lowstate_type)
        self._sub = unitree.subscriber(contract.DDS_LOWCMD, lowcmd_type, self.inbox.offer, 1)

    # --- the loop --------------------------------------------------------------------------------
    def start(self, open_dds: bool = True) -> None:
        """Start the physics thread (open_dds=False: no DDS, commands only through ``inbox.offer``)."""
        if self._thread is not None:
            raise RuntimeError("SimRobot already started")
        if open_dds and self._pub is None:
            self.open_channels()
        self.sim.set_command(**_as_sim_command(MotorCommand.damping()))
        self._thread = threading.Thread(target=self._run, name="sim_g1_physics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def step_once(self) -> None:
        """One control cycle: newest command -> physics step -> LowState_ out."""
        cmd = self.inbox.take()
        if cmd is not None:
            self.sim.set_command(**_as_sim_command(cmd))
            if not self._first_command_logged:
                self._first_command_logged = True
                if self.on_first_command is not None:
                    self.on_first_command(cmd)
        self.sim.step(1)
        if self._pub is not None:
            sim = self.sim
            newest = self.inbox.newest()
            self._wire.fill(sim.q, sim.dq, sim.tau_est, sim.imu(), tick=round(sim.time * 1000.0),
                            mode_machine=self.config.mode_machine,
                            enabled=None if newest is None else newest.enabled)
            self._pub.Write(self._wire.wire)
            with self._stats_lock:
                self._stats.lowstate_published += 1
        with self._stats_lock:
            self._stats.steps += 1

    def _run(self) -> None:
        if self.config.rt_priority > 0:
            self.scheduling = set_fifo(self.config.rt_priority, whole_process=False)
        factor = self.config.realtime_factor
        ticker = AbsoluteTicker(self.sim.timestep / factor, max_lag=MAX_LAG) if factor > 0 else None
        win_t, win_steps, win_sim = time.monotonic(), 0, self.sim.time
        lateness: list[float] = []
        while not self._stop.is_set():
            if ticker is not None:
                lateness.append(ticker.wait(self._stop.is_set))
            self.step_once()
            win_steps += 1
            now = time.monotonic()
            if now - win_t >= 1.0:
                late = percentiles(1e3 * np.array(lateness or [0.0]))
                with self._stats_lock:
                    self._stats.physics_rate_hz = win_steps / (now - win_t)
                    self._stats.realtime_factor = (self.sim.time - win_sim) / (now - win_t)
                    self._stats.late_p50_ms, self._stats.late_p99_ms = late["p50"], late["p99"]
                    self._stats.late_max_ms = late["max"]
                    self._stats.overruns = 0 if ticker is None else ticker.missed
                win_t, win_steps, win_sim = now, 0, self.sim.time
                lateness = []

    def stats(self) -> LoopStats:
        with self._stats_lock:
            s = LoopStats(**{k: v for k, v in vars(self._stats).items() if k != "inbox"})
        s.inbox = self.inbox.snapshot()
        return s


def _as_sim_command(cmd: MotorCommand) -> dict[str, np.ndarray]:
    return {"q": cmd.q, "dq": cmd.dq, "kp": cmd.kp, "kd": cmd.kd, "tau": cmd.tau, "enabled": cmd.enabled}
