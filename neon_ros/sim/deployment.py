"""The robot's control path on a simulated clock: one episode as the nodes would run it.

Used by `neon-ros eval`, the simulated expert's data generation (neon_ros.data.sim_expert)
and the tests, so a head is
judged through the same code that drives the robot (no ROS, no DDS, no wall clock):

    G1Sim head camera every 1/camera_fps  -> FrameRing (camera_buffer's ring; it starts full
        of the start pose: the camera ran while the robot stood before the episode)
    newest clip every 1/clip_rate, if the backbone is idle -> features, usable
        feature_delay s later (the backbone's latency, measured or given)   [backbone node]
    HeadStep (gate, head, the one clamp) when runtime.step_schedule says: at   [action_head node]
        each new features' arrival and 1/control_rate after the last step
        between (schedule "arrival", the node's default), or every 1/control_rate (grid)
        -> bridge.safety.validate_trajectory -> Controller.push              [g1_bridge node]
    every 2 ms: Controller.step (chunk schedule, limits, rate limit, gains)
        + gravity feed-forward -> G1Sim PD, one physics step                [g1_bridge, sim_g1]

A policy is anything with ``act(now_ns, q, dq, features) -> (positions (16, 29), stamp_ns, times (16,)) | None``
(point k meant for stamp + times[k], as in a JointTrajectory):
the trained head (``HeadPolicy``) or the scripted expert (``neon_ros.data.sim_expert``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neon_ros import contract, g1
from neon_ros.bridge.command import Measured
from neon_ros.bridge.controller import Controller, ControllerConfig
from neon_ros.bridge.gravity import GravityModel, with_gravity
from neon_ros.bridge.safety import NS, InputRejectedError, validate_trajectory
from neon_ros.runtime import gate
from neon_ros.runtime.ring import FrameRing
from neon_ros.runtime.step_schedule import SCHEDULES, schedule_for

START_NS = 10 * NS  # the simulated clock starts here (stamps > 0, as on a robot)
TICK_SLACK = 1e-9  # s: a step due at a tick's time runs on that tick (float rounding of ns / 1e9)


@dataclass
class LoopConfig:
    """Timing of one simulated deployment.

    seconds: episode length (from enabling the bridge).
    camera_fps: head camera rate; clip_rate: clips offered to the backbone per second.
    feature_delay: s from a clip's newest frame to its features being usable (backbone latency).
    control_rate: HeadStep calls per second (the action_head timer).
    schedule: when HeadStep runs, as action_head's ``schedule``: arrival (at each new features'
        arrival, and 1/control_rate after the last step between) | grid (every 1/control_rate).
    gravity: the bridge adds the gravity feed-forward (g1_bridge ``gravity_compensation``).
    bridge: the g1_bridge controller settings (lowcmd, as in simulation).
    """

    seconds: float = 3.0
    camera_fps: float = 10.0
    clip_rate: float = 10.0
    feature_delay: float = 0.0
    control_rate: float = contract.CONTROL_RATE_HZ
    schedule: str = "arrival"
    gravity: bool = True
    bridge: ControllerConfig = field(default_factory=lambda: ControllerConfig(mode="lowcmd", enable_ramp=0.0))

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and self.camera_fps > 0 and self.clip_rate > 0 and self.control_rate > 0):
            raise ValueError("seconds, camera_fps, clip_rate and control_rate must be > 0")
        if not 0.0 <= self.feature_delay <= 10.0:
            raise ValueError(f"feature_delay must be in [0, 10] s, got {self.feature_delay}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {' | '.join(SCHEDULES)}, got {self.schedule!r}")


@dataclass
class Episode:
    """What happened: per control step the time (s), joints and palm positions (pelvis frame);
    camera frames with their times; the commanded targets; chunk and refusal counts."""

    t: list[float] = field(default_factory=list)
    q: list[np.ndarray] = field(default_factory=list)
    commanded: list[np.ndarray] = field(default_factory=list)
    palms: list[np.ndarray] = field(default_factory=list)
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    chunks: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    feature_ages: list[float] = field(default_factory=list)


class HeadPolicy:
    """The action_head node's core (``HeadStep``, with its chunk time base) as a policy here."""

    def __init__(self, step):
        self.step = step

    def act(self, now_ns: int, q: np.ndarray, dq: np.ndarray, features: gate.Features | None):
        res = self.step.step(features, gate.JointInput(q, dq, now_ns), now_ns)
        return None if res.positions is None else (res.positions, res.stamp_ns, res.times)


class HoldStill:
    """The baseline policy: the current pose for every point of every chunk."""

    def act(self, now_ns: int, q: np.ndarray, dq: np.ndarray, features=None):
        steps = contract.CHUNK_STEPS
        return np.repeat(np.asarray(q)[None], steps, 0), now_ns, np.arange(steps) * contract.CONTROL_DT


class SimulatedDeployment:
    """Runs episodes of a policy on ``sim`` (a G1Sim) through the bridge's controller."""

    def __init__(self, sim, cfg: LoopConfig, encoder=None, instruction: str = ""):
        """``encoder``: a backbone (``encode_batch``, ``num_frames``, ``frame_size``, ``backbone_id``);
        None: the policy gets no features (the scripted expert)."""
        self.sim, self.cfg, self.encoder, self.instruction = sim, cfg, encoder, instruction
        self.gravity = GravityModel() if cfg.gravity else None
        self.substeps = max(1, int(round(cfg.bridge.dt / sim.timestep)))

    def run(self, policy, q0: np.ndarray, on_step=None, cup_position=None) -> Episode:
        """One episode from the start pose ``q0`` (the cup at ``cup_position``, world frame, or
        the scene's); ``on_step(t, sim)`` runs after every control step."""
        from neon_ros.runtime.image import resize_rgb

        cfg, sim, enc = self.cfg, self.sim, self.encoder
        sim.reset(q0, cup_position)
        ctl = Controller(cfg.bridge)
        dt_ns = int(round(cfg.bridge.dt * NS))
        camera_ns, clip_ns, control_ns = (int(round(NS / r)) for r in (cfg.camera_fps, cfg.clip_rate,
                                                                          cfg.control_rate))
        delay_ns = int(round(cfg.feature_delay * NS))
        ring = None
        if enc is not None:
            h, w = enc.frame_size
            ring = FrameRing(enc.num_frames, (h, w, 3))
            # The camera ran while the robot stood before the episode (as on the robot, where the
            # stack is live before an instruction): the ring starts full of the start pose.
            still = resize_rgb(sim.render(), enc.frame_size)
            for k in range(enc.num_frames, 0, -1):
                ring.push(still, START_NS - k * camera_ns)
        ep = Episode()
        now = START_NS
        ok, why = ctl.enable(True, Measured(sim.q, sim.dq, now), now)
        if not ok:
            raise RuntimeError(f"the bridge controller refused to enable: {why}")
        features, pending = None, None
        sched = schedule_for(cfg.schedule, control_ns / NS)
        for i in range(int(round(cfg.seconds * NS / dt_ns))):
            now = START_NS + i * dt_ns
            elapsed = now - START_NS
            if elapsed % camera_ns < dt_ns:
                frame = sim.render()
                ep.frames.append((elapsed / NS, frame))
                if ring is not None:
                    ring.push(resize_rgb(frame, enc.frame_size), now)
            if pending is not None and now >= pending[0]:  # the backbone published
                features, pending = pending[1], None
                if sched is not None:
                    sched.features(now / NS, (now - features.stamp_ns) / NS)
            if ring is not None and elapsed % clip_ns < dt_ns and pending is None:  # newest clip, backbone idle
                clip = ring.new_clip()
                if clip is not None:
                    vec = enc.encode_batch([clip.frames], [self.instruction])[0]
                    pending = (now + delay_ns, gate.Features(vec, clip.stamp_ns, enc.backbone_id))
            q, dq = sim.q, sim.dq
            if sched is None:
                stepping = elapsed % control_ns < dt_ns
            else:
                due, after_wait = sched.next_step()
                stepping = now / NS + TICK_SLACK >= due
                if stepping:
                    sched.stepped(now / NS, after_wait)
            if stepping:
                if features is not None:
                    ep.feature_ages.append((now - features.stamp_ns) / NS)
                out = policy.act(now, q, dq, features)
                if out is not None:
                    positions, stamp, times = out
                    try:
                        traj = validate_trajectory("chunk", g1.JOINT_NAMES, positions, times, stamp, now,
                                                   cfg.bridge.safety)
                        ctl.push(traj, now)
                        ep.chunks += 1
                    except InputRejectedError as exc:
                        ep.refused[exc.reason] = ep.refused.get(exc.reason, 0) + 1
                ep.t.append(elapsed / NS)
                ep.q.append(q)
                ep.palms.append(palms_in_pelvis(sim))
                if on_step is not None:
                    on_step(elapsed / NS, sim)
            cmd = ctl.step(now, Measured(q, dq, now))
            if self.gravity is not None:
                cmd = with_gravity(cmd, self.gravity, q)  # as BridgeLoop.cycle_once does
            sim.set_command(cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau, cmd.motors_on)
            if stepping:
                ep.commanded.append(cmd.q.copy())
            sim.step(self.substeps)
        return ep


def palms_in_pelvis(sim) -> np.ndarray:
    """(2, 3) palm positions (left, right) relative to the pelvis."""
    base = sim.pelvis_position()
    return np.stack([sim.site_pose(g1.HAND_SITES[arm])[0] - base for arm in ("left", "right")])
