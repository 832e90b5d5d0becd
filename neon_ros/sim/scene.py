"""The simulation scene, built with ``mujoco.MjSpec`` from the G1 MJCF of ``neon-ros assets``.

World frame: x forward from the robot, y to its left, z up, origin on the floor under the
pelvis. The scene adds to the G1 model: a floor, lights, a table in front of the robot, a
red cup on the table within reach of the hands, a head camera on the torso looking
forward-down at the table, one torque motor per joint (``ctrlrange`` = the motor's torque
limit) and the motors' reflected inertia as joint armature.

``fixed_base=True`` removes the pelvis free joint, so the pelvis is welded to the world at
standing height, as on a gantry; the model then has only the 29 hinges plus the cup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neon_ros import g1

# --- scene constants (world frame, metres) ---------------------------------------------------
TABLE_HEIGHT = 0.68  # floor to table top
TABLE_TOP_HALF_SIZE = (0.20, 0.40, 0.02)  # half extents of the table top slab
TABLE_CENTER_XY = (0.48, 0.0)  # table top centre; its front edge is at x = 0.28
TABLE_LEG_RADIUS = 0.025
TABLE_COLOR = (0.55, 0.38, 0.22, 1.0)

CUP_RADIUS = 0.035
CUP_HALF_HEIGHT = 0.05
CUP_MASS = 0.15  # kg
CUP_COLOR = (0.85, 0.05, 0.05, 1.0)
# Cup centre at rest on the table, in front of the left hand: the left palm reaches it by
# raising the arm forward (shoulder pitch -0.6, elbow 0) and then lowering the forearm
# (shoulder pitch -0.4, elbow 0.9), clear of the table edge.
CUP_POSITION = (0.40, 0.10, TABLE_HEIGHT + CUP_HALF_HEIGHT)

HEAD_CAMERA = "head_camera"
HEAD_CAMERA_BODY = "torso_link"
HEAD_CAMERA_POS = (0.07, 0.0, 0.45)  # in the torso frame: the front of the head
HEAD_CAMERA_PITCH = math.radians(50.0)  # below horizontal
HEAD_CAMERA_FOVY = 75.0  # degrees, vertical

# Off-screen rendering runs in software GL (Mesa llvmpipe through EGL) on CPU-only machines:
# no multisampling and no floor reflection halve the cost of a frame (~65 -> ~30 ms at 224x224).
OFFSCREEN_SAMPLES = 0

PELVIS_BODY = "pelvis"
FREE_JOINT = "floating_base_joint"
CUP_BODY = "red_cup"
CUP_JOINT = "red_cup_free"
MOTOR_PREFIX = "motor_"  # actuator of joint J is named motor_J


@dataclass(frozen=True)
class SceneConfig:
    """What the scene builder needs.

    fixed_base: pin the pelvis to the world (gantry); False keeps the G1 free joint.
    timestep: physics step in seconds (the robot's control period is 0.002 s).
    camera_width, camera_height: off-screen render size of the head camera, pixels.
    cup_position: where the cup's centre starts (x, y, z), world frame.
    mjcf_path: the G1 MJCF; None means ``neon_ros.sim.assets.g1_mjcf_path()``.
    arm_scale: both arms this many times as long (``g1.stretch_arms``; 1 = the G1).
    """

    fixed_base: bool = True
    timestep: float = 0.002
    camera_width: int = 224
    camera_height: int = 224
    cup_position: tuple[float, float, float] = CUP_POSITION
    mjcf_path: Path | None = None
    arm_scale: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 < self.timestep <= 0.01):
            raise ValueError(f"timestep must be in (0, 0.01] s, got {self.timestep}")
        for name in ("camera_width", "camera_height"):
            v = getattr(self, name)
            if not (isinstance(v, int) and 16 <= v <= 4096):
                raise ValueError(f"{name} must be an int in [16, 4096], got {v!r}")
        if len(self.cup_position) != 3 or not all(math.isfinite(c) for c in self.cup_position):
            raise ValueError(f"cup_position must be 3 finite numbers, got {self.cup_position!r}")


def cup_pose(config: SceneConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Initial cup pose: (centre position (3,), quaternion wxyz (4,)), world frame."""
    pos = (config or SceneConfig()).cup_position
    return np.array(pos, dtype=np.float64), np.array([1.0, 0.0, 0.0, 0.0])


def head_camera_xyaxes(pitch: float = HEAD_CAMERA_PITCH) -> list[float]:
    """Camera x (image right) and y (image up) axes in the torso frame, looking along +x pitched down.

    MuJoCo cameras look along their -z axis; forward-down is (cos p, 0, -sin p).
    """
    return [0.0, -1.0, 0.0, math.sin(pitch), 0.0, math.cos(pitch)]


def _mjcf_path(config: SceneConfig) -> Path:
    if config.mjcf_path is not None:
        return Path(config.mjcf_path)
    from neon_ros.sim import assets

    return assets.g1_mjcf_path()


def _add_environment(spec, mujoco) -> None:
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    spec.add_texture(name="skybox", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
                     rgb1=[0.55, 0.65, 0.8], rgb2=[0.1, 0.1, 0.15], width=256, height=256)
    spec.add_texture(name="floor_grid", type=mujoco.mjtTexture.mjTEXTURE_2D,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                     rgb1=[0.3, 0.32, 0.35], rgb2=[0.22, 0.24, 0.27], width=256, height=256)
    floor_mat = spec.add_material(name="floor_mat", texrepeat=[6.0, 6.0], reflectance=0.0)
    floor_mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor_grid"
    world = spec.worldbody
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
                   material="floor_mat", contype=1, conaffinity=1)
    world.add_light(name="sun", pos=[0.5, 0.0, 3.0], dir=[0.0, 0.0, -1.0],
                    type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, diffuse=[0.6, 0.6, 0.6],
                    specular=[0.2, 0.2, 0.2], castshadow=False)
    world.add_light(name="fill", pos=[1.5, 0.0, 2.0], dir=[-0.6, 0.0, -0.8],
                    diffuse=[0.3, 0.3, 0.3], castshadow=False)


def _add_table(spec, mujoco) -> None:
    hx, hy, hz = TABLE_TOP_HALF_SIZE
    cx, cy = TABLE_CENTER_XY
    table = spec.worldbody.add_body(name="table", pos=[cx, cy, TABLE_HEIGHT - hz])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, hz],
                   rgba=list(TABLE_COLOR), contype=1, conaffinity=1, friction=[0.8, 0.01, 0.001])
    leg_half = (TABLE_HEIGHT - 2 * hz) / 2
    inset = TABLE_LEG_RADIUS * 2
    for i, (sx, sy) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]):
        table.add_geom(name=f"table_leg_{i}", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                       size=[TABLE_LEG_RADIUS, leg_half, 0],
                       pos=[sx * (hx - inset), sy * (hy - inset), -hz - leg_half],
                       rgba=list(TABLE_COLOR), contype=1, conaffinity=1)


def _add_cup(spec, mujoco, config: SceneConfig) -> None:
    pos, quat = cup_pose(config)
    cup = spec.worldbody.add_body(name=CUP_BODY, pos=pos.tolist(), quat=quat.tolist())
    cup.add_freejoint(name=CUP_JOINT)
    cup.add_geom(name="red_cup_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                 size=[CUP_RADIUS, CUP_HALF_HEIGHT, 0], mass=CUP_MASS, rgba=list(CUP_COLOR),
                 contype=1, conaffinity=1, condim=4, friction=[1.0, 0.02, 0.002])
    # A darker inside at the top makes it read as a cup in the camera image.
    cup.add_geom(name="red_cup_inside", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                 size=[CUP_RADIUS * 0.85, 0.001, 0], pos=[0, 0, CUP_HALF_HEIGHT],
                 rgba=[0.35, 0.02, 0.02, 1.0], contype=0, conaffinity=0, density=0)


def _add_robot_parts(spec, mujoco, config: SceneConfig) -> None:
    for j in g1.JOINTS:
        spec.joint(j.name).armature = float(g1.ARMATURE[j.index])
        act = spec.add_actuator(name=MOTOR_PREFIX + j.name, target=j.name)
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.ctrllimited = True
        act.ctrlrange = [-j.torque_limit, j.torque_limit]
    pelvis = spec.body(PELVIS_BODY)
    pelvis.pos = [0.0, 0.0, g1.PELVIS_STANDING_HEIGHT]
    if config.fixed_base:
        spec.delete(spec.joint(FREE_JOINT))
    g1.stretch_arms(spec, config.arm_scale)
    torso = spec.body(HEAD_CAMERA_BODY)
    cam = torso.add_camera(name=HEAD_CAMERA, pos=list(HEAD_CAMERA_POS), fovy=HEAD_CAMERA_FOVY)
    cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    cam.alt.xyaxes = head_camera_xyaxes()


def build_spec(config: SceneConfig | None = None):
    """The scene as an uncompiled ``mujoco.MjSpec`` (callers may add to it before compiling)."""
    import mujoco

    config = config or SceneConfig()
    spec = mujoco.MjSpec.from_file(str(_mjcf_path(config)))
    spec.modelname = "neon_g1_table_cup"
    spec.option.timestep = config.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offwidth = max(640, config.camera_width)
    spec.visual.global_.offheight = max(480, config.camera_height)
    spec.visual.quality.offsamples = OFFSCREEN_SAMPLES
    _add_environment(spec, mujoco)
    _add_table(spec, mujoco)
    _add_cup(spec, mujoco, config)
    _add_robot_parts(spec, mujoco, config)
    return spec


def build_model(config: SceneConfig | None = None):
    """Compile the scene into a ``mujoco.MjModel``."""
    return build_spec(config).compile()
