"""Subscribes rt/lowcmd with unitree_sdk2py, checks CRC of what arrives, prints a summary.

usage: python -m test.peers.lowcmd_receiver DOMAIN SECONDS
"""

import sys
import threading
import time

import numpy as np

from neon_ros import unitree


def main() -> int:
    domain, seconds = int(sys.argv[1]), float(sys.argv[2])
    unitree.init_channels(domain, "lo")
    LowCmd, _ = unitree.hg_types()
    lock = threading.Lock()
    stats = {"n": 0, "crc_ok": 0, "q18": None}

    def on_cmd(msg):
        with lock:
            stats["n"] += 1
            stats["crc_ok"] += unitree.crc_ok(msg)
            stats["q18"] = unitree.lowcmd_arrays(msg)["q"][18]

    unitree.subscriber("rt/lowcmd", LowCmd, on_cmd, 10)
    print("READY", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and stats["n"] < 20:
        time.sleep(0.05)
    with lock:
        q18 = stats["q18"]
        print(f"RESULT n={stats['n']} crc_ok={stats['crc_ok']} q18={q18 if q18 is None else np.round(q18, 4)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
