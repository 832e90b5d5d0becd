"""The head's gripper-frame output moves the arms: ee displacements -> IK -> chunk (runtime.ee_targets)."""

import json

import numpy as np
import pytest

from neon_ros import contract, g1
from neon_ros.policy import actions
from neon_ros.runtime import gate
from neon_ros.runtime.control import HeadStep
from neon_ros.runtime.ee_targets import EEConfig, EETargets
from neon_ros.runtime.head import HeadPrediction, safe_chunk
from neon_ros.runtime.kinematics import G1Kinematics

STEPS = contract.CHUNK_STEPS
LEFT, RIGHT = list(g1.ARM_INDICES["left"]), list(g1.ARM_INDICES["right"])
FORWARD = 0.05  # m along the left palm's own z axis (pelvis-forward in the standing pose), reachable
ARMS_IDX = LEFT + RIGHT
OTHERS = [j for j in range(g1.NUM_JOINTS) if j not in ARMS_IDX]


@pytest.fixture(scope="module")
def kin():
    return G1Kinematics()


def still_ee() -> np.ndarray:
    """(16, 2, 9) identity displacements: both hands stay."""
    return np.broadcast_to(actions.pose9_from_transform(np.eye(4)), (STEPS, 2, 9)).copy()


def left_forward_ee(distance: float = FORWARD) -> np.ndarray:
    """Left palm moving linearly to ``distance`` m along its own z axis by step 15; right still."""
    ee = still_ee()
    ee[:, 0, 2] = np.linspace(0.0, distance, STEPS)
    return ee


def small_delta() -> np.ndarray:
    """(16, 29) joint deltas ramping to 0.05 rad on every joint: a joint_delta chunk unlike the IK one."""
    return np.linspace(0.0, 0.05, STEPS)[:, None] * np.ones(g1.NUM_JOINTS)


@pytest.mark.parametrize("knots", [STEPS, 4])
def test_left_palm_moves_along_its_own_axis_right_arm_stays(kin, knots):
    q = g1.STANDING_POSE.copy()
    start = kin.hand_poses(q)  # (2, 4, 4)
    ee = EETargets(kin, EEConfig(weight=1.0, knots=knots))
    out = ee.chunk(q, np.zeros((STEPS, g1.NUM_JOINTS)), left_forward_ee())
    assert out.targets.shape == (STEPS, g1.NUM_JOINTS) and out.fallbacks == 0
    end = kin.hand_poses(out.targets[-1])
    # Step 15 is always a knot, solved to within the IK position tolerance (1 mm); a margin-0 clamp moves nothing.
    want = start[0, :3, 3] + FORWARD * start[0, :3, 2]
    assert np.linalg.norm(end[0, :3, 3] - want) < ee.config.ik.position_tolerance
    assert np.linalg.norm(end[0, :3, 3] - start[0, :3, 3]) == pytest.approx(FORWARD, abs=1e-3)
    np.testing.assert_allclose(out.targets[:, RIGHT], np.repeat(q[None, RIGHT], STEPS, 0), atol=1e-12)
    np.testing.assert_array_equal(out.targets[:, OTHERS], np.repeat(q[None, OTHERS], STEPS, 0))
    # Every step (solved or interpolated between knots) advances the palm along the axis.
    along = [(kin.hand_poses(t)[0, :3, 3] - start[0, :3, 3]) @ start[0, :3, 2] for t in out.targets]
    assert np.all(np.diff(along) > 0) and along[0] == pytest.approx(0.0, abs=1e-3)


def test_the_hands_go_where_ee_says_the_arms_keep_the_joint_delta_posture(kin):
    """Each step's solve starts from the joint_delta chunk's posture: when the displacements agree
    with the joint deltas, replace mode gives back the joint-delta chunk itself; where they differ,
    the palm goes where ee says from that posture. (Started from the previous step's solution, the
    7-joint arm settled elsewhere in its null space.)"""
    q = g1.STANDING_POSE.copy()
    delta = np.zeros((STEPS, g1.NUM_JOINTS))
    ramp = np.linspace(0.0, 1.0, STEPS)
    delta[:, LEFT[0]], delta[:, LEFT[2]], delta[:, LEFT[3]] = -0.5 * ramp, 0.4 * ramp, -0.3 * ramp
    start = kin.hand_poses(q)
    fut = np.stack([kin.hand_poses(q + d) for d in delta])  # (16, 2, 4, 4)
    ee = actions.relative_pose9(start[None], fut)
    out = EETargets(kin, EEConfig(weight=1.0)).chunk(q, delta, ee)
    assert out.fallbacks == 0
    np.testing.assert_allclose(out.targets, q + delta, atol=1e-9)
    moved = fut.copy()
    moved[:, 0, :3, 3] += 0.02 * start[0, :3, 2]  # the left palm 2 cm further along its axis than the deltas put it
    out = EETargets(kin, EEConfig(weight=1.0)).chunk(q, delta, actions.relative_pose9(start[None], moved))
    assert out.fallbacks == 0
    np.testing.assert_allclose(kin.hand_poses(out.targets[-1])[0, :3, 3], moved[-1, 0, :3, 3], atol=1.5e-3)
    unseeded, _ = EETargets(kin, EEConfig(weight=1.0)).ik_targets(q, actions.relative_pose9(start[None], moved))
    def off_posture(chunk):
        return np.abs(chunk[:, LEFT] - (q + delta)[:, LEFT]).max()

    assert off_posture(out.targets) < off_posture(unseeded)


def test_off_is_exactly_the_joint_delta_chunk(kin):
    q = g1.STANDING_POSE.copy()
    delta = small_delta()
    pred = HeadPrediction(*safe_chunk(q, delta), joint_delta=delta, ee=left_forward_ee(), grip=np.zeros((STEPS, 2)),
                          loco=np.zeros((STEPS, 3)))
    step = HeadStep(StubRuntime(pred), gate.GateConfig("bb", 4), kinematics=kin)
    res = step.step(*inputs(q))
    assert res.positions is pred.joint_targets and res.ee_fallbacks == 0 and "ik" not in res.timings
    # weight 0 goes through the IK path and still gives joint_delta's targets
    np.testing.assert_array_equal(EETargets(kin, EEConfig(weight=0.0)).chunk(q, delta, left_forward_ee()).targets,
                                  pred.joint_targets)


def test_blend_lies_between_joint_delta_and_ik(kin):
    q = g1.STANDING_POSE.copy()
    delta = small_delta()
    jd = safe_chunk(q, delta)[0]
    ik = EETargets(kin, EEConfig(weight=1.0)).chunk(q, delta, left_forward_ee()).targets
    half = EETargets(kin, EEConfig(weight=0.5)).chunk(q, delta, left_forward_ee()).targets
    np.testing.assert_allclose(half[:, ARMS_IDX], 0.5 * (jd[:, ARMS_IDX] + ik[:, ARMS_IDX]), atol=1e-12)
    np.testing.assert_array_equal(half[:, OTHERS], jd[:, OTHERS])  # legs and waist: joint_delta's
    assert not np.allclose(ik[:, LEFT], jd[:, LEFT])  # the two really differ


@pytest.mark.parametrize("bad", ["nan", "zero_rotation", "unreachable"])
def test_bad_displacement_falls_back_to_joint_delta_for_that_step(kin, bad):
    q = g1.STANDING_POSE.copy()
    delta = small_delta()
    ee = left_forward_ee()
    if bad == "nan":
        ee[7, 0, 0] = np.nan  # a step between knots
    elif bad == "zero_rotation":
        ee[7, 0, 3:] = 0.0  # no rotation in a 6D vector of zeros
    else:
        ee[15, 0, 2] = 2.0  # the left palm 2 m forward: out of reach
    out = EETargets(kin, EEConfig(weight=1.0)).chunk(q, delta, ee)
    jd = safe_chunk(q, delta)[0]
    bad_step = 15 if bad == "unreachable" else 7
    np.testing.assert_array_equal(out.targets[bad_step, LEFT], jd[bad_step, LEFT])
    assert not out.ik_ok[bad_step, 0] and out.ik_ok[:, 1].all() and out.ik_ok[:5, 0].all()
    assert out.fallbacks == int((~out.ik_ok).sum()) >= 1
    assert np.isfinite(out.targets).all()
    assert np.all(out.targets >= g1.LOWER_LIMITS) and np.all(out.targets <= g1.UPPER_LIMITS)


def test_bad_mode_weight_or_missing_kinematics_raise(kin):
    cfg = gate.GateConfig("bb", 4)
    with pytest.raises(ValueError, match="ee_mode"):
        HeadStep(None, cfg, kinematics=kin, ee_mode="ik")
    for w in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="ee_weight"):
            HeadStep(None, cfg, kinematics=kin, ee_mode="blend", ee_weight=w)
    with pytest.raises(ValueError, match="kinematics"):
        HeadStep(None, cfg, ee_mode="replace")
    with pytest.raises(ValueError, match="weight"):
        EEConfig(weight=2.0)
    with pytest.raises(ValueError, match="ee must be"):
        EETargets(kin).chunk(g1.STANDING_POSE, np.zeros((STEPS, g1.NUM_JOINTS)), np.zeros((STEPS, 9)))


def test_replace_mode_closed_loop_with_the_random_head(kin, tmp_path):
    """The random tiny head through HeadStep in replace mode: every chunk valid, the state fed back."""
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.tools.random_head import save_random_checkpoint

    head = HeadRuntime(save_random_checkpoint(tmp_path / "head", feature_dim=16, backbone_id="bb", d_model=32,
                                              layers=1))
    step = HeadStep(head, gate.GateConfig("bb", 16), kinematics=kin, ee_mode="replace", clamp_margin=0.01)
    rng = np.random.default_rng(0)
    q = g1.STANDING_POSE.copy()
    for k in range(5):
        res = step.step(*inputs(q, rng.standard_normal(16), 10**9 + k * 50_000_000))
        assert res.positions is not None, res.verdict
        assert res.positions.shape == (STEPS, g1.NUM_JOINTS) and np.isfinite(res.positions).all()
        assert np.all(res.positions >= g1.LOWER_LIMITS + 0.01 - 1e-12)
        assert np.all(res.positions <= g1.UPPER_LIMITS - 0.01 + 1e-12)
        q = res.positions[2]  # as if the robot followed the chunk for 100 ms
    assert step.chunks == 5 and step.ee_fallbacks_total <= 5 * STEPS * 2


def test_a_head_on_absolute_actions_sends_the_palms_to_its_poses(kin, tmp_path):
    """A head trained with ee_frame "base" (its checkpoint says so) predicts palm poses in the pelvis
    frame: the IK goes to them as they are; read as displacements, the same numbers go elsewhere."""
    from neon_ros.runtime.head import HeadRuntime
    from neon_ros.tools.random_head import save_random_checkpoint

    q = g1.STANDING_POSE.copy()
    goal = kin.hand_poses(q)
    goal[0, :3, 3] += FORWARD * goal[0, :3, 2]  # the left palm 5 cm along its axis, the right one where it is
    ee = np.broadcast_to(actions.pose9_from_transform(goal), (STEPS, 2, 9)).copy()
    zeros = np.zeros((STEPS, g1.NUM_JOINTS))
    out = EETargets(kin, EEConfig(frame="base")).chunk(q, zeros, ee)
    assert out.fallbacks == 0
    np.testing.assert_allclose(kin.hand_poses(out.targets[-1])[:, :3, 3], goal[:, :3, 3], atol=2e-3)
    as_rel = EETargets(kin, EEConfig(frame="hand")).chunk(q, zeros, ee)
    assert as_rel.fallbacks > 0 or np.linalg.norm(kin.hand_poses(as_rel.targets[-1])[0, :3, 3] - goal[0, :3, 3]) > 0.05
    with pytest.raises(ValueError, match="frame"):
        EEConfig(frame="world")
    path = save_random_checkpoint(tmp_path / "head", feature_dim=16, backbone_id="bb", d_model=32, layers=1)
    meta = json.loads(path.read_text())
    meta["extra"]["ee_frame"] = "base"
    path.write_text(json.dumps(meta))
    step = HeadStep(HeadRuntime(path), gate.GateConfig("bb", 16), kinematics=kin, ee_mode="replace")
    assert step.ee.config.frame == "base"


class StubRuntime:
    """A HeadRuntime that always predicts ``pred``."""

    def __init__(self, pred: HeadPrediction):
        self.pred = pred

    def predict(self, features, q, dq, clamp_margin=0.0) -> HeadPrediction:
        return self.pred


def inputs(q, vector=None, now_ns: int = 10**9):
    """Fresh features and joint state for HeadStep.step at ``now_ns``."""
    vec = np.zeros(4) if vector is None else vector
    return gate.Features(vec, now_ns, "bb"), gate.JointInput(q, np.zeros(g1.NUM_JOINTS), now_ns), now_ns
