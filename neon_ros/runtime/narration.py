"""What the robot says and when: the one narration table, phase detection, the narrator.

``PHASE_TEMPLATES`` holds the sentence per phase; ``compose`` fills it with the object the
instruction names and what the camera sees ("I see the red cup. Reaching for it now.").
The action head decides what to say and when (``classify`` + ``Narrator``); speech_out only
voices the text it receives on /neon/narration.

The phase is read from the predicted chunk: walking (locomotion command), grasping /
releasing (gripper closure rising / falling), reaching (a hand moves), idle. A new
instruction is announced at once (as 'thinking' while the robot is idle). A new phase must
persist ``min_ticks`` control steps before it counts (no chatter), and phase narration is
rate-limited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PHASES = ("idle", "reaching", "grasping", "releasing", "walking")


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


# Phase -> sentence template. {obj}: the object ("it" when the first sentence already named
# it), {hand}: "my left hand" / "my right hand" / "my hand", {task}: the instruction in first person.
PHASE_TEMPLATES: dict[str, str] = {
    "idle": "Ready when you are.",
    "listening": "I am listening.",
    "thinking": "Thinking about how to {task}.",
    "reaching": "Reaching for {obj} now.",
    "grasping": "Grasping {obj}.",
    "holding": "Holding {obj}.",
    "lifting": "Lifting {obj}.",
    "placing": "Putting {obj} down.",
    "releasing": "Letting go of {obj}.",
    "waving": "Waving {hand} now.",
    "pointing": "Pointing at {obj} now.",
    "moving": "Moving now.",
    "walking": "Walking now.",
    "turning": "Turning now.",
    "stopped": "Stopping here.",
    "damped": "Motors are relaxed for safety.",
    "estop": "Emergency stop. I am holding still.",
    "done": "Done.",
}
# Phase aliases (other spellings engineers may publish) -> a key of PHASE_TEMPLATES.
PHASE_ALIASES: dict[str, str] = {
    "reach": "reaching", "grasp": "grasping", "grab": "grasping", "hold": "holding",
    "lift": "lifting", "place": "placing", "put_down": "placing", "release": "releasing",
    "wave": "waving", "point": "pointing", "move": "moving", "walk": "walking", "turn": "turning",
    "stop": "stopped", "stopping": "stopped", "damp": "damped", "damping": "damped",
    "e_stop": "estop", "emergency_stop": "estop", "finished": "done", "complete": "done",
    "wait": "idle", "waiting": "idle", "listen": "listening", "think": "thinking",
}
# Phases whose template mentions the object (so a "I see X." sentence lets it become "it").
_OBJECT_PHASES = {k for k, v in PHASE_TEMPLATES.items() if "{obj}" in v}

_DETERMINERS = ("the", "a", "an", "my", "your", "this", "that", "these", "those", "some")
_STOP_WORDS = ("on", "in", "into", "onto", "to", "from", "with", "at", "and", "then", "please",
               "near", "next", "under", "over", "behind", "for", "of", "by")
_PERSON = {"your": "my", "you": "I", "yours": "mine", "yourself": "myself", "me": "you", "my": "your"}


def normalize_phase(phase: str) -> str:
    """'Reaching' / 'put-down' / ' WAVE ' -> the table key ('reaching', 'placing', 'waving')."""
    key = re.sub(r"[^a-z0-9]+", "_", str(phase).strip().lower()).strip("_")
    return PHASE_ALIASES.get(key, key)


def to_first_person(text: str) -> str:
    """Swap the operator's viewpoint for the robot's: 'wave your hand' -> 'wave my hand'."""
    def swap(m: re.Match) -> str:
        word = m.group(0)
        out = _PERSON.get(word.lower(), word)
        return out if out == "I" or not word[0].isupper() else out.capitalize()
    return re.sub(r"[A-Za-z]+", swap, text)


def object_phrase(instruction: str) -> str | None:
    """The object a command is about: 'pick up the red cup' -> 'the red cup'.

    The first phrase that starts with a determiner and runs up to a preposition or the end
    (the direct object: 'put the cup on the table' -> 'the cup');
    None when the command names no object ('wave', 'stop').
    """
    words = re.findall(r"[A-Za-z0-9'-]+", instruction.lower())
    best: list[str] | None = None
    i = 0
    while i < len(words):
        if words[i] in _DETERMINERS:
            j = i + 1
            while j < len(words) and words[j] not in _STOP_WORDS and words[j] not in _DETERMINERS:
                j += 1
            if j > i + 1:
                best = words[i:j]
                break
            i = j
        else:
            i += 1
    if not best:
        return None
    return to_first_person(" ".join(best))


def _hand(instruction: str) -> str:
    low = instruction.lower()
    for side in ("left", "right"):
        if re.search(rf"\b{side}\b", low):
            return f"my {side} hand"
    if re.search(r"\bboth\b", low):
        return "both hands"
    return "my hand"


def _with_article(item: str) -> str:
    item = " ".join(str(item).split())
    first = item.split(" ", 1)[0].lower() if item else ""
    return item if first in _DETERMINERS else f"the {item}"


def _join(items: Sequence[str]) -> str:
    items = [_with_article(s) for s in items if str(s).strip()][:3]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _task(instruction: str) -> str:
    task = to_first_person(instruction.strip().rstrip(".!?"))
    return task[:1].lower() + task[1:] if task else "help"


def compose(instruction: str, phase: str, seen: list[str] | None = None) -> str:
    """One or two short first-person, present-tense sentences for the robot's phase.

    ``instruction``: the current command (may be empty); ``phase``: any string, known phases
    (PHASE_TEMPLATES, PHASE_ALIASES) get their own sentence; ``seen``: object names the robot
    sees (e.g. ``["red cup"]``), said first as "I see the red cup.".
    """
    instruction = " ".join(str(instruction or "").split())
    key = normalize_phase(phase)
    obj = object_phrase(instruction) if instruction else None
    seen_items = [s for s in (seen or []) if str(s).strip()]
    parts: list[str] = []
    obj_named = False
    if seen_items:
        parts.append(_sentence(f"I see {_join(seen_items)}"))
        named = {_with_article(s).lower() for s in seen_items} | {str(s).lower().strip() for s in seen_items}
        obj_named = obj is None or obj.lower() in named or any(
            obj.lower().endswith(" " + str(s).lower().strip()) for s in seen_items)
    if key in PHASE_TEMPLATES:
        template = PHASE_TEMPLATES[key]
        if key in _OBJECT_PHASES:
            target = "it" if obj_named or not (obj or seen_items) else (obj or _with_article(seen_items[0]))
            text = template.format(obj=target, hand=_hand(instruction), task=_task(instruction))
        elif key == "idle" and instruction:
            text = f"Ready to {_task(instruction)}."
        else:
            text = template.format(obj=obj or "it", hand=_hand(instruction), task=_task(instruction))
    elif key:
        words = key.replace("_", " ")
        text = f"{words} now." if words.split()[0].endswith("ing") else f"Now: {words}."
    elif instruction:
        text = f"Working on it: {_task(instruction)}."
    else:
        text = "Ready when you are."
    parts.append(_sentence(text))
    return " ".join(p for p in parts if p)


class Narrator:
    """Feeds on (instruction, phase) each control step; returns a sentence when it should speak."""

    def __init__(self, cfg: PhaseConfig | None = None):
        self.cfg = cfg or PhaseConfig()
        self.phase = ""  # the reported phase
        self.instruction: str | None = None
        self._candidate = ""
        self._count = 0
        self._last_spoken_s = -1e9
        self.spoken = 0

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
        return compose(instruction, announce)
