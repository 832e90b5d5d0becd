"""What the demo observed, as plain data (no rclpy): filled by the monitor node, read by the report.

Times are seconds of the ROS clock (system time) relative to ``t0``, the monitor's start.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from neon_ros import g1


@dataclass
class DemoRecord:
    """Everything the report needs; append-only while the demo runs (guarded by ``lock``)."""

    t0_ns: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    counts: dict[str, int] = field(default_factory=dict)
    arrivals: dict[str, deque] = field(default_factory=dict)  # topic -> recent arrival times (s)
    arrival_log: dict[str, list[float]] = field(default_factory=dict)  # topic -> every arrival time (s)
    js_t: list[float] = field(default_factory=list)
    js_q: list[np.ndarray] = field(default_factory=list)
    chunk_t: list[float] = field(default_factory=list)  # receipt time
    chunk_stamp: list[float] = field(default_factory=list)  # header.stamp (camera capture time)
    chunk_q: list[np.ndarray] = field(default_factory=list)  # (16, 29) in G1 order
    chunk_latency_ms: list[float] = field(default_factory=list)  # camera capture -> chunk received
    feature_latency_ms: list[float] = field(default_factory=list)  # camera capture -> features received
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    instructions: list[tuple[float, str]] = field(default_factory=list)
    narrations: list[tuple[float, str]] = field(default_factory=list)
    teleop_t: list[float] = field(default_factory=list)
    bridge: list[tuple[float, str, str]] = field(default_factory=list)  # (t, state, source) changes
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)  # latest values per status name
    diag_messages: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (level, message)
    live_since: float | None = None  # first chunk seen

    def rel(self, ns: int) -> float:
        return (ns - self.t0_ns) * 1e-9

    def arrived(self, topic: str, t: float, keep_s: float = 3.0) -> None:
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.arrival_log.setdefault(topic, []).append(t)
        dq = self.arrivals.setdefault(topic, deque())
        dq.append(t)
        while dq and dq[0] < t - keep_s:
            dq.popleft()

    def rate(self, topic: str, now: float, window: float = 2.0) -> float:
        dq = self.arrivals.get(topic)
        if not dq:
            return 0.0
        n = sum(1 for t in dq if t >= now - window)
        return n / window

    def rate_between(self, topic: str, start: float, end: float) -> float:
        """Mean rate (Hz) of ``topic`` over [start, end]."""
        if end <= start:
            return 0.0
        times = self.arrival_log.get(topic, [])
        return sum(1 for t in times if start <= t <= end) / (end - start)

    # --- arrays for the report -------------------------------------------------------------
    def joint_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            if not self.js_t:
                return np.zeros(0), np.zeros((0, g1.NUM_JOINTS))
            return np.asarray(self.js_t), np.stack(self.js_q)

    def commanded(self) -> tuple[np.ndarray, np.ndarray]:
        """The policy's command over time: each chunk's point k at stamp + k*dt, newest chunk wins.

        Returns (times, q) sorted by time, built from every chunk's first steps up to the next chunk.
        """
        from neon_ros import contract

        with self.lock:
            stamps, chunks = list(self.chunk_stamp), list(self.chunk_q)
        ts, qs = [], []
        for i, (s, c) in enumerate(zip(stamps, chunks, strict=True)):
            nxt = stamps[i + 1] if i + 1 < len(stamps) else s + contract.CHUNK_STEPS * contract.CONTROL_DT
            for k in range(c.shape[0]):
                t = s + k * contract.CONTROL_DT
                if t >= nxt and k > 0:
                    break
                ts.append(t)
                qs.append(c[k])
        if not ts:
            return np.zeros(0), np.zeros((0, g1.NUM_JOINTS))
        order = np.argsort(ts, kind="stable")
        return np.asarray(ts)[order], np.stack(qs)[order]

    def source_spans(self, source: str) -> list[tuple[float, float]]:
        """Intervals during which the bridge reported ``source`` (e.g. "teleop") as in control."""
        spans = []
        for i, (t, _, src) in enumerate(self.bridge):
            if src == source:
                end = self.bridge[i + 1][0] if i + 1 < len(self.bridge) else (self.js_t[-1] if self.js_t else t)
                spans.append((t, end))
        return spans

    def teleop_spans(self, gap: float = 0.3) -> list[tuple[float, float]]:
        """Intervals during which teleop messages kept coming (gap = the bridge's teleop_timeout)."""
        spans: list[tuple[float, float]] = []
        for t in sorted(self.teleop_t):
            if spans and t - spans[-1][1] <= gap:
                spans[-1] = (spans[-1][0], t)
            else:
                spans.append((t, t))
        return spans
