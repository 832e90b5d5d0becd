"""Plain logic of `neon-ros teleop` (no ROS): joint assignments, keyframe scripts, keyboard state.

An assignment is ``NAME=rad`` (absolute) or ``NAME+=rad`` / ``NAME-=rad`` (relative to
the start pose); a script is one keyframe per line, ``time_s NAME=VALUE ...``, linearly
interpolated and clamped to the G1 joint limits. The command line (neon_ros.tools.teleop)
parses arguments; the rclpy side (neon_ros.ros.teleop) publishes the targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from neon_ros import g1
from neon_ros.errors import NeonError

_ASSIGN = re.compile(r"^([a-z0-9_]+)(\+=|-=|=)([-+0-9.eE]+)$")


class TeleopError(NeonError, ValueError):
    """Bad teleop input (unknown joint, malformed script line); the text says where."""


@dataclass(frozen=True)
class Assignment:
    """One ``NAME=VALUE`` (absolute) or ``NAME+=D`` / ``NAME-=D`` (relative to the start pose)."""

    joint: str
    value: float
    relative: bool

    def resolve(self, start: np.ndarray) -> float:
        return float(start[g1.JOINT_INDEX[self.joint]] + self.value) if self.relative else self.value


def parse_assignment(text: str) -> Assignment:
    m = _ASSIGN.match(text.strip())
    if not m:
        raise TeleopError(f"{text!r} is not NAME=VALUE, NAME+=DELTA or NAME-=DELTA (radians)")
    name, op, value = m.group(1), m.group(2), float(m.group(3))
    if name not in g1.JOINT_INDEX:
        raise TeleopError(f"unknown G1 joint {name!r}; valid names: {', '.join(g1.JOINT_NAMES)}")
    if not np.isfinite(value):
        raise TeleopError(f"{text!r}: value must be finite")
    return Assignment(name, -value if op == "-=" else value, op != "=")


@dataclass
class TeleopScript:
    """Keyframes (time s, assignments); ``plan(start)`` turns them into absolute targets."""

    keyframes: list[tuple[float, list[Assignment]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        times = [t for t, _ in self.keyframes]
        if not times:
            raise TeleopError("a teleop script needs at least one keyframe")
        if times[0] < 0 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise TeleopError(f"keyframe times must be >= 0 and increasing, got {times}")

    @classmethod
    def parse(cls, text: str, source: str = "<script>") -> TeleopScript:
        frames = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            head, *rest = line.split()
            try:
                t = float(head)
                frames.append((t, [parse_assignment(a) for a in rest]))
            except (ValueError, TeleopError) as exc:
                raise TeleopError(f"{source}:{lineno}: {exc}") from None
        return cls(frames)

    @classmethod
    def hold(cls, assignments: list[Assignment], duration: float) -> TeleopScript:
        if duration <= 0:
            raise TeleopError("--duration must be > 0")
        return cls([(0.0, assignments), (float(duration), assignments)])

    @property
    def duration(self) -> float:
        return self.keyframes[-1][0]

    def plan(self, start: np.ndarray) -> TeleopPlan:
        """Absolute targets per keyframe for the joints the script names, from the start pose."""
        start = np.asarray(start, dtype=np.float64)
        joints = sorted({a.joint for _, assigns in self.keyframes for a in assigns}, key=g1.JOINT_INDEX.get)
        if not joints:
            raise TeleopError("the script names no joint")
        idx = [g1.JOINT_INDEX[j] for j in joints]
        current = start[idx].copy()
        times, rows = [], []
        for t, assigns in self.keyframes:
            for a in assigns:
                current[joints.index(a.joint)] = a.resolve(start)
            times.append(t)
            rows.append(current.copy())
        if times[0] > 0:  # glide from the measured pose to the first keyframe
            times.insert(0, 0.0)
            rows.insert(0, start[idx].copy())
        return TeleopPlan(joints, np.array(times), np.array(rows))


@dataclass
class TeleopPlan:
    """Absolute joint targets over time: ``at(t)`` interpolates, clamped to the G1 limits."""

    joints: list[str]
    times: np.ndarray
    targets: np.ndarray  # (K, len(joints))

    def at(self, t: float) -> np.ndarray:
        idx = [g1.JOINT_INDEX[j] for j in self.joints]
        out = np.array([np.interp(t, self.times, self.targets[:, k]) for k in range(len(self.joints))])
        return np.clip(out, g1.LOWER_LIMITS[idx], g1.UPPER_LIMITS[idx])

    @property
    def duration(self) -> float:
        return float(self.times[-1])


class KeyboardState:
    """What the keyboard mode holds: selected joint, step, and per-joint offsets from the start pose.

    ``release`` lists the joints to hand back to the policy (space, quit, end of input); the
    caller sends the release and clears it.
    """

    def __init__(self, start: np.ndarray, step: float = 0.05):
        self.start = np.asarray(start, dtype=np.float64).copy()
        self.selected = g1.ARM_INDICES["right"][0]
        self.step = step
        self.targets: dict[int, float] = {}
        self.release: list[str] = []
        self.estop = False
        self.quit = False

    def key(self, ch: str) -> str:
        """Apply one key ('' = end of input: quit); return a one-line description of the new state."""
        if ch in ("", "q", "\x03", "\x04"):
            self.quit = True
            self._release()
        elif ch == "n":
            self.selected = (self.selected + 1) % g1.NUM_JOINTS
        elif ch == "p":
            self.selected = (self.selected - 1) % g1.NUM_JOINTS
        elif ch in ("+", "=", "-"):
            sign = -1.0 if ch == "-" else 1.0
            j = self.selected
            value = self.targets.get(j, self.start[j]) + sign * self.step
            self.targets[j] = float(np.clip(value, g1.LOWER_LIMITS[j], g1.UPPER_LIMITS[j]))
        elif ch == "]":
            self.step = min(self.step * 2, 0.5)
        elif ch == "[":
            self.step = max(self.step / 2, 0.005)
        elif ch == " ":
            self._release()
        elif ch == "e":
            self.estop = True
        name = g1.JOINT_NAMES[self.selected]
        held = self.targets.get(self.selected)
        return (f"{name} (step {self.step:.3f} rad) target {'-' if held is None else f'{held:+.3f}'}"
                f" | holding {len(self.targets)} joint(s)")

    def _release(self) -> None:
        self.release = [g1.JOINT_NAMES[i] for i in sorted(self.targets)]
        self.targets.clear()

    def command(self) -> tuple[list[str], np.ndarray] | None:
        if not self.targets:
            return None
        idx = sorted(self.targets)
        return [g1.JOINT_NAMES[i] for i in idx], np.array([self.targets[i] for i in idx])
