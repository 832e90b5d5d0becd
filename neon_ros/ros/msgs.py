"""ROS message <-> numpy conversions for the topics of DESIGN.md section 3.

Plain functions over message classes: no rclpy import, no node, so every conversion is
tested by building messages directly (nav2_simple_commander style). Image pixels of any
camera encoding are decoded by ``runtime.image.image_to_rgb`` (also for clips); this
module covers the formats Neon itself defines (clip stacking, 32FC1 features, trajectories).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from neon_ros import contract, g1
from neon_ros.errors import NeonError

NS = 1_000_000_000


class MessageError(NeonError, ValueError):
    """A message that does not fit the contract; the text says which field and why."""


# --- time -------------------------------------------------------------------------------

def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * NS + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    ns = int(ns)
    return Time(sec=ns // NS, nanosec=ns % NS)


def duration_to_s(d: Duration) -> float:
    return float(d.sec) + float(d.nanosec) * 1e-9


def s_to_duration(s: float) -> Duration:
    ns = int(round(s * NS))
    return Duration(sec=ns // NS, nanosec=ns % NS)


# --- action chunks (trajectory_msgs/JointTrajectory) ------------------------------------

def chunk_to_trajectory(
    positions: np.ndarray,
    stamp_ns: int,
    joint_names: Sequence[str] = g1.JOINT_NAMES,
    dt: float = contract.CONTROL_DT,
    frame_id: str = "pelvis",
    times: Sequence[float] | None = None,
) -> JointTrajectory:
    """(K, N) absolute joint targets -> JointTrajectory with point k at ``times[k]`` s (default k*dt)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != len(joint_names):
        raise MessageError(f"chunk shape {positions.shape} does not match {len(joint_names)} joint names")
    msg = JointTrajectory()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.joint_names = list(joint_names)
    for k, row in enumerate(positions):
        pt = JointTrajectoryPoint()
        pt.positions = row.tolist()
        pt.time_from_start = s_to_duration(k * dt if times is None else float(times[k]))
        msg.points.append(pt)
    return msg


def trajectory_to_arrays(msg: JointTrajectory) -> tuple[list[str], np.ndarray, np.ndarray]:
    """JointTrajectory -> (joint names, positions (K, N) float64, times_from_start (K,) s).

    Only structure is checked here (each point has one position per name); contract and
    safety checks (known names, finiteness, point count) are the safety layer's job.
    """
    names = list(msg.joint_names)
    n = len(names)
    pos = np.empty((len(msg.points), n), dtype=np.float64)
    times = np.empty(len(msg.points), dtype=np.float64)
    for k, pt in enumerate(msg.points):
        if len(pt.positions) != n:
            raise MessageError(f"point {k} has {len(pt.positions)} positions for {n} joint names")
        pos[k] = pt.positions
        times[k] = duration_to_s(pt.time_from_start)
    return names, pos, times


# --- joint states --------------------------------------------------------------------------

def joint_state(stamp_ns: int, q: np.ndarray, dq: np.ndarray | None = None,
                tau: np.ndarray | None = None, names: Sequence[str] = g1.JOINT_NAMES) -> JointState:
    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.name = list(names)
    msg.position = np.asarray(q, dtype=np.float64).tolist()
    if dq is not None:
        msg.velocity = np.asarray(dq, dtype=np.float64).tolist()
    if tau is not None:
        msg.effort = np.asarray(tau, dtype=np.float64).tolist()
    return msg


def joint_state_to_g1(msg: JointState) -> tuple[np.ndarray, np.ndarray]:
    """JointState (any name order) -> (q, dq) in G1 motor order; MessageError if a joint is missing."""
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in g1.JOINT_NAMES if n not in index]
    if missing:
        raise MessageError(f"joint_states lacks {len(missing)} G1 joints, e.g. {missing[0]}")
    order = [index[n] for n in g1.JOINT_NAMES]
    q = np.asarray(msg.position, dtype=np.float64)[order]
    dq = (np.asarray(msg.velocity, dtype=np.float64)[order]
          if len(msg.velocity) == len(msg.name) else np.zeros(g1.NUM_JOINTS))
    return q, dq


# --- the head's loco and grip commands (/neon/loco_cmd, /neon/grip_cmd) -----------------

def loco_to_twist(velocity: Sequence[float], stamp_ns: int, frame_id: str = "pelvis") -> TwistStamped:
    """(vx m/s, vy m/s, yaw rate rad/s) in the base frame -> TwistStamped (linear.x, linear.y, angular.z)."""
    vx, vy, wz = (float(v) for v in velocity)
    msg = TwistStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.angular.z = vx, vy, wz
    return msg


def twist_to_loco(msg: TwistStamped) -> np.ndarray:
    """TwistStamped -> (vx, vy, yaw rate); MessageError if it asks for a motion the G1's base has not
    (linear.z, angular.x, angular.y must be 0)."""
    t = msg.twist
    extra = (t.linear.z, t.angular.x, t.angular.y)
    if any(v != 0.0 for v in extra):
        raise MessageError(f"a G1 base command has linear.x, linear.y and angular.z only; got linear.z, angular.x, "
                           f"angular.y = {extra}")
    return np.array([t.linear.x, t.linear.y, t.angular.z], dtype=np.float64)


def grip_to_joint_state(closure: Sequence[float], stamp_ns: int,
                        names: Sequence[str] = contract.GRIP_NAMES) -> JointState:
    """Hand closures (0 open .. 1 closed), one per name -> JointState with position = closure."""
    return joint_state(stamp_ns, np.asarray(closure, dtype=np.float64), names=names)


# --- clips (T frames stacked vertically, rgb8) -------------------------------------------

def clip_to_image(frames: np.ndarray, stamp_ns: int, frame_id: str = "head_camera") -> Image:
    """(T, H, W, 3) uint8, oldest first -> one rgb8 Image of height T*H."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise MessageError(f"clip must be (T, H, W, 3) uint8, got {frames.shape}")
    t, h, w, _ = frames.shape
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = t * h, w
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = w * 3
    msg.data = frames.tobytes()
    return msg


def image_to_clip(msg: Image, frames: int) -> np.ndarray:
    """rgb8 Image of T stacked frames -> (T, H, W, 3) uint8 (pixels by ``runtime.image.image_to_rgb``)."""
    from neon_ros.runtime.image import FrameError, image_to_rgb  # OpenCV: only nodes that read clips load it

    if msg.encoding != "rgb8":
        raise MessageError(f"clip encoding must be rgb8, got {msg.encoding!r}")
    if frames < 1 or msg.height % frames:
        raise MessageError(f"clip height {msg.height} is not a multiple of {frames} frames")
    try:
        rgb = image_to_rgb(msg)
    except FrameError as exc:
        raise MessageError(f"clip data size {len(msg.data)} does not match {msg.height}x{msg.width} rgb8 "
                           f"({exc})") from None
    return rgb.reshape(frames, msg.height // frames, msg.width, 3)


# --- pooled features (32FC1, height 1) -------------------------------------------------------

def features_to_image(vec: np.ndarray, stamp_ns: int, backbone_id: str) -> Image:
    vec = np.ascontiguousarray(np.asarray(vec, dtype="<f4").reshape(-1))
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = backbone_id
    msg.height, msg.width = 1, int(vec.size)
    msg.encoding = contract.FEATURE_ENCODING
    msg.is_bigendian = 0
    msg.step = 4 * int(vec.size)
    msg.data = vec.tobytes()
    return msg


def image_to_features(msg: Image) -> np.ndarray:
    """32FC1 1xD Image -> (D,) float32; MessageError on any other layout."""
    if msg.encoding != contract.FEATURE_ENCODING or msg.height != 1:
        raise MessageError(f"features must be 32FC1 with height 1, got {msg.encoding} h={msg.height}")
    if len(msg.data) != 4 * msg.width or msg.width == 0:
        raise MessageError(f"features data is {len(msg.data)} bytes for width {msg.width}")
    dtype = ">f4" if msg.is_bigendian else "<f4"
    return np.frombuffer(bytes(msg.data), dtype=dtype).astype(np.float32)


# --- diagnostics -------------------------------------------------------------------------------

LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
          "error": DiagnosticStatus.ERROR, "stale": DiagnosticStatus.STALE}


def diagnostic_array(stamp_ns: int, statuses: Sequence[DiagnosticStatus]) -> DiagnosticArray:
    arr = DiagnosticArray()
    arr.header.stamp = ns_to_stamp(stamp_ns)
    arr.status = list(statuses)
    return arr


def diagnostic_status(name: str, level: str, message: str, values: dict | None = None,
                      hardware_id: str = "g1") -> DiagnosticStatus:
    st = DiagnosticStatus()
    st.level = LEVELS[level]
    st.name = name
    st.message = message
    st.hardware_id = hardware_id
    st.values = [KeyValue(key=str(k), value=str(v)) for k, v in (values or {}).items()]
    return st


def diagnostic_values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
