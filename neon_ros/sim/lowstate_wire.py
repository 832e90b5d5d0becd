"""A fast writer of unitree_hg LowState_ for the 500 Hz simulator loop.

The generic cyclonedds serializer walks LowState_'s 35 nested motor structs in Python
(~0.4 ms per message) and the SDK's CRC packs them again with ``struct`` (~0.2 ms); at
500 Hz that alone would take a third of a core. Here the message lives in two numpy
records with fixed layouts, filled with vector assignments:

- ``C_DTYPE``: the C struct layout the robot's CRC is computed over (the SDK's
  ``__packFmtHGLowState``); its 32-bit words minus the last go to the SDK's own CRC routine.
- ``CDR_DTYPE``: the XCDR1 little-endian wire layout cyclonedds produces for LowState_
  (natural alignment counted after the 4-byte encapsulation header).

``LowStateWire.message()`` returns a real ``LowState_`` whose ``serialize`` yields these
bytes, so ``ChannelPublisher.Write`` sends it unchanged. test/test_sim_firmware.py checks
the bytes and the CRC against cyclonedds' serializer and the SDK's CRC on random values.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from neon_ros import g1, unitree

_MOTORS = 35


def _motor_fields(prefix_pad: int) -> list[tuple]:
    return [("mode", "u1"), ("_pad", f"V{prefix_pad}"), ("q", "<f4"), ("dq", "<f4"), ("ddq", "<f4"),
            ("tau_est", "<f4"), ("temperature", "<i2", (2,)), ("vol", "<f4"), ("sensor", "<u4", (2,)),
            ("motorstate", "<u4"), ("reserve", "<u4", (4,))]


_MOTOR_C = np.dtype(_motor_fields(3))  # 56 bytes, 4-aligned like the C struct
_IMU = [("quaternion", "<f4", (4,)), ("gyroscope", "<f4", (3,)), ("accelerometer", "<f4", (3,)),
        ("rpy", "<f4", (3,)), ("temperature", "<i2")]

# '<2I2B2xI' + '13fh2x' + 'B3x4f2hf7I' * 35 + '40B5I'
C_DTYPE = np.dtype([("version", "<u4", (2,)), ("mode_pr", "u1"), ("mode_machine", "u1"), ("_pad0", "V2"),
                    ("tick", "<u4"), ("imu", _IMU), ("_pad1", "V2"), ("motor", _MOTOR_C, (_MOTORS,)),
                    ("wireless_remote", "u1", (40,)), ("reserve", "<u4", (4,)), ("crc", "<u4")])

# XCDR1 body (after the 4-byte header): the imu ends at offset 70, so motor 0's mode sits
# at 70 with one pad byte before its floats; motors 1..34 start 4-aligned (3 pad bytes).
_MOTOR0_CDR = np.dtype(_motor_fields(1))
CDR_DTYPE = np.dtype([("version", "<u4", (2,)), ("mode_pr", "u1"), ("mode_machine", "u1"), ("_pad0", "V2"),
                      ("tick", "<u4"), ("imu", _IMU), ("motor0", _MOTOR0_CDR),
                      ("motor", _MOTOR_C, (_MOTORS - 1,)),
                      ("wireless_remote", "u1", (40,)), ("reserve", "<u4", (4,)), ("crc", "<u4")])
CDR_HEADER = b"\x00\x01\x00\x00"  # XCDR1 (CDR_LE), options 0

assert C_DTYPE.itemsize == 2092, C_DTYPE.itemsize  # the SDK's "size 2092"
assert CDR_DTYPE.itemsize % 4 == 0


def _crc_routine():
    """The SDK's native crc32_core (unitree_sdk2py.utils.crc.CRC().crc_lib), or None off Linux."""
    crc = unitree.sdk("utils.crc").CRC()
    return getattr(crc, "crc_lib", None)


class LowStateWire:
    """One reusable LowState_: fill from arrays, CRC it, hand it to the SDK publisher."""

    _MOTOR_KEYS = ("mode", "q", "dq", "tau_est")

    def __init__(self) -> None:
        self.c = np.zeros((), dtype=C_DTYPE)
        self.cdr = np.zeros((), dtype=CDR_DTYPE)
        self._words = self.c.reshape(1).view("<u4")[: C_DTYPE.itemsize // 4 - 1]
        self._lib = _crc_routine()
        self._msg = unitree.new_lowstate()
        self._bytes = b""
        self._msg.serialize = self._serialize  # ChannelPublisher.Write -> DataWriter.write -> here

    def fill(self, q: np.ndarray, dq: np.ndarray, tau: np.ndarray, imu: dict[str, np.ndarray], tick: int,
             mode_machine: int, enabled: np.ndarray | None = None) -> int:
        """Set the 29 motor states, the IMU, tick and mode_machine; compute the CRC; return it."""
        c = self.c
        c["mode_machine"] = mode_machine
        c["tick"] = int(tick) & 0xFFFFFFFF
        imu_rec = c["imu"]
        for key in ("quaternion", "gyroscope", "accelerometer", "rpy"):
            imu_rec[key] = imu[key]
        m = c["motor"]
        n = g1.NUM_JOINTS
        m["mode"][:n] = 1 if enabled is None else np.asarray(enabled, dtype=np.uint8)
        m["q"][:n] = q
        m["dq"][:n] = dq
        m["tau_est"][:n] = tau
        c["crc"] = self._crc()
        self._to_cdr()
        return int(c["crc"])

    def _crc(self) -> int:
        if self._lib is None:  # pragma: no cover - non-Linux: the SDK's own (slow) path
            return unitree.crc32(self.message())
        words = np.ascontiguousarray(self._words)
        ptr = words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        return int(self._lib.crc32_core(ptr, ctypes.c_uint32(words.size)))

    def _to_cdr(self) -> None:
        c, d = self.c, self.cdr
        for key in ("version", "mode_pr", "mode_machine", "tick", "imu", "wireless_remote", "reserve", "crc"):
            d[key] = c[key]
        d["motor0"] = c["motor"][0]
        d["motor"] = c["motor"][1:]
        self._bytes = CDR_HEADER + self.cdr.tobytes()

    def _serialize(self, use_version_2: bool | None = None, **_: Any) -> bytes:
        if use_version_2:
            raise ValueError("LowStateWire writes XCDR1 only (the SDK's default for LowState_)")
        return self._bytes

    def message(self) -> Any:
        """A LowState_ holding the same values (fields synced on demand; serializes to the fast bytes)."""
        msg, c = self._msg, self.c
        msg.version = [int(v) for v in c["version"]]
        msg.mode_pr, msg.mode_machine, msg.tick = int(c["mode_pr"]), int(c["mode_machine"]), int(c["tick"])
        for key in ("quaternion", "gyroscope", "accelerometer", "rpy"):
            setattr(msg.imu_state, key, [float(v) for v in c["imu"][key]])
        for i in range(_MOTORS):
            src, dst = c["motor"][i], msg.motor_state[i]
            dst.mode = int(src["mode"])
            for key in ("q", "dq", "ddq", "tau_est", "vol"):
                setattr(dst, key, float(src[key]))
        msg.crc = int(c["crc"])
        return msg

    @property
    def wire(self) -> Any:
        """The LowState_ to pass to ``ChannelPublisher.Write`` (its bytes are this object's)."""
        return self._msg
