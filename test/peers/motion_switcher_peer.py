"""Asks a simulated G1's MotionSwitcher over the Unitree DDS what the bridge's lowcmd check asks.

usage: python -m test.peers.motion_switcher_peer DOMAIN

With the SDK's MotionSwitcherClient (``unitree.motion_switcher_client``): CheckMode and the
lowcmd enable check (``bridge.motion_switcher.motion_mode_refusal``), then ReleaseMode, then
both again, then SelectMode back to the first mode. Prints one ``RESULT {json}`` line.
"""

import json
import sys

from neon_ros import unitree
from neon_ros.bridge.motion_switcher import CHECK_TIMEOUT, motion_mode_refusal


def main() -> int:
    unitree.init_channels(int(sys.argv[1]), "lo")
    client = unitree.motion_switcher_client(CHECK_TIMEOUT)
    r: dict = {"refusal_before": motion_mode_refusal(client), "check_before": client.CheckMode()}
    r["release"] = client.ReleaseMode()[0]
    r["refusal_after"] = motion_mode_refusal(client)
    r["check_after"] = client.CheckMode()
    name = (r["check_before"][1] or {}).get("name", "")
    r["select"] = client.SelectMode(name)[0] if name else None
    r["check_selected"] = client.CheckMode()
    print("RESULT " + json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
