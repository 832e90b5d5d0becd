"""Absolute deadlines, real-time scheduling, rates and latency percentiles (numpy and stdlib only)."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable

import numpy as np


class AbsoluteTicker:
    """Deadlines t0 + k * period on a monotonic clock, never drifting with step time.

    ``wait()`` sleeps until the next deadline and returns the lateness (s) of the wake-up
    against the schedule. A loop that is behind by less than ``max_lag`` (default one period)
    runs the missed deadlines back to back to catch up; further behind, the missed deadlines
    are skipped (counted in ``missed``) instead.
    """

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_lag: float | None = None):
        if not period > 0.0:
            raise ValueError(f"period must be > 0, got {period}")
        self.period = float(period)
        self.max_lag = self.period if max_lag is None else float(max_lag)
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()
        self._k = 0
        self.missed = 0

    def wait(self, stop: Callable[[], bool] = lambda: False, max_sleep: float = 0.1) -> float:
        """Sleep until the next deadline (in slices of at most ``max_sleep`` so ``stop`` is seen)."""
        self._k += 1
        deadline = self._t0 + self._k * self.period
        behind = self._clock() - deadline
        if behind >= self.max_lag:  # too far behind: skip to the latest deadline already past
            skip = int(behind // self.period)
            self._k += skip
            self.missed += skip
            deadline = self._t0 + self._k * self.period
        while not stop():
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._sleep(min(remaining, max_sleep))
        return self._clock() - deadline


def percentiles(samples, qs: tuple[int, ...] = (50, 99)) -> dict[str, float]:
    """{"p50": .., "p99": .., "max": .., "n": ..} of a sequence of numbers (same unit in and out).

    Linear interpolation (numpy's default); NaN figures and n = 0 for no samples.
    """
    arr = np.asarray(list(samples), dtype=np.float64)
    if arr.size == 0:
        return {f"p{q}": float("nan") for q in qs} | {"max": float("nan"), "n": 0}
    out = {f"p{q}": float(np.percentile(arr, q)) for q in qs}
    out["max"] = float(arr.max())
    out["n"] = int(arr.size)
    return out


class Window:
    """The newest ``size`` samples of one quantity, summarised as p50 / p99 / max."""

    def __init__(self, size: int = 400):
        self._d: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._d.append(float(value))

    def __len__(self) -> int:
        return len(self._d)

    def summary(self, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
        s = percentiles(np.asarray(self._d, dtype=np.float64) * scale)
        return {k: round(s[k], digits) for k in ("p50", "p99", "max")}


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


def thread_policies(pid: int | str = "self") -> dict[int, int]:
    """{thread id: scheduling policy} for every thread of process ``pid`` (default: this one);
    raises OSError if the process is gone."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = os.sched_getscheduler(int(tid))
        except OSError:  # the thread ended between listdir and the query
            pass
    return out


def restore_normal_scheduling() -> int:
    """Put every thread of this process on SCHED_OTHER; returns how many were changed."""
    changed = 0
    for tid, policy in thread_policies().items():
        if policy & ~getattr(os, "SCHED_RESET_ON_FORK", 0) != os.SCHED_OTHER:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                changed += 1
            except OSError:  # the thread ended meanwhile
                pass
    return changed


def child_normal_scheduling() -> None:
    """``preexec_fn`` for child processes: start on SCHED_OTHER whatever the parent runs at.

    A node that wants real time asks for it itself (its ``rt_priority`` parameter).
    """
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def set_fifo(priority: int, whole_process: bool = True, inherit: bool = False) -> str:
    """SCHED_FIFO ``priority`` for every thread of this process, or only the calling thread.

    Making only a control thread real-time is not enough in Python: a normal-priority thread
    holding the GIL while preempted by other processes still delays it (priority inversion).
    SCHED_RESET_ON_FORK is set unless ``inherit``: child processes then start on normal
    scheduling, and so do threads created afterwards (Linux resets them like children), so
    call it once the threads exist. With ``inherit`` the threads (and child processes) the
    calling thread starts later inherit FIFO. Needs CAP_SYS_NICE or an rtprio limit; returns
    a status text (a refusal is not an error).
    """
    if priority <= 0:
        return "normal priority"
    policy = os.SCHED_FIFO | (0 if inherit else getattr(os, "SCHED_RESET_ON_FORK", 0))
    tids = [int(tid) for tid in os.listdir("/proc/self/task")] if whole_process else [0]
    try:
        for tid in tids:  # 0: the calling thread
            os.sched_setscheduler(tid, policy, os.sched_param(int(priority)))
    except (OSError, AttributeError, ValueError) as exc:
        return f"SCHED_FIFO {int(priority)} refused ({exc}); normal priority"
    return f"SCHED_FIFO {int(priority)}" + (" (whole process)" if whole_process else "")
