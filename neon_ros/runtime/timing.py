"""Absolute deadlines, real-time scheduling, rates and latency percentiles (numpy and stdlib only)."""

from __future__ import annotations

import collections
import gc
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

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


class PeriodicThread:
    """``job()`` every ``period`` s on absolute deadlines (``AbsoluteTicker``), on a daemon thread of
    its own, until ``stop()``.

    For a fast periodic job of a node: a ROS timer runs through rclpy's executor, which costs about
    half a millisecond of CPU per callback (measured here: a 100 Hz timer doing nothing took 5.4% of
    a core with the single-threaded executor, 7.6% with the multi-threaded one), and each of its
    wake-ups competes for the GIL with the node's other threads. An exception in ``job`` goes to
    ``on_error`` (default: re-raised, ending the thread) and the next period runs.
    """

    def __init__(self, period: float, job: Callable[[], None], name: str,
                 on_error: Callable[[BaseException], None] | None = None):
        self.period, self.job, self.on_error = float(period), job, on_error
        self._stop = threading.Event()
        self.ticker = AbsoluteTicker(self.period, sleep=self._stop.wait)  # a stop ends the sleep at once
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ticker.wait(self._stop.is_set)
            if self._stop.is_set():
                return
            try:
                self.job()
            except Exception as exc:
                if self.on_error is None:
                    raise
                self.on_error(exc)


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


def task_ids(pid: int | str = "self") -> list[int]:
    """Kernel ids of every thread of process ``pid`` (default: this one); raises OSError if the
    process is gone."""
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


_RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0)  # a flag sched_getscheduler ORs into the policy


def policy_of(tid: int) -> int:
    """A thread's scheduling policy (0: the calling thread), without the SCHED_RESET_ON_FORK flag."""
    return os.sched_getscheduler(tid) & ~_RESET_ON_FORK


def thread_policies(pid: int | str = "self") -> dict[int, int]:
    """{thread id: scheduling policy} for every thread of process ``pid`` (default: this one);
    raises OSError if the process is gone."""
    out = {}
    for tid in task_ids(pid):
        try:
            out[tid] = os.sched_getscheduler(tid)
        except OSError:  # the thread ended between listdir and the query
            pass
    return out


def restore_normal_scheduling() -> int:
    """Put every thread of this process on SCHED_OTHER; returns how many were changed."""
    changed = 0
    for tid, policy in thread_policies().items():
        if policy & ~_RESET_ON_FORK != os.SCHED_OTHER:
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


def thread_ids(whole_process: bool = True) -> list[int]:
    """Kernel ids of every thread of this process, or [0] (the calling thread, for the syscalls)."""
    return task_ids() if whole_process else [0]


def set_nice(nice: int, whole_process: bool = True) -> str:
    """The nice value of every thread of this process (or the calling thread); threads started
    later inherit it. Raising it needs no privilege, lowering it below 0 needs CAP_SYS_NICE.
    Returns a status text (a refusal is not an error)."""
    return set_nice_of(thread_ids(whole_process), nice)


def set_nice_of(tids: list[int], nice: int, fair: bool = False) -> str:
    """The nice value of these threads of this process (0: the calling one); see ``set_nice``.

    ``fair``: a thread on a real-time policy (inherited from a SCHED_FIFO creator) is first put
    back on SCHED_OTHER, where a nice value means something (leaving real time needs no privilege).
    """
    for tid in tids:
        try:
            if fair and policy_of(tid) not in (os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, int(nice))  # Linux: per thread, 0 = the calling one
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except OSError as exc:
            return f"nice {int(nice)} refused ({exc.strerror})"
    return f"nice {int(nice)}"


AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
AUTOGROUP_OF_SELF = Path("/proc/self/autogroup")


def autogroup_enabled() -> bool:
    """Whether the fair scheduler shares the CPU between sessions first (``set_session_nice``)."""
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


def session_nice() -> int | None:
    """The nice value of this process's session (autogroup), or None where it has none to set.

    None where the kernel has no autogroup, and where the process is still in the kernel's
    default group (a session that never called setsid since boot, as a container's first
    process and everything it starts in its session): the kernel prints nothing for that group
    and refuses a nice for it.
    """
    try:
        fields = AUTOGROUP_OF_SELF.read_text().split()  # "/autogroup-1034 nice 0"
    except OSError:
        return None
    return int(fields[-1]) if len(fields) == 3 and fields[1] == "nice" else None


def set_session_nice(nice: int) -> str:
    """The nice value of this process's session, where it has one of its own ('' where not needed).

    With autogroup (CONFIG_SCHED_AUTOGROUP and kernel.sched_autogroup_enabled = 1, as on Ubuntu
    and on this project's test machines) the fair scheduler first shares the CPU between
    sessions and only then between the threads of a session, so a thread's nice ranks it within
    its own session alone. A node started in a session of its own (the demo's and the tests'
    launchers, ``processes.launch``) therefore yields to nothing by its threads' nice; the
    session's (``/proc/self/autogroup``) is what ranks it against the other nodes. It is set
    only where this process leads its session: a session shared with other programs (``ros2
    launch``, a shell, a test runner) is left alone, and there the threads' nice already works.
    Raising it needs no privilege, lowering it below 0 needs CAP_SYS_NICE. Returns a status
    text (a refusal is not an error).
    """
    if not autogroup_enabled() or os.getsid(0) != os.getpid():
        return ""
    try:
        AUTOGROUP_OF_SELF.write_text(str(int(nice)))
    except OSError as exc:
        return f"session nice {int(nice)} refused ({exc.strerror})"
    return f"session nice {int(nice)}"


_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}  # syscall numbers (linux/unistd.h); absent from os


def set_slice(slice_us: float, whole_process: bool = True) -> str:
    """Ask the fair scheduler for a short time slice (``sched_attr.sched_runtime``, Linux >= 6.12 EEVDF).

    Still SCHED_OTHER at nice 0, the same CPU share: a shorter slice only gives an earlier
    virtual deadline, so a thread that wakes up preempts a CPU-bound one instead of waiting up
    to a default slice (~3 ms on 2 cores) for it. No privilege needed; older kernels accept the
    call and ignore the value, which the status text says. 0 restores the default. Returns a
    status text (a refusal is not an error).
    """
    import ctypes
    import platform

    nr = _SCHED_SETATTR.get(platform.machine())
    if nr is None:
        return f"slice request unsupported on {platform.machine()}"

    class SchedAttr(ctypes.Structure):  # linux/sched/types.h, SCHED_ATTR_SIZE_VER1 (56 bytes)
        _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                    ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                    ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64), ("util_min", ctypes.c_uint32),
                    ("util_max", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    for tid in thread_ids(whole_process):
        try:
            if policy_of(tid) != os.SCHED_OTHER:  # real-time threads keep their policy
                continue
            nice = os.getpriority(os.PRIO_PROCESS, tid)
        except OSError:  # the thread ended meanwhile
            continue
        attr = SchedAttr(size=ctypes.sizeof(SchedAttr), policy=os.SCHED_OTHER, nice=nice,
                         runtime=int(slice_us * 1000))
        if libc.syscall(nr, tid, ctypes.byref(attr), 0) != 0:
            err = ctypes.get_errno()
            return f"slice {slice_us:g} us refused ({os.strerror(err)})"
    release = tuple(int(x) for x in platform.release().split(".")[:2] if x.isdigit())
    honoured = release >= (6, 12)
    return f"normal priority, slice {slice_us:g} us" + ("" if honoured else " (ignored before Linux 6.12)")


def freeze_heap() -> int:
    """Put every object alive now out of the cyclic garbage collector's reach; returns how many.

    A full collection walks every tracked object while holding the GIL: in g1_bridge (rclpy,
    MuJoCo, cyclonedds: ~80,000 objects) one took 27 ms, 13 of the 500 Hz loop's cycles lost at
    once, and the allocation churn of a command flood is what triggers them. Called once a node
    is built, the objects of its imports and setup are never walked again (``gc.freeze``, the
    CPython idiom for long-lived heaps), so a collection only walks what was made since: cycles
    created later are still found and freed.
    """
    gc.collect()  # garbage of the setup is freed, not kept forever
    gc.freeze()
    return gc.get_freeze_count()


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
    policy = os.SCHED_FIFO | (0 if inherit else _RESET_ON_FORK)
    tids = thread_ids(whole_process)
    try:
        for tid in tids:  # 0: the calling thread
            os.sched_setscheduler(tid, policy, os.sched_param(int(priority)))
    except (OSError, AttributeError, ValueError) as exc:
        return f"SCHED_FIFO {int(priority)} refused ({exc}); normal priority"
    return f"SCHED_FIFO {int(priority)}" + (" (whole process)" if whole_process else "")
