"""G1Sim: real MuJoCo physics of the G1 scene, motor PD like the robot, off-screen rendering."""

import os

import mujoco
import numpy as np
import pytest

from neon_ros import g1
from neon_ros.sim import scene
from neon_ros.sim.g1_sim import G1Sim

ELBOW = g1.JOINT_INDEX["left_elbow_joint"]


@pytest.fixture(scope="module")
def sim():
    s = G1Sim(fixed_base=True, camera_size=(96, 96))
    yield s
    s.close()


@pytest.fixture
def fresh(sim):
    sim.reset()
    return sim


def hold(sim, q):
    sim.set_command(q, 0.0, g1.DEFAULT_KP, g1.DEFAULT_KD, 0.0)


def test_scene_has_robot_table_cup_camera_and_motors():
    model = scene.build_model(scene.SceneConfig(camera_width=64, camera_height=48))
    assert model.nu == g1.NUM_JOINTS
    for i, name in enumerate(g1.JOINT_NAMES):
        act = model.actuator(scene.MOTOR_PREFIX + name)
        assert model.actuator_trnid[act.id, 0] == model.joint(name).id
        assert act.ctrlrange[1] == pytest.approx(g1.TORQUE_LIMITS[i])
        assert model.dof_armature[model.joint(name).dofadr[0]] == pytest.approx(g1.ARMATURE[i])
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, scene.HEAD_CAMERA) >= 0
    assert model.body(scene.CUP_BODY).id > 0 and model.geom("table_top").id > 0
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, scene.FREE_JOINT) < 0  # fixed base


def test_pd_drives_left_elbow_to_target_and_other_joints_hold(fresh):
    target = g1.STANDING_POSE.copy()
    target[ELBOW] = 0.3  # from 1.28: a 1 rad move
    hold(fresh, target)
    fresh.step(1000)  # 2 s
    q = fresh.q
    assert q[ELBOW] == pytest.approx(0.3, abs=0.08)
    others = np.arange(g1.NUM_JOINTS) != ELBOW
    assert np.max(np.abs(q[others] - g1.STANDING_POSE[others])) < 0.12
    assert abs(fresh.dq[ELBOW]) < 0.05  # settled
    assert fresh.time == pytest.approx(2.0)


def test_torque_is_clamped_and_disabled_motors_give_none(fresh):
    enabled = np.ones(g1.NUM_JOINTS, dtype=bool)
    enabled[:6] = False
    fresh.set_command(g1.STANDING_POSE + 0.5, 0.0, 1e4, 0.0, 0.0, enabled=enabled)
    fresh.step(1)
    tau = fresh.tau_est
    assert np.allclose(np.abs(tau[6:]), g1.TORQUE_LIMITS[6:])  # saturated, not beyond
    assert np.all(tau[:6] == 0.0)
    assert np.allclose(fresh.data.actuator_force, tau)  # what MuJoCo applied
    fresh.set_command(g1.STANDING_POSE, 0.0, 0.0, 0.0, -1e3)  # feed-forward alone is clamped too
    fresh.step(1)
    assert np.allclose(fresh.tau_est, -g1.TORQUE_LIMITS)


def test_fixed_base_keeps_pelvis_still_while_arms_swing(fresh):
    start = fresh.pelvis_position()
    q = g1.STANDING_POSE.copy()
    q[list(g1.ARM_INDICES["left"])] += 0.8
    q[list(g1.ARM_INDICES["right"])] -= 0.8
    hold(fresh, np.clip(q, g1.LOWER_LIMITS, g1.UPPER_LIMITS))
    fresh.step(250)
    assert np.array_equal(fresh.pelvis_position(), start)
    assert start[2] == pytest.approx(g1.PELVIS_STANDING_HEIGHT)
    imu = fresh.imu()
    assert np.allclose(imu["quaternion"], [1, 0, 0, 0])
    assert np.allclose(imu["accelerometer"], [0, 0, 9.81], atol=1e-6)


def test_free_base_without_balance_control_falls():
    with G1Sim(fixed_base=False, camera_size=(32, 32)) as s:
        assert s.pelvis_position()[2] == pytest.approx(g1.PELVIS_STANDING_HEIGHT)
        s.step(500)  # motors off for 1 s
        assert s.pelvis_position()[2] < g1.PELVIS_STANDING_HEIGHT - 0.2
        assert np.linalg.norm(s.imu()["accelerometer"]) > 0


def test_left_palm_reaches_the_cup(fresh):
    cup = fresh.cup_position()
    assert cup == pytest.approx(scene.CUP_POSITION, abs=1e-3)  # resting on the table
    far = np.linalg.norm(fresh.site_pose(g1.HAND_SITES["left"])[0] - cup)
    q = g1.STANDING_POSE.copy()
    q[g1.JOINT_INDEX["left_shoulder_roll_joint"]] = 0.0
    for pitch, elbow in ((-0.6, 0.0), (-0.4, 0.9)):  # arm up and forward, then forearm down
        q[g1.JOINT_INDEX["left_shoulder_pitch_joint"]] = pitch
        q[ELBOW] = elbow
        hold(fresh, q)
        fresh.step(400)
    pos, rot = fresh.site_pose(g1.HAND_SITES["left"])
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert np.linalg.norm(pos - fresh.cup_position()) < 0.12 < 0.3 < far
    assert fresh.cup_position()[2] == pytest.approx(scene.CUP_POSITION[2], abs=0.01)  # still upright on the table


def test_render_shows_the_red_cup(fresh):
    img = fresh.render()
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    assert img.std() > 10  # not blank
    r, g, b = (img[..., i].astype(int) for i in range(3))
    red = (r > 120) & (g < 60) & (b < 60)
    assert red.sum() > 20
    # the red is the cup: move the cup out of view and it goes
    adr = fresh.model.jnt_qposadr[fresh.model.joint(scene.CUP_JOINT).id]
    fresh.data.qpos[adr:adr + 3] = [5.0, 5.0, 0.05]
    mujoco.mj_forward(fresh.model, fresh.data)
    img2 = fresh.render()
    r, g, b = (img2[..., i].astype(int) for i in range(3))
    assert ((r > 120) & (g < 60) & (b < 60)).sum() < 3


def test_stepping_is_deterministic(fresh):
    def run(s):
        s.reset()
        for k in range(5):
            q = g1.STANDING_POSE.copy()
            q[ELBOW] = 1.28 - 0.2 * k
            hold(s, q)
            s.step(40)
        return s.q, s.dq, s.cup_position()

    a = run(fresh)
    b = run(fresh)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


def test_bad_commands_are_refused(fresh):
    nan_q = g1.STANDING_POSE.copy()
    nan_q[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fresh.set_command(nan_q, 0, 1, 1, 0)
    with pytest.raises(ValueError, match="shape"):
        fresh.set_command(np.zeros(12), 0, 1, 1, 0)
    with pytest.raises(ValueError, match=">= 0"):
        fresh.set_command(g1.STANDING_POSE, 0, -1, 1, 0)
    with pytest.raises(KeyError, match="head_camera"):
        fresh.render("nope")
    with pytest.raises(KeyError, match="left_palm"):
        fresh.site_pose("nope")
    with pytest.raises(ValueError, match="camera_width"):
        scene.SceneConfig(camera_width=3)


def test_camera_loop_delivers_frames_from_its_own_thread(fresh):
    import threading

    from neon_ros.sim.camera import CameraLoop

    frames, threads = [], set()

    def on_frame(img):
        frames.append(img)
        threads.add(threading.get_ident())

    cam = CameraLoop(fresh, 20.0, on_frame)
    cam.start()  # returns after the first frame
    assert len(frames) >= 1 and cam.error is None
    fresh.step(50)  # physics keeps running in this thread meanwhile
    cam.stop()
    assert frames[0].shape == (96, 96, 3) and frames[0].dtype == np.uint8
    assert threading.get_ident() not in threads
    with pytest.raises(ValueError, match="rate"):
        CameraLoop(fresh, 0.0, on_frame)


def test_renders_headless_even_if_mujoco_was_imported_without_mujoco_gl(tmp_path):
    # mujoco.Renderer would pick GLFW (needs a display) here; our renderer picks EGL itself
    import subprocess
    import sys

    from support import REPO

    code = ("import mujoco\nfrom neon_ros.sim.g1_sim import G1Sim\n"
            "s = G1Sim(camera_size=(32, 24)); img = s.render()\n"
            "print('SHAPE', img.shape, s._renderer().backend, int(img.std() > 5))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert "SHAPE (24, 32, 3) egl 1" in out.stdout, out.stdout + out.stderr
