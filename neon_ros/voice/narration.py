"""Narration text: what Neon says it is doing ("I see the red cup. Reaching for it now.").

Two sources, both plain Python (no rclpy, no model import here):

- ``compose(instruction, phase, seen)``: a template per known robot phase, filled with the
  object named in the instruction (and what the camera sees). Short, present tense, first
  person; any phase string is accepted (unknown phases get a generic sentence).
- ``narrate(backbone, frames, instruction, phase, seen)``: where the backbone can generate
  text (``Backbone.can_generate`` / ``generate_text(frames, prompt)`` in neon_ros.backbones,
  e.g. Qwen2.5-Omni or Cosmos-Reason2), ask it for one sentence; anything unusable (no
  generation, an error, empty or overlong output) falls back to ``compose``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
_MAX_WORDS = 24


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


# --- backbone-generated narration ------------------------------------------------------------

def narration_prompt(instruction: str, phase: str) -> str:
    """The text prompt a generating backbone gets with the current clip."""
    task = instruction.strip() or "no instruction yet"
    return (
        "You are Neon, a humanoid robot. Your operator said: \"" + task + "\". "
        f"You are currently {normalize_phase(phase).replace('_', ' ') or 'idle'}. "
        "In one short sentence, in the first person and present tense, say what you see "
        "and what you are doing. Answer with that sentence only."
    )


def clean_generated(text: str, max_words: int = _MAX_WORDS) -> str | None:
    """First sentence(s) of generated text if usable, else None (empty, no letters, too long)."""
    if not isinstance(text, str):
        return None
    text = re.sub(r"<[^>]{1,40}>", " ", text)  # stray special tokens
    text = " ".join(text.replace('"', " ").split())
    if not re.search(r"[A-Za-z]", text):
        return None
    sentences = re.findall(r"[^.!?]+[.!?]?", text)
    out = ""
    for s in sentences[:2]:
        candidate = (out + " " + s.strip()).strip()
        if len(candidate.split()) > max_words:
            break
        out = candidate
    if not out:
        return None
    return _sentence(out)


def backbone_can_generate(backbone) -> bool:
    """True when the backbone object offers text generation (attribute or method)."""
    flag = getattr(backbone, "can_generate", False)
    try:
        flag = flag() if callable(flag) else flag
    except Exception:  # a broken capability probe means "cannot"
        return False
    return bool(flag) and callable(getattr(backbone, "generate_text", None))


def narrate(backbone, frames, instruction: str, phase: str, seen: list[str] | None = None) -> str:
    """Ask a generating backbone for one sentence about ``frames``; fall back to ``compose``."""
    if backbone is not None and frames is not None and backbone_can_generate(backbone):
        try:
            text = clean_generated(backbone.generate_text(frames, narration_prompt(instruction, phase)))
        except Exception:  # narration must never take the control loop down
            text = None
        if text:
            return text
    return compose(instruction, phase, seen)
