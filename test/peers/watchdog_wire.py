"""Records every LowCmd_ on rt/lowcmd (unitree_sdk2py alone) around a SIGKILL of the bridge.

usage: python -m test.peers.watchdog_wire DOMAIN KILLFILE STOPFILE

Keeps (writer's DDS source timestamp, kind, CRC ok) of each command; kind is ``off`` (no
motor on), ``powered`` (some kp > 0) or ``damping`` (kp = 0, kd > 0). When STOPFILE exists
it drains, reads the kill time (wall clock, s) from KILLFILE and prints ``RESULT {json}``:
the kind of the last command written before the kill, ms from the kill to the first damping
command written after it, the kinds written in the 0.8 s after the kill, the powered
commands after it (a restarted bridge) and damping commands written between the restarted
bridge's first and last powered ones (a watchdog that did not yield, or tripped).
"""

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from neon_ros import contract, g1, unitree

KINDS = ("off", "powered", "damping")


def main() -> int:
    domain, kill_file, stop_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    unitree.init_channels(domain, "lo")
    low_cmd, _ = unitree.hg_types()
    lock = threading.Lock()
    rows: list[tuple[float, int, bool]] = []
    last_rx = [time.monotonic()]

    def on_cmd(msg) -> None:
        info = getattr(msg, "sample_info", None)
        t = info.source_timestamp * 1e-9 if info is not None else time.time()
        motors = msg.motor_cmd[:g1.NUM_JOINTS]
        kind = 0 if not any(m.mode for m in motors) else 1 if any(m.kp for m in motors) else 2
        ok = unitree.crc_ok(msg)
        with lock:
            rows.append((t, kind, ok))
            last_rx[0] = time.monotonic()

    unitree.subscriber(contract.DDS_LOWCMD, low_cmd, on_cmd, 0)  # queue 0: handled in the DDS listener
    print("READY", flush=True)
    while not stop_file.exists():
        time.sleep(0.05)
    drain_end = time.monotonic() + 15.0  # commands still queued for this (loaded) receiver
    while time.monotonic() < drain_end:
        with lock:
            if time.monotonic() - last_rx[0] > 0.5:
                break
        time.sleep(0.05)
    t_kill = float(kill_file.read_text().split()[0])
    with lock:
        a = np.array(sorted(rows), dtype=np.float64).reshape(-1, 3)
    t, kind, ok = a[:, 0], a[:, 1].astype(int), a[:, 2].astype(bool)
    before = kind[t < t_kill]
    damping_after = t[(t >= t_kill) & (kind == 2)]
    # Commands the bridge wrote before it died can arrive after t_kill (a loaded receiver's callback
    # runs late): the window of "only damping" opens at the watchdog's first damping command.
    took_over = damping_after[0] if damping_after.size else t_kill
    in_flight = int(np.count_nonzero((t >= t_kill) & (t < took_over) & (kind == 1)))
    window = kind[(t >= took_over) & (t < t_kill + 0.8)]
    powered_after = t[(t >= t_kill) & (kind == 1)]
    interleaved = 0
    if powered_after.size:
        interleaved = int(np.count_nonzero((t > powered_after[0]) & (t < powered_after[-1]) & (kind == 2)))
    print("RESULT " + json.dumps({
        "n": int(t.size), "crc_bad": int(np.count_nonzero(~ok)),
        "before_kill": KINDS[before[-1]] if before.size else None,
        "kill_to_damping_ms": (damping_after[0] - t_kill) * 1e3 if damping_after.size else None,
        "after_kill": {k: int(np.count_nonzero(window == i)) for i, k in enumerate(KINDS)}, "in_flight": in_flight,
        "powered_after_restart": int(powered_after.size), "damping_between_restarted_commands": interleaved,
        "last_kind": KINDS[kind[-1]] if kind.size else None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
