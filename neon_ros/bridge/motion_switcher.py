"""Before a lowcmd bridge powers the motors: does one of Unitree's motion modes own them? (no rclpy)

On a G1, Unitree's motion service (its locomotion and balance controller, one of the modes the
MotionSwitcher service selects) commands every motor unless it has been released. A LowCmd_
on rt/lowcmd written while it runs fights it for the motors, so ``lowcmd`` mode may enable
only when the MotionSwitcher reports no active mode (CheckMode answers name ""). arm_sdk
mode needs the opposite, the motion service running, and is not checked here.

``motion_mode_refusal`` asks and returns the reason to refuse ("" = go ahead). It never
releases a mode itself: a released G1 stops balancing, which only a robot on a gantry
survives, so releasing is the operator's decision (the Unitree remote, or
``MotionSwitcherClient.ReleaseMode``). The client comes from ``unitree.motion_switcher_client``.
"""

from __future__ import annotations

from typing import Any, Protocol

# s the MotionSwitcher client waits for each answer. The answer reaches the bridge through its
# Unitree DDS participant, whose receive thread also decodes every 500 Hz LowState_ in Python:
# on a starved CPU it falls behind, and answers were measured arriving 0.5-2 s late (1 s
# timed out). Unitree's own examples give this client 5 s.
CHECK_TIMEOUT = 3.0
CHECK_ATTEMPTS = 2  # CheckMode calls before "no answer" (a request right after discovery can be lost)


class MotionSwitcher(Protocol):
    """What this module uses of unitree_sdk2py's MotionSwitcherClient."""

    def CheckMode(self) -> tuple[int, Any]:  # noqa: N802 (the SDK's name)
        ...


def motion_mode_refusal(client: MotionSwitcher, attempts: int = CHECK_ATTEMPTS) -> str:
    """Why lowcmd mode must not enable now ("" if no motion mode is active)."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for _ in range(attempts):
        code, result = client.CheckMode()
        if code == 0 and isinstance(result, dict):
            break
    else:
        return (f"refused: Unitree's MotionSwitcher gave no answer to CheckMode (code {code}), so a motion "
                "mode may own the motors; lowcmd mode enables only when it reports none")
    name = str(result.get("name", ""))
    if name:
        return (f"refused: Unitree's motion mode {name!r} owns the motors and rt/lowcmd would fight it; "
                "release it first (robot on a gantry: the Unitree remote, or MotionSwitcherClient.ReleaseMode), "
                "or use arm_sdk mode")
    return ""
