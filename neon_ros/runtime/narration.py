"""When the head speaks, and what: phase detection from its prediction, plus text.

The phase is read from the predicted chunk: walking (locomotion command), grasping /
releasing (gripper closure rising / falling), reaching (a hand moves), idle. A new instruction is announced
(as 'thinking' while the robot is idle).
A new phase must persist ``min_ticks`` control steps before it counts (no chatter),
and narration is rate-limited; an instruction change is narrated at once.
The sentence comes from ``neon_ros.voice.narration.compose`` when the voice package
provides it, else from a short built-in template.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PHASES = ("idle", "reaching", "grasping", "releasing", "walking")

_FALLBACK = {
    "idle": "Ready when you are.",
    "thinking": "Thinking about it.",
    "reaching": "Reaching now.",
    "grasping": "Closing my hand.",
    "releasing": "Letting go.",
    "walking": "Walking.",
}


@dataclass(frozen=True)
class PhaseConfig:
    """Thresholds of the phase detector.

    reach_speed: m/s (or rad/s of joints when no hand path is given) above which a hand is moving.
    grip_change: change of predicted gripper closure (0..1) over the chunk that counts.
    walk_speed: m/s or rad/s of the locomotion command above which the robot walks.
    min_ticks: control steps a new phase must persist before it is reported.
    min_interval: s between two narrations of phase changes.
    """

    reach_speed: float = 0.05
    grip_change: float = 0.2
    walk_speed: float = 0.1
    min_ticks: int = 4
    min_interval: float = 2.0

    def __post_init__(self) -> None:
        if min(self.reach_speed, self.grip_change, self.walk_speed) <= 0:
            raise ValueError("phase thresholds must be > 0")
        if self.min_ticks < 1 or self.min_interval < 0:
            raise ValueError("min_ticks must be >= 1 and min_interval >= 0")


def classify(hand_paths: np.ndarray | None, grip: np.ndarray | None, loco: np.ndarray | None,
             dt: float, cfg: PhaseConfig) -> str:
    """Phase of one predicted chunk.

    hand_paths: (K, 2, 3) predicted hand positions (m), or None.
    grip: (K, 2) predicted gripper closure 0..1, or None.
    loco: (K, 3) predicted velocity command (vx, vy, wz), or None.
    """
    if loco is not None and np.size(loco) and float(np.max(np.abs(loco))) > cfg.walk_speed:
        return "walking"
    if grip is not None and np.size(grip) >= 2:
        change = np.asarray(grip)[-1] - np.asarray(grip)[0]
        if float(np.max(change)) > cfg.grip_change:
            return "grasping"
        if float(np.min(change)) < -cfg.grip_change:
            return "releasing"
    if hand_paths is not None and len(hand_paths) >= 2:
        speed = np.linalg.norm(np.diff(np.asarray(hand_paths), axis=0), axis=-1) / dt
        if float(np.max(speed)) > cfg.reach_speed:
            return "reaching"
    return "idle"


def _load_compose() -> Callable[..., str] | None:
    try:
        module = importlib.import_module("neon_ros.voice.narration")
    except ImportError:
        return None
    fn = getattr(module, "compose", None)
    return fn if callable(fn) else None


def fallback_text(instruction: str, phase: str) -> str:
    text = _FALLBACK.get(phase, "Working on it.")
    if instruction:
        return f"Okay: {instruction.strip().rstrip('.')}. {text}"
    return text


class Narrator:
    """Feeds on (instruction, phase) each control step; returns a sentence when it should speak."""

    def __init__(self, cfg: PhaseConfig | None = None, compose: Callable[..., str] | None = None):
        self.cfg = cfg or PhaseConfig()
        self._compose = compose if compose is not None else _load_compose()
        self.phase = ""  # the reported phase
        self.instruction: str | None = None
        self._candidate = ""
        self._count = 0
        self._last_spoken_s = -1e9
        self.spoken = 0

    @property
    def uses_voice_module(self) -> bool:
        return self._compose is not None

    def text(self, instruction: str, phase: str) -> str:
        if self._compose is not None:
            try:
                out = str(self._compose(instruction, phase)).strip()
                if out:
                    return out
            except Exception:  # the voice module's trouble must not stop the control loop
                pass
        return fallback_text(instruction, phase)

    def update(self, instruction: str, phase: str, now_s: float) -> str | None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(PHASES)}")
        speak = False
        just_changed = instruction != self.instruction
        if just_changed:
            self.instruction = instruction
            self.phase, self._candidate, self._count = phase, phase, self.cfg.min_ticks
            speak = bool(instruction.strip())  # a cleared instruction is not announced
        else:
            if phase == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count = phase, 1
            if (self._candidate != self.phase and self._count >= self.cfg.min_ticks
                    and now_s - self._last_spoken_s >= self.cfg.min_interval):
                self.phase = self._candidate
                speak = True
        if not speak:
            return None
        self._last_spoken_s = now_s
        self.spoken += 1
        announce = "thinking" if (just_changed and self.phase == "idle") else self.phase
        return self.text(instruction, announce)
