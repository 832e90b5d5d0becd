"""The Unitree SDK behind a small interface (unitree_sdk2py, imported only when used).

unitree_hg LowCmd_/LowState_ building, CRC, and DDS channels on rt/lowcmd, rt/lowstate,
rt/arm_sdk; the MotionSwitcher service (which of Unitree's motion modes owns the motors)
and the G1 loco service (base velocity, FSM) as clients and, for the simulator, as
servers; the Dex3-1 hands' HandCmd_. Everything that can be plain arrays
stays plain arrays; only this module touches SDK types, so the bridge and the simulator
share one implementation.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from neon_ros import g1
from neon_ros.errors import UnavailableError

SDK_HINT = ("unitree_sdk2py is not installed: run `make setup` (installs unitree-sdk2py-dimos and "
            "cyclonedds 0.10.2 built against the system Cyclone DDS)")

_initialised: tuple[int, str] | None = None


class SdkMissingError(UnavailableError, ImportError):
    pass


def sdk(module: str = "") -> Any:
    """Import unitree_sdk2py (or a submodule) with a clear message if it is missing."""
    name = "unitree_sdk2py" + (f".{module}" if module else "")
    try:
        return importlib.import_module(name)
    except ImportError as e:  # pragma: no cover - exercised only on machines without the SDK
        raise SdkMissingError(f"{SDK_HINT} ({e})") from e


def init_channels(domain_id: int, network_interface: str | None) -> None:
    """ChannelFactoryInitialize once per process (the SDK's factory is a singleton)."""
    global _initialised
    if _initialised is not None:
        if _initialised != (domain_id, network_interface or ""):
            raise RuntimeError(f"DDS already initialised as {_initialised}, asked for {(domain_id, network_interface)}")
        return
    channel = sdk("core.channel")
    if network_interface:
        channel.ChannelFactoryInitialize(int(domain_id), network_interface)
    else:
        channel.ChannelFactoryInitialize(int(domain_id))
    _initialised = (domain_id, network_interface or "")


def publisher(topic: str, msg_type: type) -> Any:
    pub = sdk("core.channel").ChannelPublisher(topic, msg_type)
    pub.Init()
    return pub


def subscriber(topic: str, msg_type: type, handler=None, queue_len: int = 1) -> Any:
    sub = sdk("core.channel").ChannelSubscriber(topic, msg_type)
    sub.Init(handler, queue_len) if handler is not None else sub.Init()
    return sub


def hg_types() -> tuple[type, type]:
    """(LowCmd_, LowState_) of the unitree_hg IDL (the G1's)."""
    m = sdk("idl.unitree_hg.msg.dds_")
    return m.LowCmd_, m.LowState_


def new_lowcmd() -> Any:
    return sdk("idl.default").unitree_hg_msg_dds__LowCmd_()


def new_lowstate() -> Any:
    return sdk("idl.default").unitree_hg_msg_dds__LowState_()


_crc = None


def crc32(msg: Any) -> int:
    """The CRC the robot checks (unitree_sdk2py.utils.crc.CRC over the packed message)."""
    global _crc
    if _crc is None:
        _crc = sdk("utils.crc").CRC()
    return int(_crc.Crc(msg))


def fill_lowcmd(cmd: Any, q: np.ndarray, dq: np.ndarray, kp: np.ndarray, kd: np.ndarray,
                tau: np.ndarray, mode_machine: int, enabled: np.ndarray | None = None,
                mode_pr: int = 0) -> Any:
    """Write 29 joint commands into an hg LowCmd_ and set its CRC. enabled[i] False -> motor off.

    The SDK's own (slow) path: the reference ``hg_wire.LowCmdWire`` is tested against, and what
    the test peers send."""
    cmd.mode_pr = int(mode_pr)
    cmd.mode_machine = int(mode_machine)
    for i in range(g1.NUM_JOINTS):
        m = cmd.motor_cmd[i]
        m.mode = 1 if enabled is None or enabled[i] else 0
        m.q = float(q[i])
        m.dq = float(dq[i])
        m.kp = float(kp[i])
        m.kd = float(kd[i])
        m.tau = float(tau[i])
    cmd.crc = crc32(cmd)
    return cmd


def lowcmd_arrays(cmd: Any) -> dict[str, np.ndarray]:
    """The 29 joint fields of a LowCmd_ as arrays (for checks and the simulator)."""
    mc = cmd.motor_cmd
    out = {f: np.array([getattr(mc[i], f) for i in range(g1.NUM_JOINTS)], dtype=np.float64)
           for f in ("q", "dq", "kp", "kd", "tau")}
    out["mode"] = np.array([mc[i].mode for i in range(g1.NUM_JOINTS)], dtype=np.int64)
    return out


def crc_ok(msg: Any) -> bool:
    return crc32(msg) == int(msg.crc)


def arm_sdk_weight(cmd: Any) -> float:
    """The rt/arm_sdk blend weight a LowCmd_ carries (motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q), unclipped."""
    return float(cmd.motor_cmd[g1.ARM_SDK_WEIGHT_INDEX].q)


def motion_switcher_client(timeout: float) -> Any:
    """The SDK's MotionSwitcherClient (needs ``init_channels`` first); ``timeout`` s per call.

    ``CheckMode()`` -> (code, {"form": ..., "name": ...}): name "" means no motion mode owns the
    motors; ``ReleaseMode()`` -> (code, None). Code 0 is success, else an SDK RPC error code.
    """
    client = sdk("comm.motion_switcher.motion_switcher_client").MotionSwitcherClient()
    client.SetTimeout(float(timeout))
    client.Init()
    return client


def serve_motion_switcher(check: Callable[[], dict[str, str]], select: Callable[[str], None],
                          release: Callable[[], None]) -> Any:
    """Serve the MotionSwitcher RPCs (CheckMode, SelectMode, ReleaseMode) over the Unitree DDS.

    ``check()`` returns CheckMode's answer; ``select(name)`` raises ValueError for a name it
    refuses (answered with the SDK's parameter error). Returns the running SDK server.
    """
    api = sdk("comm.motion_switcher.motion_switcher_api")
    bad_parameter = sdk("rpc.internal").RPC_ERR_SERVER_API_PARAMETER

    def on_check(_parameter: str) -> tuple[int, str]:
        return 0, json.dumps(check())

    def on_select(parameter: str) -> tuple[int, str]:
        try:
            select(str(json.loads(parameter)["name"]))
        except (ValueError, KeyError, TypeError):
            return bad_parameter, ""
        return 0, ""

    def on_release(_parameter: str) -> tuple[int, str]:
        release()
        return 0, ""

    return _serve_rpc(api.MOTION_SWITCHER_SERVICE_NAME, api.MOTION_SWITCHER_API_VERSION,
                      {api.MOTION_SWITCHER_API_ID_CHECK_MODE: on_check,
                       api.MOTION_SWITCHER_API_ID_SELECT_MODE: on_select,
                       api.MOTION_SWITCHER_API_ID_RELEASE_MODE: on_release})


def _serve_rpc(service: str, version: str, handlers: dict[int, Callable[[str], tuple[int, str]]]) -> Any:
    """A running SDK RPC server for ``service``: API id -> handler(parameter JSON) -> (code, data JSON)."""
    rpc = sdk("rpc.server")

    class Server(rpc.Server):
        def Init(self) -> None:  # noqa: N802 (the SDK's name)
            self._SetApiVersion(version)
            for api_id, handler in handlers.items():
                self._RegistHandler(api_id, handler, False)

    server = Server(service)
    server.Init()
    server.Start(False)
    return server


# --- the G1 loco service (LocoClient, service "sport": rt/api/sport/request|response) -------------

LOCO_FSM_DAMP = 1  # LocoClient.Damp(): SetFsmId(1), every leg and arm motor in damping


def loco_client(timeout: float) -> Any:
    """The SDK's G1 LocoClient (needs ``init_channels`` first); ``timeout`` s per call.

    ``SetVelocity(vx, vy, omega, duration)`` -> code: walk at (vx m/s, vy m/s, omega rad/s) for
    ``duration`` s, then stop; ``SetFsmId(id)`` -> code (LOCO_FSM_DAMP damps). Code 0 is success,
    else an SDK RPC error code (3104: no answer within ``timeout``).
    """
    client = sdk("g1.loco.g1_loco_client").LocoClient()
    client.SetTimeout(float(timeout))
    client.Init()
    return client


def serve_loco(set_velocity: Callable[[float, float, float, float], None], set_fsm: Callable[[int], None]) -> Any:
    """Serve the G1 loco RPCs SetVelocity and SetFsmId over the Unitree DDS (for the simulator).

    ``set_velocity(vx, vy, omega, duration)`` and ``set_fsm(fsm_id)`` raise ValueError for a
    request they refuse (answered with the SDK's parameter error). Returns the running server.
    """
    api = sdk("g1.loco.g1_loco_api")
    bad_parameter = sdk("rpc.internal").RPC_ERR_SERVER_API_PARAMETER

    def on_velocity(parameter: str) -> tuple[int, str]:
        try:
            p = json.loads(parameter)
            vx, vy, omega = (float(v) for v in p["velocity"])
            set_velocity(vx, vy, omega, float(p["duration"]))
        except (ValueError, KeyError, TypeError):
            return bad_parameter, ""
        return 0, ""

    def on_fsm(parameter: str) -> tuple[int, str]:
        try:
            set_fsm(int(json.loads(parameter)["data"]))
        except (ValueError, KeyError, TypeError):
            return bad_parameter, ""
        return 0, ""

    return _serve_rpc(api.LOCO_SERVICE_NAME, api.LOCO_API_VERSION,
                      {api.ROBOT_API_ID_LOCO_SET_VELOCITY: on_velocity, api.ROBOT_API_ID_LOCO_SET_FSM_ID: on_fsm})


# --- Dex3-1 hands (unitree_hg HandCmd_ on rt/dex3/<side>/cmd; the message has no CRC) -------------

def hand_cmd_type() -> type:
    return sdk("idl.unitree_hg.msg.dds_").HandCmd_


def new_hand_cmd() -> Any:
    """A HandCmd_ with the Dex3's 7 motor slots."""
    cmd = sdk("idl.default").unitree_hg_msg_dds__HandCmd_()
    if len(cmd.motor_cmd) != g1.DEX3_MOTORS:
        raise RuntimeError(f"the SDK's HandCmd_ has {len(cmd.motor_cmd)} motors, the Dex3-1 {g1.DEX3_MOTORS}")
    return cmd


def dex3_mode(motor: int, enabled: bool = True) -> int:
    """A Dex3 motor's mode byte: motor id (bits 0-3), status (bits 4-6: 1 = enabled), timeout bit 7 clear."""
    return (int(motor) & 0x0F) | ((1 if enabled else 0) << 4)


def fill_hand_cmd(cmd: Any, q: np.ndarray, kp: float, kd: float) -> Any:
    """Write 7 position targets (rad) with gains kp, kd into a HandCmd_ (dq = tau = 0)."""
    for i in range(g1.DEX3_MOTORS):
        m = cmd.motor_cmd[i]
        m.mode = dex3_mode(i)
        m.q, m.dq, m.tau, m.kp, m.kd = float(q[i]), 0.0, 0.0, float(kp), float(kd)
    return cmd


def hand_cmd_arrays(cmd: Any) -> dict[str, np.ndarray]:
    """The motor fields of a HandCmd_ as arrays (for checks and the simulator)."""
    mc = cmd.motor_cmd
    out = {f: np.array([getattr(m, f) for m in mc], dtype=np.float64) for f in ("q", "dq", "kp", "kd", "tau")}
    out["mode"] = np.array([m.mode for m in mc], dtype=np.int64)
    return out
