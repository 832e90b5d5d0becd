"""Talks to sim_g1 the way a controller talks to the G1: rt/lowcmd out, rt/lowstate in (unitree_sdk2py).

usage: python -m test.peers.sim_lowcmd_peer DOMAIN TIMEOUT_S

1. waits for rt/lowstate, counts LowState_ messages (and valid CRCs) over ~1 s;
2. sends good-CRC LowCmd_ holding the standing pose with the left elbow at 0.3 rad until the
   elbow is there (or TIMEOUT_S);
3. sends bad-CRC LowCmd_ asking for elbow 1.8 rad for ~1 s: the simulator must ignore them.
Prints one RESULT line of key=value pairs.
"""

import sys
import threading
import time

import numpy as np

from neon_ros import contract, g1, unitree
from neon_ros.sim.firmware import lowstate_arrays

ELBOW = g1.JOINT_INDEX["left_elbow_joint"]
GOOD_TARGET = 0.3
BAD_TARGET = 1.8


def main() -> int:
    domain, timeout = int(sys.argv[1]), float(sys.argv[2])
    unitree.init_channels(domain, "lo")
    lowcmd_type, lowstate_type = unitree.hg_types()
    lock = threading.Lock()
    st = {"n": 0, "crc_ok": 0, "q": None, "mode_machine": None, "tick": None}

    def on_state(msg):
        ok = unitree.crc_ok(msg)
        arrays = lowstate_arrays(msg)
        with lock:
            st["n"] += 1
            st["crc_ok"] += ok
            st["q"] = arrays["q"]
            st["quat"] = arrays["quaternion"]
            st["mode_machine"] = int(msg.mode_machine)
            st["tick"] = int(msg.tick)

    unitree.subscriber(contract.DDS_LOWSTATE, lowstate_type, on_state, 0)
    pub = unitree.publisher(contract.DDS_LOWCMD, lowcmd_type)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and st["n"] == 0:
        time.sleep(0.05)
    if st["n"] == 0:
        print("RESULT lowstate=0", flush=True)
        return 1
    with lock:
        n0, ok0, tick0 = st["n"], st["crc_ok"], st["tick"]
    t0 = time.monotonic()
    time.sleep(1.0)
    with lock:
        n1, ok1, tick1 = st["n"], st["crc_ok"], st["tick"]
    window = time.monotonic() - t0
    result = {"lowstate_per_s": round((n1 - n0) / window, 1), "crc_ok_frac": round((ok1 - ok0) / max(1, n1 - n0), 4),
              "tick_advanced": tick1 - tick0, "mode_machine": st["mode_machine"]}

    def send(target, bad, seconds, until=None):
        q = g1.STANDING_POSE.copy()
        q[ELBOW] = target
        zeros = np.zeros(g1.NUM_JOINTS)
        sent = 0
        end = min(deadline, time.monotonic() + seconds)
        next_t = time.monotonic()
        while time.monotonic() < end:
            cmd = unitree.fill_lowcmd(unitree.new_lowcmd(), q, zeros, g1.DEFAULT_KP, g1.DEFAULT_KD, zeros,
                                      result["mode_machine"])
            if bad:
                cmd.crc = (cmd.crc + 1) & 0xFFFFFFFF
            pub.Write(cmd)
            sent += 1
            if until is not None and until():
                break
            next_t += 0.005  # 200 Hz
            time.sleep(max(0.0, next_t - time.monotonic()))
        return sent

    def elbow():
        with lock:
            return float(st["q"][ELBOW])

    target = g1.STANDING_POSE.copy()
    target[ELBOW] = GOOD_TARGET

    def settled():  # every joint near its target (kp 40-100 leaves a few centiradians of gravity sag)
        with lock:
            return float(np.max(np.abs(st["q"] - target))) < 0.1

    result["elbow_start"] = round(elbow(), 4)
    result["good_sent"] = send(GOOD_TARGET, False, timeout, until=settled)
    with lock:
        q = st["q"].copy()
        result["quat_w"] = round(float(st["quat"][0]), 4)
    result["elbow_good"] = round(float(q[ELBOW]), 4)
    others = np.arange(g1.NUM_JOINTS) != ELBOW
    result["others_max_err"] = round(float(np.max(np.abs(q[others] - g1.STANDING_POSE[others]))), 4)
    result["bad_sent"] = send(BAD_TARGET, True, 1.0)
    result["elbow_after_bad"] = round(elbow(), 4)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
