"""The scheduler's floor under the bridge: a process that only wakes at the bridge's 500 Hz.

`neon-ros bench bridge` runs it beside g1_bridge during the e-stop trials, at the bridge's
priority (SCHED_FIFO ``--rt-priority`` or normal scheduling with the bridge's ``--slice-us``).
It does no work but keep the schedule (``AbsoluteTicker``, as the bridge loop does), so what
it loses under a flood is what the kernel gives any loop at that priority on this machine:
if it wakes more than a cycle late, no bridge at that priority is sure to damp within one cycle here.
The bench starts it as it starts the bridge, in a session of its own: where the kernel groups
processes by session (autogroup), where a loop runs decides what it gets as much as its priority.

    python -m neon_ros.tools.bench.sched_floor --out FILE.npy [--rt-priority P] [--slice-us S]

Runs until SIGINT or SIGTERM (or --seconds), then writes its wake-ups to FILE.npy as rows
(wall-clock ns, lateness ns against the deadline): wall clock to line up with the bench's
flood windows, lateness on the monotonic clock of the schedule (read by
``bridge_safety.floor_figures``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import numpy as np

from neon_ros import contract
from neon_ros.runtime.timing import AbsoluteTicker, set_fifo, set_slice


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neon_ros.tools.bench.sched_floor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="where to write the wake-ups (.npy)")
    ap.add_argument("--rt-priority", type=int, default=0, help="SCHED_FIFO priority (0 = normal scheduling)")
    ap.add_argument("--slice-us", type=float, default=0.0, help="at normal scheduling: the time slice, us (0 = default)")
    ap.add_argument("--seconds", type=float, default=600.0, help="stop by itself after this long (default 600 s)")
    a = ap.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    status = set_fifo(a.rt_priority) if a.rt_priority > 0 else set_slice(a.slice_us) if a.slice_us else "normal priority"
    rows = np.zeros((int(a.seconds / contract.LOWCMD_DT) + 1, 2), np.int64)
    ticker = AbsoluteTicker(contract.LOWCMD_DT)
    print(f"sched_floor: {status}", flush=True)
    n = 0
    while n < len(rows) and not stop.is_set():
        late = ticker.wait(stop.is_set)
        rows[n] = time.time_ns(), int(late * 1e9)
        n += 1
    np.save(a.out, rows[:n])
    return 0


if __name__ == "__main__":
    sys.exit(main())
