"""The bridge's liveness heartbeat: one small DDS sample per 500 Hz cycle, beside its LowCmd_.

The 500 Hz thread writes it on the robot's DDS (same interface and domain as rt/lowcmd)
right after the cycle's LowCmd_, so a heartbeat means "the loop ran and wrote its command".
bridge_watchdog listens to it instead of to rt/lowcmd itself: decoding one hg LowCmd_ in
Python takes about 0.5-0.9 ms (35 motor structs), half a core at 500 Hz, while a heartbeat
takes about 10 us. It carries what the watchdog needs to take over: the bridge's state,
whether it published this cycle, the commanded targets, mode_machine and the arm_sdk weight.
"""

# No ``from __future__ import annotations`` here: cyclonedds reads the IDL field types from the
# annotations of the class built in heartbeat_type(), which must be real types, not strings.
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neon_ros import g1
from neon_ros.bridge.command import STATES, Command

TOPIC = "rt/neon/bridge_heartbeat"


@functools.cache
def heartbeat_type() -> type:
    """The heartbeat's IDL type (cyclonedds, the SDK's DDS binding; imported on first use)."""
    from cyclonedds.idl import IdlStruct
    from cyclonedds.idl.types import array, float32, uint8, uint64

    @dataclass
    class BridgeHeartbeat(IdlStruct, typename="neon::msg::dds_::BridgeHeartbeat_"):
        cycle: uint64 = 0  # the controller's cycle counter
        lowcmd_sent: uint64 = 0  # LowCmd_ written since the bridge started
        state: uint8 = 0  # index into command.STATES
        published: uint8 = 0  # 1: this cycle wrote a LowCmd_ (arm_sdk after its ramp-out: 0)
        mode_machine: uint8 = 0
        weight: float32 = 0.0  # arm_sdk blend weight (0 in lowcmd mode)
        q: array[float32, g1.NUM_JOINTS] = field(default_factory=lambda: [0.0] * g1.NUM_JOINTS)

    return BridgeHeartbeat


def new_heartbeat() -> Any:
    return heartbeat_type()()


def fill(beat: Any, cmd: Command, mode_machine: int, cycle: int, lowcmd_sent: int) -> Any:
    """Write one cycle's command into ``beat`` (reused) and return it."""
    beat.cycle = int(cycle)
    beat.lowcmd_sent = int(lowcmd_sent)
    beat.state = STATES.index(cmd.state)
    beat.published = int(cmd.publish)
    beat.mode_machine = int(mode_machine) & 0xFF
    beat.weight = float(cmd.weight)
    beat.q = np.asarray(cmd.q, dtype=np.float64).tolist()
    return beat


def state_name(beat: Any) -> str:
    return STATES[beat.state] if beat.state < len(STATES) else "unknown"
