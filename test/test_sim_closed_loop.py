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


class HoldStill:
    """The baseline: the current pose for every point of every chunk."""

    def act(self, now_ns, q, dq, features=None):
        return np.repeat(q[None], contract.CHUNK_STEPS, 0), now_ns, np.arange(contract.CHUNK_STEPS) * contract.CONTROL_DT


@pytest.mark.timeout(300)
def test_expert_succeeds_through_the_bridge_and_holding_still_does_not(sim_and_kin):
    from neon_ros.data import sim_expert
    from neon_ros.sim.deployment import LoopConfig, SimulatedDeployment

    sim, kin = sim_and_kin
    rng = np.random.default_rng(7)
    loop = SimulatedDeployment(sim, LoopConfig(seconds=4.0, camera_fps=5.0))
    for task in TASKS:
        q0 = sim_expert.start_pose(rng)
        plan = sim_expert.plan_task(task, q0, kin, rng)
        ep = loop.run(sim_expert.ExpertPolicy(plan), q0)
        assert ep.chunks == 80 and not ep.refused, (task, ep.refused)  # every chunk passed the safety layer
        assert sim_expert.success(task, plan, np.stack(ep.palms)), task
        moved = np.abs(np.diff(np.stack(ep.commanded), axis=0)).max(0) / contract.CONTROL_DT
        assert moved.max() <= 1.5 + 1e-6  # the bridge's rate limit held
        still = loop.run(HoldStill(), q0)
        assert not sim_expert.success(task, plan, np.stack(still.palms)), task


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
    res = HeadStep(head, cfg).step(feats, joints, now)  # default: point k at the camera stamp + k x 50 ms
    assert res.stamp_ns == feats.stamp_ns  # the camera stamp travels on (age measurable downstream)
    np.testing.assert_allclose(res.times, np.arange(16) * contract.CONTROL_DT)
    res = HeadStep(head, cfg, time_base="now").step(feats, joints, now)
    np.testing.assert_allclose(res.times, age + np.arange(16) * contract.CONTROL_DT)
    with pytest.raises(ValueError):
        HeadStep(head, cfg, time_base="later")


def test_simulated_soup_is_stored_losslessly(tmp_path, sim_and_kin):
    """Frames written by the soup generator decode to the rendered pixels exactly."""
    from neon_ros.data import sim_expert
    from neon_ros.data.video import iter_frames

    sim, kin = sim_and_kin
    frames, state, action, ok = sim_expert.run_episode(sim, kin, "reach_cup", np.random.default_rng(1), 1.0, 10)
    assert frames.shape[0] == state.shape[0] == action.shape[0] == 10
    from neon_ros.data.lerobot_writer import EpisodeRecord, write_lerobot_v3

    root = write_lerobot_v3(tmp_path / "ds", [EpisodeRecord(frames, state, action, "reach the red cup")], fps=10,
                            robot_type="unitree_g1", state_names=list(g1.JOINT_NAMES), codec="libx264rgb")
    video = next((root / "videos").rglob("*.mp4"))
    decoded = np.stack([f for _, f in iter_frames(video)])
    np.testing.assert_array_equal(decoded, frames)
