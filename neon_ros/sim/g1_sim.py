"""``G1Sim``: the G1 in MuJoCo with motors driven like the real ones (no DDS, no rclpy).

Each physics step, every enabled motor applies
``tau = tau_ff + kp * (q_cmd - q) + kd * (dq_cmd - dq)``, clamped to ``g1.TORQUE_LIMITS``;
a disabled motor applies no torque. That is what the G1's motor drivers do with a LowCmd_.
All arrays are in the G1 SDK motor order (``g1.JOINT_NAMES``).

Thread safety: one lock guards the physics state. ``step`` and ``set_command`` may run in
one thread while ``render`` runs in another: rendering copies the state under the lock
and draws outside it, with one renderer (GL context) per calling thread.

Rendering is off-screen through EGL (else OSMesa), chosen by ``neon_ros.sim.render`` itself,
so it works whatever MUJOCO_GL was when mujoco was first imported.
"""

from __future__ import annotations

import math
import threading

import mujoco
import numpy as np

from neon_ros import g1
from neon_ros.sim import scene
from neon_ros.sim.render import OffscreenRenderer

_N = g1.NUM_JOINTS


def _vec(name: str, value, default: float | None = None) -> np.ndarray:
    if value is None:
        if default is None:
            raise ValueError(f"{name} is required")
        return np.full(_N, default, dtype=np.float64)
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape == ():
        arr = np.full(_N, float(arr))
    if arr.shape != (_N,):
        raise ValueError(f"{name} must have shape ({_N},) in G1 motor order, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = [g1.JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(arr))[:3]]
        raise ValueError(f"{name} has non-finite values (e.g. {', '.join(bad)})")
    return arr


class G1Sim:
    """The simulated G1 on a table-and-cup scene.

    fixed_base: pelvis pinned at standing height (gantry); False leaves the free joint, and the
        robot falls without a balance controller.
    timestep: physics step in seconds.
    camera_size: (width, height) of ``render()`` images in pixels.
    arm_scale: both arms this many times as long (another embodiment, ``g1.stretch_arms``).

    After construction (and after ``reset``) every motor is disabled: no torque until
    ``set_command``.
    """

    def __init__(self, fixed_base: bool = True, timestep: float = 0.002,
                 camera_size: tuple[int, int] = (224, 224), arm_scale: float = 1.0):
        width, height = (int(v) for v in camera_size)
        self.config = scene.SceneConfig(fixed_base=bool(fixed_base), timestep=float(timestep),
                                        camera_width=width, camera_height=height, arm_scale=float(arm_scale))
        self.model = scene.build_model(self.config)
        self.data = mujoco.MjData(self.model)
        self._lock = threading.RLock()
        m = self.model
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in g1.JOINT_NAMES]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jids], dtype=np.int64)
        self._vadr = np.array([m.jnt_dofadr[j] for j in jids], dtype=np.int64)
        self._act = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, scene.MOTOR_PREFIX + n)
                              for n in g1.JOINT_NAMES], dtype=np.int64)
        self._pelvis = m.body(scene.PELVIS_BODY).id
        self._imu_site = m.site(g1.IMU_SITE).id
        self._cup = m.body(scene.CUP_BODY).id
        self._cup_qadr = int(m.jnt_qposadr[m.joint(scene.CUP_JOINT).id])
        self._free_qadr = (None if fixed_base else int(m.jnt_qposadr[m.joint(scene.FREE_JOINT).id]))
        self._gyro = self._sensor_slice("imu_ang_vel")
        self._acc = self._sensor_slice("imu_lin_acc")
        self._render_local = threading.local()
        self._renderers: list[OffscreenRenderer] = []
        self._render_data = mujoco.MjData(m)
        self._render_lock = threading.Lock()
        self.reset()

    def _sensor_slice(self, name: str) -> slice:
        s = self.model.sensor(name)
        adr = int(s.adr[0])
        return slice(adr, adr + int(s.dim[0]))

    # --- state -------------------------------------------------------------------------------
    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        """Simulated time in seconds since the last reset."""
        return float(self.data.time)

    @property
    def q(self) -> np.ndarray:
        """Joint positions (29,) rad, motor order."""
        with self._lock:
            return self.data.qpos[self._qadr].copy()

    @property
    def dq(self) -> np.ndarray:
        """Joint velocities (29,) rad/s, motor order."""
        with self._lock:
            return self.data.qvel[self._vadr].copy()

    @property
    def tau_est(self) -> np.ndarray:
        """Torque each motor applied in the last step (29,) N m, after clamping."""
        with self._lock:
            return self._tau.copy()

    def imu(self) -> dict[str, np.ndarray]:
        """Pelvis IMU: quaternion (w, x, y, z), gyroscope (rad/s), accelerometer (m/s^2, +g when at rest), rpy."""
        with self._lock:
            quat = np.empty(4)
            mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._imu_site])
            gyro = self.data.sensordata[self._gyro].copy()
            acc = self.data.sensordata[self._acc].copy()
        w, x, y, z = quat
        rpy = np.array([
            np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
            np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0)),
            np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)),
        ])
        return {"quaternion": quat, "gyroscope": gyro, "accelerometer": acc, "rpy": rpy}

    def site_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World pose of a site (e.g. g1.HAND_SITES['left']): position (3,), rotation matrix (3, 3)."""
        sid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)
        if sid < 0:
            sites = [self.model.site(i).name for i in range(self.model.nsite)]
            raise KeyError(f"no site {name!r} in the scene; sites: {', '.join(sites)}")
        with self._lock:
            return self.data.site_xpos[sid].copy(), self.data.site_xmat[sid].reshape(3, 3).copy()

    def cup_position(self) -> np.ndarray:
        """Current world position of the red cup's centre (3,)."""
        with self._lock:
            return self.data.xpos[self._cup].copy()

    def pelvis_position(self) -> np.ndarray:
        with self._lock:
            return self.data.xpos[self._pelvis].copy()

    def set_base_pose(self, x: float, y: float, yaw: float) -> None:
        """Move the pinned pelvis (fixed_base only) to (x, y) m in the world, heading ``yaw`` rad,
        at standing height: a base that walks kinematically (the simulated loco service)."""
        if self._free_qadr is not None:
            raise RuntimeError("set_base_pose needs fixed_base: a free base moves by physics")
        with self._lock:
            self.model.body_pos[self._pelvis, :2] = (x, y)
            self.model.body_quat[self._pelvis] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))

    # --- commands and stepping -----------------------------------------------------------------
    def set_command(self, q, dq, kp, kd, tau, enabled=None) -> None:
        """Motor commands in motor order (scalars broadcast). enabled[i] False -> motor i gives no torque.

        Raises ValueError on wrong shapes, non-finite values or negative gains (nothing is applied).
        """
        q_cmd, dq_cmd = _vec("q", q), _vec("dq", dq)
        kp_cmd, kd_cmd, tau_cmd = _vec("kp", kp), _vec("kd", kd), _vec("tau", tau)
        if np.any(kp_cmd < 0) or np.any(kd_cmd < 0):
            raise ValueError("kp and kd must be >= 0")
        en = np.ones(_N, dtype=bool) if enabled is None else np.asarray(enabled, dtype=bool)
        if en.shape != (_N,):
            raise ValueError(f"enabled must have shape ({_N},), got {en.shape}")
        with self._lock:
            self._q_cmd, self._dq_cmd, self._kp, self._kd, self._tau_ff = q_cmd, dq_cmd, kp_cmd, kd_cmd, tau_cmd
            self._enabled = en.copy()

    def disable(self) -> None:
        """All motors off (zero torque), as after power-on."""
        with self._lock:
            self._enabled = np.zeros(_N, dtype=bool)

    def motor_torque(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """The torque the motors apply at state (q, dq) under the current command, clamped."""
        tau = self._tau_ff + self._kp * (self._q_cmd - q) + self._kd * (self._dq_cmd - dq)
        tau = np.clip(tau, -g1.TORQUE_LIMITS, g1.TORQUE_LIMITS)
        tau[~self._enabled] = 0.0
        return tau

    def step(self, n: int = 1) -> None:
        """Advance n physics steps, recomputing the motor torques each step."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        m, d = self.model, self.data
        with self._lock:
            for _ in range(int(n)):
                tau = self.motor_torque(d.qpos[self._qadr], d.qvel[self._vadr])
                d.ctrl[self._act] = tau
                self._tau = tau
                mujoco.mj_step(m, d)

    def reset(self, q=None, cup_position=None) -> None:
        """Joints to q (default g1.STANDING_POSE) at rest, cup back on the table (at
        ``cup_position``, world frame, if given; else the scene's), time 0, motors off."""
        q0 = _vec("q", g1.STANDING_POSE if q is None else q)
        cup = None if cup_position is None else np.asarray(cup_position, dtype=np.float64)
        if cup is not None and (cup.shape != (3,) or not np.all(np.isfinite(cup))):
            raise ValueError(f"cup_position must be 3 finite numbers, got {cup_position!r}")
        m, d = self.model, self.data
        with self._lock:
            mujoco.mj_resetData(m, d)
            d.qpos[self._qadr] = q0
            if self._free_qadr is not None:
                a = self._free_qadr
                d.qpos[a:a + 3] = [0.0, 0.0, g1.PELVIS_STANDING_HEIGHT]
                d.qpos[a + 3:a + 7] = [1.0, 0.0, 0.0, 0.0]
            pos, quat = scene.cup_pose(self.config)
            d.qpos[self._cup_qadr:self._cup_qadr + 3] = pos if cup is None else cup
            d.qpos[self._cup_qadr + 3:self._cup_qadr + 7] = quat
            mujoco.mj_forward(m, d)
            self._q_cmd = q0.copy()
            self._dq_cmd = np.zeros(_N)
            self._kp = np.zeros(_N)
            self._kd = np.zeros(_N)
            self._tau_ff = np.zeros(_N)
            self._enabled = np.zeros(_N, dtype=bool)
            self._tau = np.zeros(_N)

    # --- rendering -----------------------------------------------------------------------------
    def _renderer(self) -> OffscreenRenderer:
        r = getattr(self._render_local, "renderer", None)
        if r is None:
            r = OffscreenRenderer(self.model, self.config.camera_width, self.config.camera_height)
            self._render_local.renderer = r
            with self._render_lock:
                self._renderers.append(r)
        return r

    def render(self, camera: str = scene.HEAD_CAMERA) -> np.ndarray:
        """Render a camera of the scene: (height, width, 3) uint8 RGB."""
        cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam_id < 0:
            cams = [self.model.camera(i).name for i in range(self.model.ncam)]
            raise KeyError(f"no camera {camera!r}; cameras: {', '.join(cams)}")
        r = self._renderer()
        with self._render_lock:  # one snapshot buffer shared by rendering threads
            rd = self._render_data
            with self._lock:
                rd.qpos[:] = self.data.qpos
                rd.qvel[:] = self.data.qvel
                rd.time = self.data.time
            mujoco.mj_kinematics(self.model, rd)
            mujoco.mj_camlight(self.model, rd)
            return r.render(rd, cam_id)

    def close_thread_renderer(self) -> None:
        """Free the calling thread's renderer (call from a rendering thread before it ends)."""
        r = getattr(self._render_local, "renderer", None)
        if r is None:
            return
        self._render_local.renderer = None
        with self._render_lock:
            self._renderers = [x for x in self._renderers if x is not r]
        r.close()

    def close(self) -> None:
        """Free the GL contexts (renderers of other threads are freed by their owners' exit)."""
        with self._render_lock:
            renderers, self._renderers = self._renderers, []
        for r in renderers:
            try:
                r.close()
            except Exception:  # a context owned by another, finished thread
                pass
        self._render_local = threading.local()

    def __enter__(self) -> G1Sim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
