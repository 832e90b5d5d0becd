"""An independent check of everything the bridge writes: subscribes rt/lowcmd or rt/arm_sdk.

Every message is checked with unitree_sdk2py alone (no bridge code): CRC, finiteness,
targets of powered motors inside the G1 joint limits, no powered target jumping: a step
between messages is at most ``vmax`` * (interval of the writer's DDS source timestamps +
RECEIVE_JITTER), and in
arm_sdk mode: no leg motor ever powered or given a gain, blend weight in [0, 1].
Records when damping starts (kp = 0, kd > 0) as the writer's source timestamp (wall clock).

usage: python -m test.peers.bridge_lowcmd_monitor DOMAIN TOPIC SECONDS VMAX STOPFILE
Runs until SECONDS pass or STOPFILE exists, drains what is still queued, then prints one
``RESULT {json}`` line.
"""

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from neon_ros import contract, g1, unitree

# s: allowance for the time between the bridge computing a step and writing it (a loaded writer
# can be preempted in between), which the source timestamps include.
RECEIVE_JITTER = 0.01


def main() -> int:
    domain, topic, seconds, vmax = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    stop_file = Path(sys.argv[5])
    arm_sdk = topic == contract.DDS_ARM_SDK
    unitree.init_channels(domain, "lo")
    low_cmd, _ = unitree.hg_types()
    lock = threading.Lock()
    legs = list(g1.LEG_INDICES)
    st = {"n": 0, "crc_bad": 0, "non_finite": 0, "out_of_limits": 0, "too_fast": 0, "leg_commanded": 0,
          "bad_weight": 0, "powered": 0, "off": 0, "damping": 0, "max_step_rate": 0.0,
          "damping_starts": [], "weights": [], "first_t": None, "first_powered_t": None, "last_t": None, "last_kind": None,
          "max_abs_q_powered": 0.0, "max_receive_lag": 0.0, "last_rx": 0.0}
    prev = {"q": None, "t": None, "on": None}

    def on_cmd(msg):
        # The writer's source timestamp (same machine clock): the time the bridge sent this
        # message, immune to how late this (loaded) receiver gets to it.
        info = getattr(msg, "sample_info", None)
        t = info.source_timestamp * 1e-9 if info is not None else time.time()
        st["last_rx"] = time.time()
        st["max_receive_lag"] = max(st["max_receive_lag"], st["last_rx"] - t)
        a = unitree.lowcmd_arrays(msg)
        on = a["mode"] == 1
        with lock:
            st["n"] += 1
            st["first_t"] = st["first_t"] or t
            st["last_t"] = t
            if not unitree.crc_ok(msg):
                st["crc_bad"] += 1
                return  # the robot drops it too
            if not all(np.all(np.isfinite(a[f])) for f in ("q", "dq", "kp", "kd", "tau")):
                st["non_finite"] += 1
                return
            if np.any(on & ((a["q"] < g1.LOWER_LIMITS) | (a["q"] > g1.UPPER_LIMITS))):
                st["out_of_limits"] += 1
            if arm_sdk:
                if on[legs].any() or a["kp"][legs].any() or a["kd"][legs].any() or a["tau"][legs].any():
                    st["leg_commanded"] += 1
                w = float(msg.motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q)
                if not 0.0 <= w <= 1.0:
                    st["bad_weight"] += 1
                st["weights"].append(round(w, 4))
            kind = "off" if not on.any() else ("damping" if not a["kp"].any() and a["kd"].any() else "powered")
            st[kind] += 1
            if kind == "powered" and st["first_powered_t"] is None:
                st["first_powered_t"] = t
            if kind == "damping" and st["last_kind"] != "damping":
                st["damping_starts"].append(t)
            stiff = on & (a["kp"] > 0)
            if prev["q"] is not None and stiff.any():
                both = stiff & prev["on"]
                step = float(np.max(np.abs(a["q"] - prev["q"])[both], initial=0.0))
                dt = t - prev["t"]
                st["max_step_rate"] = max(st["max_step_rate"], step / max(dt, contract.LOWCMD_DT))
                # dt from the writer's stamps: a dropped message only makes dt longer.
                if step > 1.05 * vmax * (dt + RECEIVE_JITTER) + 1e-6:
                    st["too_fast"] += 1
            if stiff.any():
                st["max_abs_q_powered"] = max(st["max_abs_q_powered"], float(np.max(np.abs(a["q"][stiff]))))
            prev.update(q=a["q"], t=t, on=stiff)
            st["last_kind"] = kind

    # queue_len 0: the handler runs in the DDS listener as each sample arrives (newest wins), so a
    # receipt time is close to the send time. (The SDK's queue drops the NEWEST samples when full,
    # which would hide gaps between messages handled back to back.)
    unitree.subscriber(topic, low_cmd, on_cmd, 0)
    print("READY", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop_file.exists():
        time.sleep(0.05)
    # Drain: the test stops the bridge before it creates STOPFILE, so whatever is still queued
    # for this (possibly loaded) receiver gets checked too; quiet for 0.5 s = done.
    drain_end = time.monotonic() + 15.0
    while time.monotonic() < drain_end:
        with lock:
            quiet = time.time() - st["last_rx"] > 0.5
        if quiet:
            break
        time.sleep(0.05)
    with lock:
        if arm_sdk:  # keep the weight profile short: start, peak, end and count
            w = st["weights"]
            st["weights"] = {"n": len(w), "first": w[:1], "max": max(w, default=None), "last": w[-1:]}
        print("RESULT " + json.dumps(st), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
