"""Which clip hears which utterance: the alignment rule between /neon/utterance_audio and /neon/clip.

speech_in publishes the audio of an accepted utterance on /neon/utterance_audio and, right
after, its transcript on /neon/instruction. A backbone that hears (Qwen2.5-Omni, TRIBE v2)
takes the audio together with the clip it belongs to. The rule, on ROS time in ns:

- An utterance spans ``[end - duration, end]``: ``end`` is the capture time the message
  carries (``audio_msg.audio_to_msg(audio, end_ns=...)``), or, when it carries none, the
  time it was received (the latest it can have ended; a latched message delivered to a
  backbone that starts late therefore counts as just spoken).
- A clip spans ``[stamp - clip_seconds, stamp]`` (stamp = its newest frame's capture time).
- A clip hears the utterance when the two overlap or the clip starts at most ``hold_s``
  after the utterance ended: ``clip_end >= start`` and ``clip_start <= end + hold``.
  A clip that ends before the utterance started gets no audio and the utterance is kept;
  the first clip that starts later than ``end + hold`` drops it for good.
- An instruction ties to its utterance: the first /neon/instruction message received
  within ``PAIR_S`` of the audio (before or after it: the two topics are not ordered
  against each other) is its transcript. Any other instruction message supersedes the
  utterance, which is dropped (the text the backbone reads and the audio it hears never
  disagree).
- Only the newest utterance is kept: a new one replaces the one held.

Plain Python (no rclpy): ``match_clip`` is the rule for one pair, ``UtteranceTracker``
holds the newest utterance and applies it clip after clip.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from neon_ros.backbones.base import AUDIO_SAMPLE_RATE

NS = 1_000_000_000
PAIR_S = 1.0  # s between an utterance's audio and its transcript arriving (either order)


class Match(enum.Enum):
    BEFORE = "before"  # the clip ended before the utterance started: no audio, keep it
    HEARS = "hears"  # the clip goes with the utterance
    EXPIRED = "expired"  # the clip started after end + hold: drop the utterance


def clip_span(stamp_ns: int, clip_seconds: float) -> tuple[int, int]:
    """(start_ns, end_ns) of a clip whose newest frame was captured at ``stamp_ns``."""
    return int(stamp_ns - round(clip_seconds * NS)), int(stamp_ns)


def utterance_span(num_samples: int, end_ns: int) -> tuple[int, int]:
    """(start_ns, end_ns) of ``num_samples`` of 16 kHz audio that ended at ``end_ns``."""
    return int(end_ns - round(num_samples * NS / AUDIO_SAMPLE_RATE)), int(end_ns)


def match_clip(utterance: tuple[int, int], clip: tuple[int, int], hold_s: float) -> Match:
    """The rule for one utterance span and one clip span (both (start_ns, end_ns))."""
    (u0, u1), (c0, c1) = utterance, clip
    if c1 < u0:
        return Match.BEFORE
    if c0 > u1 + round(hold_s * NS):
        return Match.EXPIRED
    return Match.HEARS


@dataclasses.dataclass
class HeldUtterance:
    audio: np.ndarray  # (N,) float32, 16 kHz mono
    span: tuple[int, int]  # (start_ns, end_ns)
    received_ns: int
    paired: bool  # its transcript (an /neon/instruction message) has arrived


class UtteranceTracker:
    """The newest utterance and the rule above; not thread-safe (the caller holds its lock)."""

    def __init__(self, hold_s: float) -> None:
        if not hold_s >= 0.0:
            raise ValueError(f"hold_s must be >= 0, got {hold_s}")
        self.hold_s = float(hold_s)
        self.held: HeldUtterance | None = None
        self.last_instruction_ns: int | None = None
        self.received = 0  # utterances taken in
        self.expired = 0  # utterances dropped because clips moved past end + hold
        self.superseded = 0  # utterances dropped by a newer utterance or an unrelated instruction

    def on_audio(self, audio: np.ndarray, received_ns: int, end_ns: int | None = None) -> None:
        """A new utterance (replaces the held one); ``end_ns`` None = ended when received."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if self.held is not None:
            self.superseded += 1
        last = self.last_instruction_ns
        self.held = HeldUtterance(audio, utterance_span(audio.size, received_ns if end_ns is None else end_ns),
                                  received_ns, paired=last is not None and abs(received_ns - last) <= PAIR_S * NS)
        self.received += 1

    def on_instruction(self, received_ns: int) -> None:
        """An /neon/instruction message: the held utterance's transcript, or a reason to drop it."""
        self.last_instruction_ns = received_ns
        h = self.held
        if h is None:
            return
        if not h.paired and abs(received_ns - h.received_ns) <= PAIR_S * NS:
            h.paired = True
        else:
            self.held = None
            self.superseded += 1

    def take(self, clip: tuple[int, int]) -> np.ndarray | None:
        """The audio the clip spanning ``clip`` (start_ns, end_ns) hears, or None."""
        if self.held is None:
            return None
        match = match_clip(self.held.span, clip, self.hold_s)
        if match is Match.EXPIRED:
            self.held = None
            self.expired += 1
            return None
        if match is Match.BEFORE:
            return None
        return self.held.audio
