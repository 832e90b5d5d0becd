"""The simulated G1's robot side: rt/lowcmd and rt/arm_sdk in, physics, rt/lowstate out.

``SimRobot`` owns a ``G1Sim``, a simulated motion service (``firmware.MotionService``) and
the Unitree DDS channels (unitree_sdk2py), including the MotionSwitcher service. Its thread
steps the physics at 500 Hz on ABSOLUTE deadlines (``runtime.timing.AbsoluteTicker``), so
time spent working never accumulates as drift; a loop behind schedule catches up, up to
MAX_LAG, beyond which it skips the missed steps. Each step it applies what drives the
motors, advances the physics one timestep, and publishes a LowState_ with CRC. What drives
the motors: with no motion mode active (``motion_mode`` "", a lowcmd simulation), the newest
accepted rt/lowcmd, and before the first one damping (kp = 0, kd > 0), like the robot; with
one active (e.g. "ai", the robot's default), the motion service's standing hold with the
newest rt/arm_sdk blended into the waist and arms by its weight (rt/lowcmd is ignored and
counted). A MotionSwitcher ReleaseMode hands the motors to rt/lowcmd (damping until one
arrives); SelectMode gives them back to the motion service. Beside it, the loco service
(``sim.body.LocoService``: SetVelocity moves the pinned base kinematically, each step it moves)
and a monitor of the Dex3 hand commands (``sim.body.HandMonitor``: the model has no hands).

``realtime_factor`` scales the pace: 1.0 is real time, 2.0 twice as fast, 0 as fast as
the machine allows. No rclpy here: the node wraps this and publishes /diagnostics.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, hg_wire, unitree
from neon_ros.runtime.timing import AbsoluteTicker, percentiles, set_fifo
from neon_ros.sim.body import HandMonitor, LocoService
from neon_ros.sim.firmware import (
    G1_29DOF_MODE_MACHINE,
    MAX_MODE_NAME,
    InboxCounts,
    LowCmdInbox,
    MotionService,
    MotorCommand,
    blend_arm_sdk,
)
from neon_ros.sim.g1_sim import G1Sim

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
    motion_mode: the Unitree motion mode active at start ("" = none, rt/lowcmd drives the
        motors; a name such as "ai" = the motion service holds the robot and blends rt/arm_sdk;
        needs fixed_base: the simulated service holds a pose, it does not balance).
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
    motion_mode: str = ""

    def __post_init__(self) -> None:
        if len(self.motion_mode) > MAX_MODE_NAME or not self.motion_mode.isprintable():
            raise ValueError(f"motion_mode must be '' or a name of up to {MAX_MODE_NAME} printable characters, "
                             f"got {self.motion_mode!r}")
        if self.motion_mode and not self.fixed_base:
            raise ValueError("motion_mode needs fixed_base: the simulated motion service holds a pose, it does not "
                             "balance a free-standing robot")
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
    lowcmd_ignored: int = 0  # steps that found a new rt/lowcmd while a motion mode owned the motors
    arm_sdk_ignored: int = 0  # steps that found a new rt/arm_sdk with no motion mode to blend it into
    arm_sdk_weight: float = 0.0  # the blend weight in force
    motion_mode: str = ""  # the active motion mode ("" = none)
    inbox: InboxCounts = field(default_factory=InboxCounts)  # rt/lowcmd
    arm_sdk: InboxCounts = field(default_factory=InboxCounts)  # rt/arm_sdk


class SimRobot:
    """G1Sim + motion service + rt/lowcmd, rt/arm_sdk subscribers + rt/lowstate publisher +
    MotionSwitcher service, stepped by a dedicated thread."""

    def __init__(self, config: SimRobotConfig, sim: G1Sim | None = None):
        self.config = config
        self.sim = sim or G1Sim(fixed_base=config.fixed_base, timestep=config.timestep,
                                camera_size=(config.camera_width, config.camera_height))
        self.inbox = LowCmdInbox(config.mode_machine)
        self.arm_inbox = LowCmdInbox(config.mode_machine, arm_sdk=True)
        self.motion = MotionService(config.motion_mode)
        self.loco = LocoService(lambda: self.motion.active)
        self.hands = HandMonitor()
        self._loco_server = None
        self._hand_subs: list = []
        self._service_active = self.motion.active
        # what drives the motors (read by LowState_ and tests; replaced, never mutated)
        self.applied = self.motion.command if self._service_active else MotorCommand.damping()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._stats = LoopStats()
        self._pub = None
        self._readers: list[tuple[hg_wire.NewestReader, LowCmdInbox]] = []
        self._switcher = None
        self._wire: hg_wire.LowStateWire | None = None
        self._first_logged: set[str] = set()
        self.on_first_command = None  # optional callback(topic, MotorCommand), e.g. a log line
        self.scheduling = "normal"  # what the physics thread got: "normal" or runtime.timing.set_fifo's status

    # --- DDS -----------------------------------------------------------------------------------
    def open_channels(self) -> None:
        """Join the Unitree DDS domain: rt/lowcmd and rt/arm_sdk (subscribers), rt/lowstate
        (publisher), and the MotionSwitcher service."""
        unitree.init_channels(self.config.dds_domain_id, self.config.network_interface)
        lowcmd_type, lowstate_type = unitree.hg_types()
        self._wire = hg_wire.LowStateWire()
        self._pub = unitree.publisher(contract.DDS_LOWSTATE, lowstate_type)
        # Polled by the physics thread before each step (history 1: the newest sample always
        # wins, as on the robot); decoded by hg_wire, no listener thread per topic.
        domain = self.config.dds_domain_id
        self._readers = [(hg_wire.NewestReader(contract.DDS_LOWCMD, lowcmd_type, domain), self.inbox),
                         (hg_wire.NewestReader(contract.DDS_ARM_SDK, lowcmd_type, domain), self.arm_inbox)]
        m = self.motion
        self._switcher = unitree.serve_motion_switcher(m.check, m.select, m.release)
        self._loco_server = unitree.serve_loco(self.loco.set_velocity, self.loco.set_fsm)
        hand_type = unitree.hand_cmd_type()
        self._hand_subs = [unitree.subscriber(topic, hand_type, lambda msg, s=side: self.hands.record(
                               s, unitree.hand_cmd_arrays(msg)), queue_len=10)
                           for side, topic in zip(("left", "right"), contract.DDS_DEX3_CMD, strict=True)]

    # --- the loop --------------------------------------------------------------------------------
    def start(self, open_dds: bool = True) -> None:
        """Start the physics thread (open_dds=False: no DDS, commands only through ``inbox.offer``)."""
        if self._thread is not None:
            raise RuntimeError("SimRobot already started")
        if open_dds and self._pub is None:
            self.open_channels()
        self.sim.set_command(**_as_sim_command(self.applied))
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
        """One control cycle: what drives the motors now -> physics step -> LowState_ out."""
        cmd = self._drive()
        if cmd is not None:
            self.sim.set_command(**_as_sim_command(cmd))
            self.applied = cmd
        if self.loco.moving:  # one attribute read per step while the base stands still
            pose = self.loco.advance(self.sim.timestep)
            if pose is not None:
                self.sim.set_base_pose(*pose)
        self.sim.step(1)
        if self._pub is not None:
            sim = self.sim
            self._wire.fill(sim.q, sim.dq, sim.tau_est, sim.imu(), tick=round(sim.time * 1000.0),
                            mode_machine=self.config.mode_machine, enabled=self.applied.enabled)
            self._pub.Write(self._wire.wire)
            with self._stats_lock:
                self._stats.lowstate_published += 1
        with self._stats_lock:
            self._stats.steps += 1

    def _drive(self) -> MotorCommand | None:
        """The command that drives the motors from this step on, or None if it did not change."""
        for reader, inbox in self._readers:
            data = reader.take()
            if data is not None:
                inbox.offer(data)
        low, arm = self.inbox.take(), self.arm_inbox.take()
        active = self.motion.active
        changed, self._service_active = active != self._service_active, active
        for topic, cmd in ((contract.DDS_LOWCMD, low), (contract.DDS_ARM_SDK, arm)):
            if cmd is not None and topic not in self._first_logged:
                self._first_logged.add(topic)
                if self.on_first_command is not None:
                    self.on_first_command(topic, cmd)
        with self._stats_lock:
            self._stats.lowcmd_ignored += int(active and low is not None)
            self._stats.arm_sdk_ignored += int(not active and arm is not None)
        if active:
            return blend_arm_sdk(self.motion.command, self.arm_inbox.newest()) if arm is not None or changed else None
        if low is not None:
            return low
        return MotorCommand.damping() if changed else None

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
            s = LoopStats(**{k: v for k, v in vars(self._stats).items() if k not in ("inbox", "arm_sdk")})
        s.inbox, s.arm_sdk = self.inbox.snapshot(), self.arm_inbox.snapshot()
        s.arm_sdk_weight, s.motion_mode = self.applied.weight, self.motion.mode
        return s


def _as_sim_command(cmd: MotorCommand) -> dict[str, np.ndarray]:
    return {"q": cmd.q, "dq": cmd.dq, "kp": cmd.kp, "kd": cmd.kd, "tau": cmd.tau, "enabled": cmd.enabled}
