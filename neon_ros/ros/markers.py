"""Predicted hand paths as RViz markers (visualization_msgs/MarkerArray, no rclpy)."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from neon_ros.ros import msgs

NAMESPACE = "neon_hand_paths"
COLORS = {"left": (0.2, 0.6, 1.0), "right": (1.0, 0.4, 0.2)}


def hand_path_markers(paths: np.ndarray, stamp_ns: int, frame_id: str = "pelvis",
                      lifetime_s: float = 0.5, width: float = 0.01) -> MarkerArray:
    """(K, 2, 3) hand positions (left, right; metres, in ``frame_id``) -> a MarkerArray.

    Per hand: a LINE_STRIP through the K predicted positions and a SPHERE_LIST whose
    points fade from opaque (now) to transparent (end of the chunk). Non-finite paths
    raise ValueError: nothing non-finite is drawn.
    """
    paths = np.asarray(paths, dtype=np.float64)
    if paths.ndim != 3 or paths.shape[1:] != (2, 3) or paths.shape[0] < 1:
        raise ValueError(f"hand paths must be (K, 2, 3), got {paths.shape}")
    if not np.all(np.isfinite(paths)):
        raise ValueError("hand paths contain non-finite values")
    out = MarkerArray()
    k = paths.shape[0]
    for h, side in enumerate(("left", "right")):
        r, g, b = COLORS[side]
        pts = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in paths[:, h]]
        for mid, mtype in ((2 * h, Marker.LINE_STRIP), (2 * h + 1, Marker.SPHERE_LIST)):
            m = Marker()
            m.header.stamp = msgs.ns_to_stamp(stamp_ns)
            m.header.frame_id = frame_id
            m.ns = f"{NAMESPACE}/{side}"
            m.id = mid
            m.type = mtype
            m.action = Marker.ADD
            m.pose.orientation.w = 1.0
            m.lifetime = msgs.s_to_duration(lifetime_s)
            m.points = pts
            if mtype == Marker.LINE_STRIP:
                m.scale.x = width
                m.color = ColorRGBA(r=r, g=g, b=b, a=0.9)
            else:
                m.scale.x = m.scale.y = m.scale.z = 2.5 * width
                m.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
                m.colors = [ColorRGBA(r=r, g=g, b=b, a=float(1.0 - 0.8 * i / max(k - 1, 1))) for i in range(k)]
            out.markers.append(m)
    return out
