"""Play a trajectory on its own time base, and switch to a new one without a jump.

Point k of a trajectory is meant for ``stamp + time_from_start[k]`` (DESIGN.md section 3).
``target(now)`` interpolates linearly between the two points around ``now``; before the
first point it returns the first point (or, given a ``start`` pose, interpolates from it to
the first point over ``time_from_start[0]``, like ros2_control's joint_trajectory_controller),
after the last it holds the last (what is past is skipped, never replayed). When a new trajectory arrives, the target cross-fades from
the old trajectory's target to the new one's over ``blend_time`` seconds, so a new chunk
that disagrees with the old never makes the target jump (the rate limiter comes after).
"""

from __future__ import annotations

import numpy as np

from neon_ros.bridge.safety import NS, Trajectory


def sample(traj: Trajectory, now_ns: int, start: np.ndarray | None = None) -> np.ndarray:
    """The trajectory's (29,) target at ``now_ns`` (NaN where the trajectory has no joint).

    start: the pose at ``stamp`` (the current target when the trajectory arrived); the
    trajectory then reaches its first point at ``time_from_start[0]``, not at once.
    """
    t = (now_ns - traj.stamp_ns) / NS
    times, pos = traj.times, traj.positions
    if t <= times[0]:
        if start is None or times[0] <= 0:
            return pos[0].copy()
        a = max(t, 0.0) / times[0]
        return np.where(np.isfinite(start), (1.0 - a) * start + a * pos[0], pos[0])
    if t >= times[-1]:
        return pos[-1].copy()
    k = int(np.searchsorted(times, t, side="right")) - 1
    a = (t - times[k]) / (times[k + 1] - times[k])
    return (1.0 - a) * pos[k] + a * pos[k + 1]


class ChunkSchedule:
    """The current trajectory plus a short cross-fade from the previous one."""

    def __init__(self, blend_time: float = 0.1):
        if not 0.0 <= blend_time <= 2.0:
            raise ValueError(f"blend_time must be in [0, 2] s, got {blend_time}")
        self.blend_ns = int(blend_time * NS)
        self.current: Trajectory | None = None
        self._previous: Trajectory | None = None
        self._switch_ns = 0
        self._switch_from: np.ndarray | None = None

    def push(self, traj: Trajectory, now_ns: int) -> None:
        """Make ``traj`` current; the target fades from the old one's over blend_time."""
        if self.current is not None and self.blend_ns > 0:
            self._switch_from = self.target(now_ns)
            self._switch_ns = now_ns
        else:
            self._switch_from = None
        self.current = traj

    def clear(self) -> None:
        self.current = None
        self._switch_from = None

    def age_s(self, now_ns: int) -> float:
        """Seconds since the current trajectory arrived (inf if none)."""
        return np.inf if self.current is None else (now_ns - self.current.received_ns) / NS

    def target(self, now_ns: int) -> np.ndarray | None:
        if self.current is None:
            return None
        new = sample(self.current, now_ns)
        if self._switch_from is None:
            return new
        a = (now_ns - self._switch_ns) / self.blend_ns if self.blend_ns else 1.0
        if a >= 1.0:
            self._switch_from = None
            return new
        a = max(a, 0.0)
        old = self._switch_from  # the old target frozen at the switch: a fade, never a jump
        both = np.isfinite(old) & np.isfinite(new)
        return np.where(both, (1.0 - a) * old + a * new, new)
