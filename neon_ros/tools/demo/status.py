"""The demo's live terminal status (plain text from a DemoRecord; no rclpy).

On a terminal the block redraws in place (ANSI cursor-up); with --headless or a pipe it
prints one compact line per update instead.
"""

from __future__ import annotations

import numpy as np

from neon_ros import contract
from neon_ros.runtime.timing import percentiles
from neon_ros.tools.demo.record import DemoRecord

RATE_TOPICS = (
    ("camera", contract.TOPIC_CAMERA),
    ("clip", contract.TOPIC_CLIP),
    ("features", contract.TOPIC_FEATURES),
    ("chunks", contract.TOPIC_ACTION_CHUNK),
    ("joints", contract.TOPIC_JOINT_STATES),
)


def _p50(values: list[float], last: int = 50) -> float:
    return percentiles(values[-last:])["p50"]


def _fmt_ms(v: float) -> str:
    return "  -" if not np.isfinite(v) else f"{v:.0f}"


def status_lines(rec: DemoRecord, now: float, phase: str, elapsed: float, total: float,
                 distance: float | None = None) -> list[str]:
    with rec.lock:
        rates = {name: rec.rate(topic, now) for name, topic in RATE_TOPICS}
        chunk_ms = _p50(rec.chunk_latency_ms)
        feat_ms = _p50(rec.feature_latency_ms)
        instruction = rec.instructions[-1][1] if rec.instructions else ""
        narration = rec.narrations[-1][1] if rec.narrations else ""
        bridge = rec.bridge[-1] if rec.bridge else None
        teleop = bool(rec.teleop_t) and now - rec.teleop_t[-1] < 0.3
    clock = f"{elapsed:5.1f}/{total:.0f} s" if phase == "running" else f"{elapsed:5.1f} s"
    bridge_text = f"{bridge[1]} ({bridge[2]})" if bridge else "waiting"
    lines = [
        f"Neon demo [{phase}] {clock} | bridge: {bridge_text}{' | TELEOP' if teleop else ''}",
        "rates Hz  " + "  ".join(f"{n} {r:5.1f}" for n, r in rates.items()),
        f"latency ms  camera->features {_fmt_ms(feat_ms)}  camera->chunk {_fmt_ms(chunk_ms)} (median of last 50)",
        f"instruction: {instruction!r}" if instruction else "instruction: (listening...)",
        f"narration:   {narration!r}" if narration else "narration:   -",
    ]
    if distance is not None and np.isfinite(distance):
        lines.append(f"closest palm to cup: {distance * 100:.1f} cm")
    return lines


class StatusPrinter:
    """Redraws the status block in place on a tty; one line per update otherwise."""

    def __init__(self, stream, interactive: bool):
        self.stream = stream
        self.interactive = interactive
        self._drawn = 0

    def show(self, lines: list[str]) -> None:
        if self.interactive:
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F")
            for line in lines:
                self.stream.write("\x1b[2K" + line + "\n")
            self._drawn = len(lines)
        else:
            self.stream.write(" | ".join(lines) + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A log line that stays above the live block."""
        if self.interactive and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()


# The live data path, upstream first: (topic, the node that publishes it).
PIPELINE = (
    (contract.TOPIC_JOINT_STATES, "g1_bridge"),
    (contract.TOPIC_CAMERA, "sim_g1"),
    (contract.TOPIC_CLIP, "camera_buffer"),
    (contract.TOPIC_FEATURES, "backbone"),
    (contract.TOPIC_ACTION_CHUNK, "action_head"),
)


def silent_stage(counts: dict[str, int], diag_messages: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(node, why) for the first stage of the data path that published nothing, or None.

    ``why`` names the topic and quotes the node's last /diagnostics message, which usually
    says what it is waiting for (no clip yet, stale features, refused input ...).
    """
    for topic, node in PIPELINE:
        if counts.get(topic, 0) == 0:
            level, message = diag_messages.get(node, ("", ""))
            said = f"its last diagnostic: [{level}] {message}" if message else "it published no diagnostics"
            return node, f"{node} published nothing on {topic}; {said}"
    return None
