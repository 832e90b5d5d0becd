"""Absolute-deadline scheduling and rate / latency statistics (no rclpy, no threads)."""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable

import numpy as np


class AbsoluteTicker:
    """Deadlines t0 + k * period on a monotonic clock, never drifting with step time.

    ``wait()`` sleeps until the next deadline and returns the lateness (s) of the wake-up
    against the ideal schedule. If a step overran by whole periods, the missed deadlines
    are skipped (counted in ``missed``) instead of being run back to back.
    """

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not period > 0.0:
            raise ValueError(f"period must be > 0, got {period}")
        self.period = float(period)
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()
        self._k = 0
        self.missed = 0

    @property
    def next_deadline(self) -> float:
        return self._t0 + (self._k + 1) * self.period

    def wait(self, stop: Callable[[], bool] = lambda: False, max_sleep: float = 0.1) -> float:
        """Sleep until the next deadline (in slices of at most ``max_sleep`` so ``stop`` is seen)."""
        self._k += 1
        deadline = self._t0 + self._k * self.period
        now = self._clock()
        if now - deadline >= self.period:  # overran: skip to the latest deadline already past
            skip = int((now - deadline) // self.period)
            self._k += skip
            self.missed += skip
            deadline = self._t0 + self._k * self.period
        while not stop():
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._sleep(min(remaining, max_sleep))
        return self._clock() - deadline


class Window:
    """The newest ``size`` samples of one quantity, summarised as p50 / p99 / max."""

    def __init__(self, size: int = 400):
        self._d: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._d.append(float(value))

    def __len__(self) -> int:
        return len(self._d)

    def summary(self, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
        if not self._d:
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        a = np.asarray(self._d) * scale
        return {"p50": round(float(np.percentile(a, 50)), digits),
                "p99": round(float(np.percentile(a, 99)), digits),
                "max": round(float(a.max()), digits)}


class RateMeter:
    """Events per second over a sliding time window (default 2 s)."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = float(window_s)
        self._clock = clock
        self._t: collections.deque[float] = collections.deque()
        self.total = 0

    def tick(self) -> None:
        now = self._clock()
        self._t.append(now)
        self.total += 1
        self._trim(now)

    def rate(self) -> float:
        now = self._clock()
        self._trim(now)
        if len(self._t) < 2:
            return 0.0
        span = max(now - self._t[0], 1e-9)
        return (len(self._t) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._t and now - self._t[0] > self.window_s:
            self._t.popleft()


def flatten(prefix: str, summary: dict[str, float]) -> dict[str, float]:
    """{"p50": x, ...} -> {"prefix_p50": x, ...} for diagnostics key-values."""
    return {f"{prefix}_{k}": v for k, v in summary.items()}


def thread_policies() -> dict[int, tuple[int, int]]:
    """{thread id: (scheduling policy, priority)} for every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[int(tid)] = (os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)).sched_priority)
        except OSError:  # the thread ended between listdir and the query
            pass
    return out


def _set_policy(tid: int, policy: int, priority: int) -> None:
    try:
        os.sched_setscheduler(tid, policy, os.sched_param(priority))
    except OSError:  # ended meanwhile, or not permitted (only lowering is ever asked here)
        pass


def restore_normal_scheduling() -> int:
    """Put every thread of this process on SCHED_OTHER; returns how many were changed."""
    changed = 0
    for tid, (policy, _) in thread_policies().items():
        if policy & ~getattr(os, "SCHED_RESET_ON_FORK", 0) != os.SCHED_OTHER:
            _set_policy(tid, os.SCHED_OTHER, 0)
            changed += 1
    return changed


@contextlib.contextmanager
def contained_scheduling():
    """Undo, on exit, any scheduling change made by code run inside the block.

    Some libraries raise the scheduling of the calling thread and their own threads behind
    our back: SVT-AV1 (through PyAV) run as root leaves its caller at SCHED_FIFO 99, and every
    child process started afterwards inherits it (two cores, Whisper and MuJoCo at FIFO 99:
    nothing else runs). Every thread that existed before gets its policy back; threads born
    inside the block go back to SCHED_OTHER.
    """
    before = thread_policies()
    try:
        yield
    finally:
        for tid, now in thread_policies().items():
            want = before.get(tid, (os.SCHED_OTHER, 0))
            if now != want:
                _set_policy(tid, *want)


def child_normal_scheduling() -> None:
    """``preexec_fn`` for child processes: start on SCHED_OTHER whatever the parent runs at.

    A node that wants real time asks for it itself (its ``rt_priority`` parameter).
    """
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def set_process_fifo(priority: int) -> str:
    """SCHED_FIFO ``priority`` for every thread of this process (threads created later inherit).

    Making only a control thread real-time is not enough in Python: a normal-priority thread
    holding the GIL while preempted by other processes still delays it (priority inversion).
    SCHED_RESET_ON_FORK: child processes start on normal scheduling, never real-time by accident.
    Needs CAP_SYS_NICE or an rtprio limit; returns a status text (refusals are not errors).
    """
    if priority <= 0:
        return "normal priority"
    policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(tid), policy, os.sched_param(int(priority)))
    except (PermissionError, OSError, AttributeError, ValueError) as exc:
        return f"SCHED_FIFO refused ({exc}); normal priority"
    return f"SCHED_FIFO {int(priority)} (whole process)"
