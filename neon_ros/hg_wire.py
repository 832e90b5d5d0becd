"""unitree_hg LowState_ and LowCmd_ on the wire at 500 Hz, without Python walking 35 structs.

The generic cyclonedds (de)serializer walks the 35 nested motor structs in Python (~0.3 ms
per message each way) and the SDK's CRC packs them again with ``struct`` (~0.2 ms); at
500 Hz, one message each way costs the bridge (or the simulator) half a core. Here each
message lives in numpy records with fixed layouts, filled and read with vector operations:

- ``*_C_DTYPE``: the C struct layout the robot's CRC is computed over (the SDK's
  ``__packFmtHGLowState`` / ``__packFmtHGLowCmd``); its 32-bit words minus the last go to
  the SDK's own native CRC routine.
- ``*_CDR_DTYPE``: the XCDR1 little-endian wire layout cyclonedds produces (natural
  alignment counted after the 4-byte encapsulation header).

Writing: ``LowStateWire`` (simulator) and ``LowCmdWire`` (bridge, watchdog) hold one real SDK
message whose ``serialize`` returns their bytes, so ``ChannelPublisher.Write`` sends them
unchanged. Reading: ``NewestReader`` takes the raw samples of a topic (history depth 1: the
newest wins) from the caller's own thread, and ``decode_lowstate`` / ``decode_lowcmd`` turn
the bytes into arrays and check the CRC; bytes in any other encoding go through the SDK's
deserializer (slow, same result). test/test_hg_wire.py checks bytes and CRCs against
cyclonedds and the SDK on random values.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neon_ros import g1, unitree

_MOTORS = 35
CDR_HEADER = b"\x00\x01\x00\x00"  # XCDR1 (CDR_LE), options 0


def _motor_state_fields(prefix_pad: int) -> list[tuple]:
    return [("mode", "u1"), ("_pad", f"V{prefix_pad}"), ("q", "<f4"), ("dq", "<f4"), ("ddq", "<f4"),
            ("tau_est", "<f4"), ("temperature", "<i2", (2,)), ("vol", "<f4"), ("sensor", "<u4", (2,)),
            ("motorstate", "<u4"), ("reserve", "<u4", (4,))]


def _motor_cmd_fields(prefix_pad: int) -> list[tuple]:
    return [("mode", "u1"), ("_pad", f"V{prefix_pad}"), ("q", "<f4"), ("dq", "<f4"), ("tau", "<f4"),
            ("kp", "<f4"), ("kd", "<f4"), ("reserve", "<u4")]


# --- LowState_ -------------------------------------------------------------------------------
_MOTOR_STATE_C = np.dtype(_motor_state_fields(3))  # 56 bytes, 4-aligned like the C struct
_IMU = [("quaternion", "<f4", (4,)), ("gyroscope", "<f4", (3,)), ("accelerometer", "<f4", (3,)),
        ("rpy", "<f4", (3,)), ("temperature", "<i2")]
_IMU_VECTORS = ("quaternion", "gyroscope", "accelerometer", "rpy")

# '<2I2B2xI' + '13fh2x' + 'B3x4f2hf7I' * 35 + '40B5I'
LOWSTATE_C_DTYPE = np.dtype([
    ("version", "<u4", (2,)), ("mode_pr", "u1"), ("mode_machine", "u1"), ("_pad0", "V2"), ("tick", "<u4"),
    ("imu", _IMU), ("_pad1", "V2"), ("motor", _MOTOR_STATE_C, (_MOTORS,)),
    ("wireless_remote", "u1", (40,)), ("reserve", "<u4", (4,)), ("crc", "<u4")])

# XCDR1 body (after the 4-byte header): the imu ends at offset 70, so motor 0's mode sits
# at 70 with one pad byte before its floats; motors 1..34 start 4-aligned (3 pad bytes).
LOWSTATE_CDR_DTYPE = np.dtype([
    ("version", "<u4", (2,)), ("mode_pr", "u1"), ("mode_machine", "u1"), ("_pad0", "V2"), ("tick", "<u4"),
    ("imu", _IMU), ("motor0", np.dtype(_motor_state_fields(1))), ("motor", _MOTOR_STATE_C, (_MOTORS - 1,)),
    ("wireless_remote", "u1", (40,)), ("reserve", "<u4", (4,)), ("crc", "<u4")])

# --- LowCmd_ ---------------------------------------------------------------------------------
_MOTOR_CMD_C = np.dtype(_motor_cmd_fields(3))  # 28 bytes

# '<2B2x' + 'B3x5fI' * 35 + '5I'
LOWCMD_C_DTYPE = np.dtype([("mode_pr", "u1"), ("mode_machine", "u1"), ("_pad0", "V2"),
                           ("motor", _MOTOR_CMD_C, (_MOTORS,)), ("reserve", "<u4", (4,)), ("crc", "<u4")])

# XCDR1 body: motor 0's mode at offset 2, one pad byte, then its floats 4-aligned.
LOWCMD_CDR_DTYPE = np.dtype([("mode_pr", "u1"), ("mode_machine", "u1"),
                             ("motor0", np.dtype(_motor_cmd_fields(1))), ("motor", _MOTOR_CMD_C, (_MOTORS - 1,)),
                             ("reserve", "<u4", (4,)), ("crc", "<u4")])

_SIZES = {LOWSTATE_C_DTYPE: 2092, LOWCMD_C_DTYPE: 1004}  # the SDK's packed sizes


@dataclass(frozen=True)
class _Kind:
    """One message kind: its two layouts and the fields its SDK message shares with them."""

    c: np.dtype
    cdr: np.dtype
    motors: str  # the SDK message's array of motor structs
    header: tuple[str, ...]  # integer fields outside the motors (the crc among them)
    fields: tuple[str, ...]  # float fields of a motor (besides its integer mode)


_LOWSTATE = _Kind(LOWSTATE_C_DTYPE, LOWSTATE_CDR_DTYPE, "motor_state", ("mode_pr", "mode_machine", "tick", "crc"),
                  ("q", "dq", "ddq", "tau_est", "vol"))
_LOWCMD = _Kind(LOWCMD_C_DTYPE, LOWCMD_CDR_DTYPE, "motor_cmd", ("mode_pr", "mode_machine", "crc"),
                ("q", "dq", "tau", "kp", "kd"))


def _to_message(kind: _Kind, c: np.ndarray, msg: Any) -> Any:
    """The C record's values into the SDK message (the slow, field-by-field direction)."""
    for key in kind.header:
        setattr(msg, key, int(c[key]))
    motors = getattr(msg, kind.motors)
    for i in range(_MOTORS):
        src, dst = c["motor"][i], motors[i]
        dst.mode = int(src["mode"])
        for key in kind.fields:
            setattr(dst, key, float(src[key]))
    return msg


def _from_message(kind: _Kind, msg: Any, c: np.ndarray) -> None:
    """An SDK message's values into the C record."""
    for key in kind.header:
        c[key] = getattr(msg, key)
    motors = getattr(msg, kind.motors)
    for key in ("mode", *kind.fields):
        c["motor"][key] = [getattr(motors[i], key) for i in range(_MOTORS)]


def _put_joints(motor: np.ndarray, enabled: np.ndarray | None, **fields: np.ndarray) -> None:
    """The 29 joints' motor mode (1, or 0 where ``enabled`` is False) and ``fields``."""
    n = g1.NUM_JOINTS
    motor["mode"][:n] = 1 if enabled is None else np.asarray(enabled, dtype=np.uint8)
    for key, values in fields.items():
        motor[key][:n] = values


def _crc_routine():
    """The SDK's native crc32_core (unitree_sdk2py.utils.crc.CRC().crc_lib), or None off Linux."""
    crc = unitree.sdk("utils.crc").CRC()
    return getattr(crc, "crc_lib", None)


class _Crc:
    """CRC of a C-layout record: its 32-bit words minus the last (the crc field itself)."""

    def __init__(self, record: np.ndarray):
        if record.dtype.itemsize != _SIZES.get(record.dtype):
            raise AssertionError(f"C layout is {record.dtype.itemsize} bytes, the SDK packs {_SIZES.get(record.dtype)}")
        self._words = record.reshape(1).view("<u4")[: record.dtype.itemsize // 4 - 1]
        self._ptr = self._words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        self._n = ctypes.c_uint32(self._words.size)
        self._lib = _crc_routine()

    @property
    def native(self) -> bool:
        return self._lib is not None

    def __call__(self) -> int:
        return int(self._lib.crc32_core(self._ptr, self._n))


def _c_to_cdr(c: np.ndarray, d: np.ndarray) -> None:
    for key in d.dtype.names:
        if key == "motor0":
            d["motor0"] = c["motor"][0]
        elif key == "motor":
            d["motor"] = c["motor"][1:]
        elif not key.startswith("_pad"):
            d[key] = c[key]


def _cdr_to_c(d: np.ndarray, c: np.ndarray) -> None:
    for key in d.dtype.names:
        if key == "motor0":
            c["motor"][0] = d["motor0"]
        elif key == "motor":
            c["motor"][1:] = d["motor"]
        elif not key.startswith("_pad"):
            c[key] = d[key]


class _Wire:
    """One reusable SDK message whose ``serialize`` returns this object's XCDR1 bytes."""

    KIND: _Kind

    def __init__(self, message: Any):
        self.c = np.zeros((), dtype=self.KIND.c)
        self.cdr = np.zeros((), dtype=self.KIND.cdr)
        self._crc = _Crc(self.c)
        self._msg = message
        self._bytes = b""
        self._msg.serialize = self._serialize  # ChannelPublisher.Write -> DataWriter.write -> here

    def _seal(self) -> int:
        """CRC over the C layout, then the wire bytes; returns the CRC."""
        if self._crc.native:
            self.c["crc"] = self._crc()
        else:  # pragma: no cover - non-Linux: the SDK's own (slow) path
            self.c["crc"] = unitree.crc32(self.message())
        _c_to_cdr(self.c, self.cdr)
        self._bytes = CDR_HEADER + self.cdr.tobytes()
        return int(self.c["crc"])

    def _serialize(self, use_version_2: bool | None = None, **_: Any) -> bytes:
        if use_version_2:
            raise ValueError(f"{type(self).__name__} writes XCDR1 only (the SDK's default for unitree_hg)")
        return self._bytes

    @property
    def wire(self) -> Any:
        """The SDK message to pass to ``ChannelPublisher.Write`` (its bytes are this object's)."""
        return self._msg

    def message(self) -> Any:
        """The SDK message with the same values (fields synced on demand; serializes to the fast bytes)."""
        return _to_message(self.KIND, self.c, self._msg)


class LowStateWire(_Wire):
    """One reusable LowState_: fill from arrays, CRC it, hand it to the SDK publisher."""

    KIND = _LOWSTATE

    def __init__(self) -> None:
        super().__init__(unitree.new_lowstate())

    def fill(self, q: np.ndarray, dq: np.ndarray, tau: np.ndarray, imu: dict[str, np.ndarray], tick: int,
             mode_machine: int, enabled: np.ndarray | None = None) -> int:
        """Set the 29 motor states, the IMU, tick and mode_machine; compute the CRC; return it."""
        c = self.c
        c["mode_machine"] = mode_machine
        c["tick"] = int(tick) & 0xFFFFFFFF
        for key in _IMU_VECTORS:
            c["imu"][key] = imu[key]
        _put_joints(c["motor"], enabled, q=q, dq=dq, tau_est=tau)
        return self._seal()

    def message(self) -> Any:
        msg, c = super().message(), self.c
        msg.version = [int(v) for v in c["version"]]
        for key in _IMU_VECTORS:
            setattr(msg.imu_state, key, [float(v) for v in c["imu"][key]])
        return msg


class LowCmdWire(_Wire):
    """One reusable LowCmd_ (rt/lowcmd or rt/arm_sdk): fill from arrays, CRC it, write it."""

    KIND = _LOWCMD

    def __init__(self) -> None:
        super().__init__(unitree.new_lowcmd())

    def fill(self, q: np.ndarray, dq: np.ndarray, kp: np.ndarray, kd: np.ndarray, tau: np.ndarray,
             mode_machine: int, enabled: np.ndarray | None = None, weight: float | None = None,
             mode_pr: int = 0) -> int:
        """The 29 joint commands (``enabled[i]`` False: motor mode 0), mode_machine and, for
        rt/arm_sdk, the blend ``weight`` in motor ``g1.ARM_SDK_WEIGHT_INDEX``'s q; returns the CRC."""
        c = self.c
        c["mode_pr"], c["mode_machine"] = mode_pr, mode_machine
        _put_joints(c["motor"], enabled, q=q, dq=dq, kp=kp, kd=kd, tau=tau)
        if weight is not None:
            c["motor"]["q"][g1.ARM_SDK_WEIGHT_INDEX] = weight
        return self._seal()


# --- reading ---------------------------------------------------------------------------------
class _Decoder:
    """Raw sample bytes -> the C record (CRC checked); other encodings via the SDK's deserializer."""

    def __init__(self, kind: _Kind, sdk_type: type):
        self.kind, self._sdk_type = kind, sdk_type
        self.c = np.zeros((), dtype=kind.c)
        self._size = len(CDR_HEADER) + kind.cdr.itemsize
        self._crc = _Crc(self.c)

    def __call__(self, data: bytes) -> bool:
        """Load ``data`` into ``self.c``; True if its CRC is right."""
        if len(data) == self._size and data[:4] == CDR_HEADER and self._crc.native:
            _cdr_to_c(np.frombuffer(data, dtype=self.kind.cdr, count=1, offset=4)[0], self.c)
            return self._crc() == int(self.c["crc"])
        msg = self._sdk_type.deserialize(data)  # XCDR2, big endian, ...: the generic path
        _from_message(self.kind, msg, self.c)
        return unitree.crc_ok(msg)


class LowStateDecoder:
    """LowState_ bytes -> (crc_ok, fields of the 29 joints as float64 arrays, mode_machine, tick)."""

    def __init__(self) -> None:
        self._d = _Decoder(_LOWSTATE, unitree.hg_types()[1])

    def __call__(self, data: bytes) -> tuple[bool, dict[str, Any]]:
        ok = self._d(data)
        c = self._d.c
        m = c["motor"][: g1.NUM_JOINTS]
        return ok, {"q": m["q"].astype(np.float64), "dq": m["dq"].astype(np.float64),
                    "tau_est": m["tau_est"].astype(np.float64), "mode_machine": int(c["mode_machine"]),
                    "tick": int(c["tick"])}


class LowCmdDecoder:
    """LowCmd_ bytes -> (crc_ok, the 29 joints' q, dq, kp, kd, tau (float64), mode, mode_machine,
    and the rt/arm_sdk weight (motor ``g1.ARM_SDK_WEIGHT_INDEX``'s q))."""

    def __init__(self) -> None:
        self._d = _Decoder(_LOWCMD, unitree.hg_types()[0])

    def __call__(self, data: bytes) -> tuple[bool, dict[str, Any]]:
        ok = self._d(data)
        c = self._d.c
        m = c["motor"]
        out = {f: m[f][: g1.NUM_JOINTS].astype(np.float64) for f in ("q", "dq", "kp", "kd", "tau")}
        out["mode"] = m["mode"][: g1.NUM_JOINTS].astype(np.int64)
        out["mode_machine"] = int(c["mode_machine"])
        out["weight"] = float(m["q"][g1.ARM_SDK_WEIGHT_INDEX])
        return ok, out


class NewestReader:
    """Raw samples of one Unitree DDS topic, taken by the caller's own thread (no listener).

    A DataReader with history depth 1 on a participant of the SDK's domain (``unitree.init_channels``
    first): what a poll finds is the newest sample, older ones were replaced in DDS. ``take``
    returns its bytes (or None) without deserializing; decode with ``LowStateDecoder`` /
    ``LowCmdDecoder``. Polling from the control loop replaces a listener thread that would
    compete for the GIL at 500 Hz.
    """

    def __init__(self, topic: str, sdk_type: type, domain_id: int, on_data: Callable[[], None] | None = None):
        """``on_data()`` (optional): called from DDS's listener thread when a sample arrives, to
        ``take`` it there (bytes only: no deserializing in Python per sample)."""
        from cyclonedds._clayer import ddspy_take  # the C layer's take: bytes + sample info
        from cyclonedds.core import Listener, Policy, Qos
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self._take = ddspy_take
        self._participant = DomainParticipant(int(domain_id))
        self._topic = Topic(self._participant, topic, sdk_type)
        qos = Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(1))
        listener = Listener(on_data_available=lambda _reader: on_data()) if on_data is not None else None
        self._reader = DataReader(self._participant, self._topic, qos, listener=listener)
        self._lock = threading.Lock()

    def close(self) -> None:
        """No more ``on_data`` calls (DDS lets one in progress finish first); ``take`` still works.
        A process that stops reading detaches it, so DDS's listener thread does not call into
        Python while the interpreter shuts down."""
        self._reader.set_listener(None)

    def take(self) -> bytes | None:
        """The newest sample's bytes since the last take, or None."""
        with self._lock:
            ret = self._take(self._reader._ref, 1)
        if isinstance(ret, int):
            raise RuntimeError(f"DDS take failed with code {ret}")
        return next((data for data, info in ret if info.valid_data), None)
