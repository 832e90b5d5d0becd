"""The command vocabulary: what the robot can be asked, as Whisper's context and as a guard.

Built once at start from the task registry's instructions (``neon_ros.data.sim_expert.TASKS``)
and a user file (``config/voice_vocabulary.yaml``: ``commands``, ``actions``, ``objects``,
``places``, ``words``). It gives

- ``prompt``: Whisper's initial prompt, the actions, things and places, then example commands
  as sentences ("Actions: pick up, put. Things: cup, bottle. Places: table, sink. Pick up the
  red cup. ...");
  the task registry's instructions come last, so the part Whisper keeps when it truncates a
  long prompt (it keeps the end) is what the robot was trained to do;
- ``rejection(text)``: why a transcript is not a command, or '' -- a phrase repeated in a loop
  (Whisper's hallucination pattern), no content words at all (Whisper's 'you' on noise), or
  most content words unknown (a whole-phrase mishearing such as 'But I can't be missing.'
  for 'put the cup in the sink').
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from neon_ros.config_files import config_file

DEFAULT_FILE = "voice_vocabulary.yaml"
SECTIONS = ("commands", "actions", "objects", "places", "words")

# Words that carry no command content: never counted as unknown (nor as known).
FUNCTION_WORDS = frozenset("""
a an the this that these those my your his her its our their me you i we he she they us him
to into onto in on at from of off out over under with without by for about above below behind
between beside around through up down and or but then so if now just please can could would
will shall should may might must do does did be is are was were been am have has had get got
not dont cant wont im ive id youre its theres here there some any all each every very too also
""".split())


def normalize(text: str) -> str:
    """Lower case, punctuation removed, single spaces: 'Pick up the red cup.' -> 'pick up the red cup'."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).replace("'", "").split())


def _singulars(word: str) -> tuple[str, ...]:
    """The singulars a plural may have: 'plates' -> plate (or plat), 'boxes' -> box (or boxe),
    'berries' -> berry. Each is tried: stripping 'es' alone turned 'plates' into 'plat'."""
    out = []
    if len(word) > 5 and word.endswith("ies"):
        out.append(word[:-3] + "y")
    if len(word) > 4 and word.endswith("es"):
        out.append(word[:-2])
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        out.append(word[:-1])
    return tuple(out)


@dataclass(frozen=True)
class Vocabulary:
    """Command phrases and known words (all normalised: lower case, no punctuation)."""

    commands: tuple[str, ...]
    actions: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    words: frozenset[str] = frozenset()
    source: str = ""

    @classmethod
    def build(cls, tasks: Iterable[str], entries: dict | None = None, source: str = "") -> Vocabulary:
        """From task instructions and the sections of a vocabulary file (see module doc)."""
        entries = entries or {}
        unknown = set(entries) - set(SECTIONS)
        if unknown:
            raise ValueError(f"vocabulary {source or '(dict)'}: unknown sections {sorted(unknown)}; "
                             f"expected {list(SECTIONS)}")
        lists: dict[str, list[str]] = {}
        for key in SECTIONS:
            value = entries.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
                raise ValueError(f"vocabulary {source or '(dict)'}: {key!r} must be a list of strings")
            lists[key] = [n for n in (normalize(str(v)) for v in value) if n]
        task_commands = [n for n in (normalize(t) for t in tasks) if n]
        # user commands first, the task registry last (see module doc), each once
        commands = tuple(dict.fromkeys(c for c in lists["commands"] + task_commands))
        words = {w for key in SECTIONS[1:] for phrase in lists[key] for w in phrase.split()}
        words |= {w for phrase in commands for w in phrase.split()}
        return cls(commands, *(tuple(dict.fromkeys(lists[key])) for key in ("actions", "objects", "places")),
                   frozenset(words), source)

    @property
    def prompt(self) -> str:
        """Whisper's initial prompt (see module doc)."""
        parts = []
        if self.actions:
            parts.append(f"Actions: {', '.join(self.actions)}.")
        if self.objects:
            parts.append(f"Things: {', '.join(self.objects)}.")
        if self.places:
            parts.append(f"Places: {', '.join(self.places)}.")
        parts += [f"{c[0].upper()}{c[1:]}." for c in self.commands]
        return " ".join(parts)

    @property
    def content_words(self) -> frozenset[str]:
        """The known words that carry command content (not FUNCTION_WORDS)."""
        return self.words - FUNCTION_WORDS

    def known(self, word: str) -> bool:
        return word in self.words or any(w in self.words for w in _singulars(word))

    def unknown_words(self, text: str) -> tuple[list[str], list[str]]:
        """(content words of ``text``, those of them the vocabulary does not know)."""
        content = [w for w in normalize(text).split() if w not in FUNCTION_WORDS]
        return content, [w for w in content if not self.known(w)]

    def ends_on_content(self, text: str) -> bool:
        """Whether the last word of ``text`` carries content (a command is not cut off at 'the')."""
        words = normalize(text).split()
        return bool(words) and words[-1] not in FUNCTION_WORDS

    def rejection(self, text: str, max_unknown: float) -> str:
        """Why ``text`` is not taken as a command ('' = it is): a repeated phrase, or more
        than ``max_unknown`` (a fraction) of its content words unknown."""
        loop = repeated_phrase(text)
        if loop:
            return f"repeated phrase {loop!r}"
        content, unknown = self.unknown_words(text)
        if not content:
            return "no command words (only function words such as 'you', 'the')"
        if len(unknown) > max_unknown * len(content):
            return (f"out of vocabulary: {len(unknown)} of {len(content)} content words unknown "
                    f"({', '.join(unknown)})")
        return ""


def repeated_phrase(text: str) -> str:
    """A phrase said over and over ('' if none): n words repeated back to back three times or
    more covering at least 4 words ('stop stop stop' is fine, four times is a loop), or a
    phrase of 3 or more words said twice in a row. Whisper loops like this on noise."""
    words = normalize(text).split()
    for n in range(1, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            gram = words[i:i + n]
            reps = 1
            while words[i + reps * n:i + (reps + 1) * n] == gram:
                reps += 1
            if (reps >= 3 and n * reps >= 4) or (n >= 3 and reps >= 2):
                return " ".join(gram)
    return ""


def vocabulary_file(name: str) -> Path:
    """A vocabulary file: ``name`` as a path, else under config/ (``config_files.config_file``:
    source tree, ROS 2 install, sys.prefix/share; FileNotFoundError naming every place looked at)."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    if p.is_absolute():
        raise FileNotFoundError(f"vocabulary file {name!r} not found")
    return config_file(name)


def load_vocabulary(name: str = DEFAULT_FILE, tasks: Iterable[str] | None = None) -> Vocabulary:
    """The robot's vocabulary: ``tasks`` (default: the task registry's instructions) plus the
    file ``name`` ('' = none)."""
    if tasks is None:
        from neon_ros.data.sim_expert import TASKS

        tasks = TASKS.values()
    if not name:
        return Vocabulary.build(tasks, source="task registry")
    path = vocabulary_file(name)
    try:
        entries = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"vocabulary file {path} is not valid YAML: {exc}") from exc
    if not isinstance(entries, dict):
        raise ValueError(f"vocabulary file {path} must be a mapping of {list(SECTIONS)}")
    return Vocabulary.build(tasks, entries, source=os.fspath(path))
