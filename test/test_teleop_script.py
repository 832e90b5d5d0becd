"""Plain logic of `neon-ros teleop`: assignments, keyframe scripts, keyboard state (no ROS)."""

import numpy as np
import pytest

from neon_ros import g1
from neon_ros.runtime.teleop import KeyboardState, TeleopError, TeleopScript, parse_assignment

RSP = "right_shoulder_pitch_joint"
REL = "right_elbow_joint"


def test_assignments_absolute_and_relative():
    start = g1.STANDING_POSE.copy()
    assert parse_assignment(f"{RSP}=-0.8").resolve(start) == pytest.approx(-0.8)
    assert parse_assignment(f"{REL}+=0.3").resolve(start) == pytest.approx(start[g1.JOINT_INDEX[REL]] + 0.3)
    assert parse_assignment(f"{REL}-=0.3").resolve(start) == pytest.approx(start[g1.JOINT_INDEX[REL]] - 0.3)
    for bad in ("nope_joint=1", f"{RSP}:1", f"{RSP}=abc", f"{RSP}=nan"):
        with pytest.raises(TeleopError):
            parse_assignment(bad)


def test_script_interpolates_holds_and_clamps():
    text = f"""# wave
    0.5 {RSP}=-1.0
    1.5 {RSP}=-1.0 {REL}=5.0   # beyond the limit: clamped
    """
    script = TeleopScript.parse(text)
    start = g1.STANDING_POSE.copy()
    plan = script.plan(start)
    assert plan.joints == [RSP, REL] and plan.duration == pytest.approx(1.5)
    # t=0: the measured pose (glide to the first keyframe)
    np.testing.assert_allclose(plan.at(0.0), start[[g1.JOINT_INDEX[RSP], g1.JOINT_INDEX[REL]]])
    assert plan.at(0.25)[0] == pytest.approx((start[g1.JOINT_INDEX[RSP]] - 1.0) / 2)
    assert plan.at(1.5)[1] == pytest.approx(g1.UPPER_LIMITS[g1.JOINT_INDEX[REL]])
    with pytest.raises(TeleopError, match="<script>:2"):
        TeleopScript.parse(f"0 {RSP}=0\n1 bogus=1")
    with pytest.raises(TeleopError):
        TeleopScript.parse(f"1 {RSP}=0\n0.5 {RSP}=1")
    with pytest.raises(TeleopError):
        TeleopScript.hold([parse_assignment(f"{RSP}=0")], 0)


def test_keyboard_state():
    kb = KeyboardState(g1.STANDING_POSE, step=0.1)
    assert kb.command() is None
    kb.key("+")
    kb.key("+")
    names, values = kb.command()
    assert names == [RSP] and values[0] == pytest.approx(g1.STANDING_POSE[g1.JOINT_INDEX[RSP]] + 0.2)
    kb.key("n")
    kb.key("-")
    assert kb.command()[0] == [RSP, "right_shoulder_roll_joint"]
    kb.key(" ")
    assert kb.command() is None
    kb.key("e")
    kb.key("q")
    assert kb.estop and kb.quit


def test_keyboard_end_of_input_quits_and_releases_never_moves():
    kb = KeyboardState(g1.STANDING_POSE, step=0.1)
    kb.key("+")
    kb.key("")  # stdin closed: read(1) returns ''
    assert kb.quit and kb.command() is None and kb.release == [RSP]
    kb = KeyboardState(g1.STANDING_POSE, step=0.1)
    kb.key("")
    assert kb.quit and kb.command() is None and kb.release == []


def test_keyboard_space_releases_the_held_joints():
    kb = KeyboardState(g1.STANDING_POSE, step=0.1)
    kb.key("+")
    kb.key(" ")
    assert kb.command() is None and kb.release == [RSP] and not kb.quit
