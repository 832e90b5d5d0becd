"""The robot's control path on a simulated clock ([11]): what eval, the expert and the nodes share.

The scripted expert drives G1Sim through the bridge's own controller (safety, chunk schedule,
rate limit, gains, gravity feed-forward) and succeeds; a policy that holds still does not;
the chunk time base puts point 0 at the control step however old the features are; the
simulated soup is stored losslessly so training sees the pixels the live camera gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros import contract, g1
from neon_ros.bridge.safety import NS
from neon_ros.runtime import gate

TASKS = ("reach_cup", "wave_left", "point_cup")


@pytest.fixture(scope="module")
def sim_and_kin():
    from neon_ros.runtime.kinematics import G1Kinematics, IKConfig
    from neon_ros.sim.g1_sim import G1Sim  # before mujoco: it selects the off-screen GL

    with G1Sim(fixed_base=True, camera_size=(64, 64)) as sim:
        yield sim, G1Kinematics(ik=IKConfig(rotation_weight=0.02, max_iterations=300))


@pytest.mark.timeout(300)
def test_expert_succeeds_through_the_bridge_and_holding_still_does_not(sim_and_kin):
    from neon_ros.data import sim_expert
    from neon_ros.sim.deployment import HoldStill, LoopConfig, SimulatedDeployment

    sim, kin = sim_and_kin
    rng = np.random.default_rng(7)
    loop = SimulatedDeployment(sim, LoopConfig(seconds=4.0, camera_fps=5.0))
    for task in TASKS:
        q0, plan = sim_expert.episode_setup(task, kin, rng)
        ep = loop.run(sim_expert.ExpertPolicy(plan), q0, cup_position=plan.cup_position)
        assert ep.chunks == 80 and not ep.refused, (task, ep.refused)  # every chunk passed the safety layer
        assert sim_expert.success(task, plan, np.stack(ep.palms)), task
        moved = np.abs(np.diff(np.stack(ep.commanded), axis=0)).max(0) / contract.CONTROL_DT
        assert moved.max() <= 1.5 + 1e-6  # the bridge's rate limit held
        still = loop.run(HoldStill(), q0, cup_position=plan.cup_position)
        assert not sim_expert.success(task, plan, np.stack(still.palms)), task


@pytest.mark.timeout(300)
def test_cup_placement_moves_the_cup_and_the_goal(sim_and_kin):
    """Each episode's cup stands where its plan says, and the reach goal moves with it."""
    from neon_ros.data import sim_expert
    from neon_ros.sim.scene import CUP_POSITION

    sim, kin = sim_and_kin
    q0, plan = sim_expert.episode_setup("reach_cup", kin, np.random.default_rng(3))
    shift = plan.cup_position - np.asarray(CUP_POSITION)
    assert 0 < np.abs(shift[:2]).max() <= sim_expert.CUP_JITTER and shift[2] == 0
    sim.reset(q0, plan.cup_position)
    np.testing.assert_allclose(sim.cup_position(), plan.cup_position, atol=1e-9)
    home = sim_expert.plan_task("reach_cup", q0, kin, np.random.default_rng(0))
    np.testing.assert_allclose(plan.goal_palms[0] - home.goal_palms[0], shift, atol=0.01)  # IK within 1 cm
    with pytest.raises(ValueError):
        sim.reset(q0, [0.4, np.nan, 0.7])
    sim.reset(q0)
    np.testing.assert_allclose(sim.cup_position(), CUP_POSITION, atol=1e-9)


@pytest.mark.timeout(300)
def test_perturbed_demonstrations_label_the_clean_expert_and_still_succeed(sim_and_kin):
    """DART noise drives the arm off the expert's path; the label at every state is the clean
    expert's command from that state, and the noise stops in time for the task to succeed."""
    from neon_ros.data import sim_expert
    from neon_ros.sim.deployment import LoopConfig, SimulatedDeployment

    sim, kin = sim_and_kin
    rng = np.random.default_rng(11)
    q0, plan = sim_expert.episode_setup("reach_cup", kin, rng)
    expert = sim_expert.PerturbedExpert(plan, 0.25, rng, seconds=4.0)
    seen = []
    ep = SimulatedDeployment(sim, LoopConfig(seconds=4.0, camera_fps=5.0)).run(
        expert, q0, on_step=lambda t, s: seen.append(expert.perturbing),
        cup_position=plan.cup_position)
    assert any(seen[:40]) and not any(seen[-40:])  # perturbed early, clean for the last 2 s
    clean = sim_expert.ExpertPolicy(plan)
    for k in (5, 25, 45):
        np.testing.assert_allclose(expert.labels[k], clean.chunk(ep.q[k], np.zeros(29)))
    assert sim_expert.success("reach_cup", plan, np.stack(ep.palms))
    drove = np.stack(ep.commanded[:40]) - np.stack([c[0] for c in expert.labels[:40]])
    assert np.abs(drove).max() > 0.05  # the arm really went where the clean expert would not


def test_expert_labels_depend_only_on_the_state():
    """The same measured state gives the same chunk, whenever it is met (no clock, no hidden delay)."""
    from neon_ros.data import sim_expert

    goal = g1.STANDING_POSE.copy()
    goal[list(g1.ARM_INDICES["left"])] += 0.5
    expert = sim_expert.ExpertPolicy(sim_expert.Plan(goal, None, (True, False)))
    q = g1.STANDING_POSE.copy()
    a, _, _ = expert.act(1 * NS, q, np.zeros(29))
    b, _, _ = expert.act(9 * NS, q, np.zeros(29))
    np.testing.assert_array_equal(a, b)
    steps = np.abs(np.diff(np.vstack([q[None], a]), axis=0))
    assert steps.max() <= expert.speed * contract.CONTROL_DT + 1e-12 and np.abs(a[-1] - goal).max() < 0.5


def test_chunk_time_base(tmp_path):
    from neon_ros.runtime.control import HeadStep
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.tools.random_head import save_random_checkpoint

    head = HeadRuntime(save_random_checkpoint(tmp_path / "head", 16, "bb", d_model=32), runtime="torch")
    now, age = 10 * NS, 0.4
    feats = gate.Features(np.linspace(-1, 1, 16).astype(np.float32), now - int(age * NS), "bb")
    joints = gate.JointInput(g1.STANDING_POSE.copy(), np.zeros(29), now)
    cfg = gate.GateConfig("bb", 16, max_feature_age=1.0)
    res = HeadStep(head, cfg).step(feats, joints, now)  # default: point 0 now, as heads are trained
    assert res.stamp_ns == feats.stamp_ns  # the camera stamp travels on (age measurable downstream)
    np.testing.assert_allclose(res.times, age + np.arange(16) * contract.CONTROL_DT)
    res = HeadStep(head, cfg, time_base="camera").step(feats, joints, now)  # point k at the stamp + k x 50 ms
    np.testing.assert_allclose(res.times, np.arange(16) * contract.CONTROL_DT)
    with pytest.raises(ValueError):
        HeadStep(head, cfg, time_base="later")


def test_simulated_soup_is_stored_losslessly(tmp_path, sim_and_kin):
    """Frames written by the soup generator decode to the rendered pixels exactly."""
    from neon_ros.data import sim_expert
    from neon_ros.data.video import iter_frames

    sim, kin = sim_and_kin
    frames, state, action, chunks, ok = sim_expert.run_episode(sim, kin, "reach_cup", np.random.default_rng(1),
                                                               1.0, 10)
    assert frames.shape[0] == state.shape[0] == action.shape[0] == chunks.shape[0] == 10
    from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3

    root = write_lerobot_v3(tmp_path / "ds", [EpisodeRecord(frames, state, action, "reach the red cup")], fps=10,
                            robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES), codec="libx264rgb")
    video = next((root / "videos").rglob("*.mp4"))
    decoded = np.stack([f for _, f in iter_frames(video)])
    np.testing.assert_array_equal(decoded, frames)


def test_expert_chunks_are_the_labels(tmp_path, sim_and_kin):
    """A soup episode carries the expert's chunk from each state; the lerobot adapter labels the
    sample at that state with exactly that chunk (relative to the state), not the future path."""
    from neon_ros.data import sim_expert
    from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
    from neon_ros.data.registry import SourceConfig, open_source

    sim, kin = sim_and_kin
    frames, state, action, chunks, _ = sim_expert.run_episode(sim, kin, "point_cup", np.random.default_rng(2),
                                                              1.5, 10, perturb=0.25)
    root = write_lerobot_v3(tmp_path / "ds", [EpisodeRecord(frames, state, action, "point at the red cup",
                                                            action_chunk=chunks)], fps=10,
                            robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES), codec="libx264rgb")
    src = open_source(SourceConfig("sim", "lerobot", root, stride=0.1, clip_seconds=0.8, clip_lag=0.2))
    samples = list(src.samples())
    assert len(samples) >= 10
    for k in (3, 9):
        s = samples[k]
        np.testing.assert_allclose(s.proprio[:29], state[k], atol=1e-5)
        np.testing.assert_allclose(s.targets["joint_delta"], chunks[k] - state[k], atol=1e-5)
        # the clip: the 8 newest frames at 10 Hz, ending 0.2 s (two frames) before the state
        np.testing.assert_array_equal(s.frames[-1], frames[k - 2])
        np.testing.assert_array_equal(s.frames[0], frames[max(k - 9, 0)])
    with pytest.raises(ValueError):
        write_lerobot_v3(tmp_path / "bad", [EpisodeRecord(frames, state, action, "x", action_chunk=chunks[:, :3, :5])],
                         fps=10, robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES), codec="libx264rgb")


def test_clip_lag_range_trains_for_slow_backbones(tmp_path, sim_and_kin):
    """clip_lag_max: each sample's clip ends a lag drawn in [clip_lag, clip_lag_max] before its
    state (a head for backbones of 0.2-1 s), the same lags on every pass; labels unchanged."""
    from neon_ros.data import sim_expert
    from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3
    from neon_ros.data.registry import SourceConfig, open_source

    sim, kin = sim_and_kin
    frames, state, action, chunks, _ = sim_expert.run_episode(sim, kin, "point_cup", np.random.default_rng(3),
                                                              2.5, 10)
    root = write_lerobot_v3(tmp_path / "ds", [EpisodeRecord(frames, state, action, "point at the red cup",
                                                            action_chunk=chunks)], fps=10,
                            robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES), codec="libx264rgb")
    cfg = SourceConfig("sim", "lerobot", root, stride=0.1, clip_seconds=0.8, clip_lag=0.2, clip_lag_max=1.0)
    samples, again = list(open_source(cfg).samples()), list(open_source(cfg).samples())
    lags = []
    for k, s in enumerate(samples):
        np.testing.assert_allclose(s.targets["joint_delta"], chunks[k] - state[k], atol=1e-5)
        newest = [j for j in range(k + 1) if np.array_equal(s.frames[-1], frames[j])]
        assert newest, k
        if k >= 10:  # the lag fits inside the episode: it shows as frames back (10 Hz)
            lags.append(k - newest[-1])
        np.testing.assert_array_equal(s.frames, again[k].frames)  # seeded per episode
    assert all(2 <= d <= 10 for d in lags) and len(set(lags)) >= 4, lags
    with pytest.raises(ValueError, match="clip_lag_max"):
        SourceConfig("sim", "lerobot", root, clip_lag=0.5, clip_lag_max=0.3)


def test_failure_reasons_name_each_tasks_own_test():
    """stand_still fails on drift from the start (4 cm), not on a 7 cm goal distance: its reason said
    'final palm 4.8 cm from the goal (needs < 7)' for an episode that drifted 4.8 cm."""
    from types import SimpleNamespace

    from neon_ros.data.sim_expert import success
    from neon_ros.tools.evaluate import failure_reason

    ep = SimpleNamespace(chunks=10, refused="")
    palms = np.zeros((5, 2, 3))
    palms[-1, 1, 0] = 0.048
    assert not success("stand_still", None, palms)
    assert failure_reason("stand_still", None, palms, ep) == "a palm moved 4.8 cm from where it started (needs < 4)"
    assert failure_reason("stand_still", None, palms, SimpleNamespace(chunks=0, refused="stale")).startswith(
        "no chunk reached the bridge")


class _StubEncoder:
    """A backbone stand-in for step timing only: zero features, 2-frame clips of 32x32."""

    num_frames, frame_size, backbone_id = 2, (32, 32), "stub"

    def encode_batch(self, clips, texts):
        return np.zeros((len(clips), 8), np.float32)


class _Recorder:
    """A policy that records when it was asked to act and on which features; sends nothing."""

    def __init__(self):
        self.calls = []

    def act(self, now_ns, q, dq, features):
        self.calls.append((now_ns, None if features is None else features.stamp_ns))


@pytest.mark.timeout(300)
def test_the_simulated_head_steps_when_the_node_does(sim_and_kin):
    """As action_head's schedule: 'arrival' steps on each features at the 2 ms tick they arrive
    (features 37 ms after their frame are 38 ms old at their first step), ~20 steps/s; 'grid'
    steps every 50 ms whatever the features (here 13 ms after each arrival); without features
    both give the same steps."""
    from neon_ros.sim.deployment import LoopConfig, SimulatedDeployment

    sim, _ = sim_and_kin
    q0 = g1.STANDING_POSE.copy()
    first_age = {}
    for schedule in ("arrival", "grid"):
        rec = _Recorder()
        cfg = LoopConfig(seconds=3.0, camera_fps=10.0, feature_delay=0.037, schedule=schedule)
        SimulatedDeployment(sim, cfg, encoder=_StubEncoder()).run(rec, q0)
        seen = {}
        for now, stamp in rec.calls:
            if stamp is not None:
                seen.setdefault(stamp, now - stamp)
        first_age[schedule] = np.array(list(seen.values())) / NS
        assert 55 <= len(rec.calls) <= 62, (schedule, len(rec.calls))
    assert np.all(np.abs(first_age["arrival"] - 0.038) < 1e-6), first_age["arrival"]
    assert np.allclose(first_age["grid"], 0.05)  # on the grid they wait for the next 50 ms tick
    steps = {s: SimulatedDeployment(sim, LoopConfig(seconds=1.0, schedule=s)).run(_Recorder(), q0).t
             for s in ("arrival", "grid")}
    assert steps["arrival"] == steps["grid"] and len(steps["grid"]) == 20
    with pytest.raises(ValueError, match="schedule"):
        LoopConfig(schedule="sometimes")
