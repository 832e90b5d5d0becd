"""The Neon stack in one table: its nodes, their start order and what each setting overrides.

Every node's defaults are in config/neon.yaml; the table holds only the overrides of the
simulation (sim_g1 on this machine, Unitree DDS on the loopback) and of a real robot.
launch/*.py, `neon-ros demo` and `neon-ros bench` take their node sets from it. Launch
files import it, so it imports nothing heavy (no rclpy, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StackNode:
    """One node; ``name`` is both its executable and its node name.

    sim: parameter overrides in simulation.
    robot: parameter overrides on a real G1 (None: the node does not run on a robot).
    ready: a log line the node prints once it is up; the next node starts after it.
    """

    name: str
    sim: dict[str, object] = field(default_factory=dict)
    robot: dict[str, object] | None = field(default_factory=dict)
    ready: str = ""


# In start order. The bridge comes up before the simulator so it enables (holding the
# standing pose) on the first LowState, before the damped robot sags on its gantry; its
# watchdog shares the bridge's mode, interface and domain.
# On the robot the bridge's 500 Hz loop runs real-time where permitted (SCHED_FIFO 50, below its
# watchdog's 60; refused without CAP_SYS_NICE or an rtprio limit, it says so and runs at normal
# priority): at normal priority a flood from other processes on a 2-core computer costs it
# cycles in some runs, at FIFO 50 none (README, e-stop row).
STACK: tuple[StackNode, ...] = (
    StackNode("g1_bridge",
              sim={"mode": "lowcmd", "autostart": True, "network_interface": "lo", "gravity_compensation": True,
                   "rt_priority": 0},
              robot={"mode": "arm_sdk", "autostart": False, "network_interface": "eth0", "dds_domain_id": 0,
                     "gravity_compensation": False, "rt_priority": 50},
              ready="g1_bridge: mode="),
    # Damps the robot if the bridge dies (its own process, on the bridge's Unitree DDS). On the
    # robot it runs real-time where permitted (it sleeps but must wake within its timeout
    # however loaded the computer is; above the bridge's own rt_priority); simulations keep
    # normal scheduling, like every node there.
    StackNode("bridge_watchdog",
              sim={"mode": "lowcmd", "network_interface": "lo", "rt_priority": 0},
              robot={"mode": "arm_sdk", "network_interface": "eth0", "dds_domain_id": 0, "rt_priority": 60},
              ready="bridge_watchdog: watching"),
    # The head's base velocity (Unitree's loco service, arm_sdk mode only) and Dex3 hands, through
    # their own safety layer; the bridge's mode, interface and domain, disabled on the robot.
    StackNode("body_bridge",
              sim={"mode": "lowcmd", "autostart": True, "network_interface": "lo"},
              robot={"mode": "arm_sdk", "autostart": False, "network_interface": "eth0", "dds_domain_id": 0},
              ready="body_bridge: mode="),
    StackNode("sim_g1", sim={"network_interface": "lo", "fixed_base": True}, robot=None),
    StackNode("camera_buffer"),
    StackNode("backbone"),
    StackNode("action_head"),
    StackNode("speech_in"),
    StackNode("speech_out"),
)


def node(name: str) -> StackNode:
    """The table's entry for node ``name`` (KeyError if it is not in the stack)."""
    for entry in STACK:
        if entry.name == name:
            return entry
    raise KeyError(f"{name!r} is not a node of the stack ({', '.join(n.name for n in STACK)})")


def robot_nodes() -> tuple[StackNode, ...]:
    """The nodes that run on a real robot, in start order."""
    return tuple(n for n in STACK if n.robot is not None)


def param_text(value: object) -> str:
    """A parameter value as ROS command lines and launch arguments spell it (bools lower-case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
