"""unitree_hg LowCmd_ building for the two bridge modes, with a last check before the wire.

- ``lowcmd`` mode -> rt/lowcmd, all 29 joints.
- ``arm_sdk`` mode -> rt/arm_sdk: waist + arms only; leg entries stay all-zero with motor
  mode 0 (never commanded); ``motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q`` is the blend weight.

CRC (``hg_wire.LowCmdWire``: the SDK's bytes and CRC, without walking 35 structs) and ``mode_machine`` (copied from the latest LowState) are
set on every message. ``check_command`` refuses anything non-finite, outside the joint
limits, or commanding a leg in arm_sdk mode; the loop then latches damping.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neon_ros import contract, g1, hg_wire
from neon_ros.bridge.command import Command
from neon_ros.errors import NeonError

TOPICS = {"lowcmd": contract.DDS_LOWCMD, "arm_sdk": contract.DDS_ARM_SDK}


class UnsafeCommandError(NeonError, RuntimeError):
    pass


def check_command(cmd: Command, mode: str) -> None:
    """Raise UnsafeCommandError unless every field is finite, q is in limits, gains are sane."""
    for name in ("q", "dq", "kp", "kd", "tau"):
        v = getattr(cmd, name)
        if v.shape != (g1.NUM_JOINTS,) or not np.all(np.isfinite(v)):
            raise UnsafeCommandError(f"{name} is not {g1.NUM_JOINTS} finite values")
    if np.any(cmd.kp < 0) or np.any(cmd.kd < 0):
        raise UnsafeCommandError("negative gain")
    on = cmd.motors_on
    if np.any(on & ((cmd.q < g1.LOWER_LIMITS) | (cmd.q > g1.UPPER_LIMITS))):
        raise UnsafeCommandError("target outside the joint limits")
    if mode == "arm_sdk":
        legs = list(g1.LEG_INDICES)
        if np.any(on[legs]) or np.any(cmd.kp[legs]) or np.any(cmd.kd[legs]) or np.any(cmd.tau[legs]):
            raise UnsafeCommandError("arm_sdk mode must not command a leg joint")
    if not 0.0 <= cmd.weight <= 1.0:
        raise UnsafeCommandError(f"arm_sdk weight {cmd.weight} outside [0, 1]")


class LowCmdBuilder:
    """Reuses one LowCmd_ (``hg_wire.LowCmdWire``); ``build`` checks, fills it and sets the CRC."""

    def __init__(self, mode: str):
        if mode not in TOPICS:
            raise ValueError(f"mode must be one of {tuple(TOPICS)}, got {mode!r}")
        self.mode = mode
        self.topic = TOPICS[mode]
        self.wire = hg_wire.LowCmdWire()

    def build(self, cmd: Command, mode_machine: int) -> Any:
        """The message to ``Write`` (its bytes are set here; ``self.wire.message()`` syncs its fields)."""
        check_command(cmd, self.mode)
        self.wire.fill(cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau, mode_machine, enabled=cmd.motors_on,
                       weight=float(cmd.weight) if self.mode == "arm_sdk" else None)
        return self.wire.wire
