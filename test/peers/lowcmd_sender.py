"""Publishes hg LowCmd_ on rt/lowcmd at 100 Hz with CRC set; with 'bad', every CRC is wrong.

usage: python -m test.peers.lowcmd_sender DOMAIN SECONDS [bad]
"""

import sys
import time

import numpy as np

from neon_ros import g1, unitree


def main() -> int:
    domain, seconds = int(sys.argv[1]), float(sys.argv[2])
    bad = len(sys.argv) > 3 and sys.argv[3] == "bad"
    unitree.init_channels(domain, "lo")
    LowCmd, _ = unitree.hg_types()
    pub = unitree.publisher("rt/lowcmd", LowCmd)
    q = g1.STANDING_POSE.copy()
    q[18] = 0.75
    zeros = np.zeros(g1.NUM_JOINTS)
    deadline = time.monotonic() + seconds
    next_t = time.monotonic()
    while time.monotonic() < deadline:
        cmd = unitree.fill_lowcmd(unitree.new_lowcmd(), q, zeros, g1.DEFAULT_KP, g1.DEFAULT_KD, zeros, 0)
        if bad:
            cmd.crc = (cmd.crc + 1) & 0xFFFFFFFF
        pub.Write(cmd)
        next_t += 0.01
        time.sleep(max(0.0, next_t - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
