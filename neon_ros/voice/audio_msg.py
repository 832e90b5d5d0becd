"""The utterance audio message on /neon/utterance_audio (contract.TOPIC_UTTERANCE_AUDIO).

Type: std_msgs/Float32MultiArray (a standard type: `ros2 bag`, Foxglove and rqt read it).
Layout: one dimension, ``size = stride = N``, ``data_offset = 0``; ``data`` = N float32
samples in [-1, 1], 16 kHz, mono, the audio of the utterance whose transcript was
published on /neon/instruction at the same time (both latched, so a backbone with an
audio path that starts late still gets the pair). The dimension's label is
``samples_16000hz_mono``, or, when the publisher knows when the utterance ended,
``samples_16000hz_mono;end_ns=<ROS time in ns of its last sample>`` (the message type has
no header; this is its capture time, from which the backbone aligns it with the clips it
belongs to, see neon_ros/runtime/hearing.py).
No rclpy import here (message classes only).
"""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from neon_ros.voice.audio import SAMPLE_RATE

AUDIO_LABEL = f"samples_{SAMPLE_RATE}hz_mono"
END_KEY = ";end_ns="


def audio_to_msg(audio: np.ndarray, end_ns: int | None = None) -> Float32MultiArray:
    """(N,) samples -> message; ``end_ns``: ROS time (ns) the utterance's last sample was captured."""
    a = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
    label = AUDIO_LABEL if end_ns is None else f"{AUDIO_LABEL}{END_KEY}{int(end_ns)}"
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=label, size=int(a.size), stride=int(a.size))]
    msg.layout.data_offset = 0
    msg.data = a  # stored as array.array("f") by the generated setter
    return msg


def msg_end_ns(msg: Float32MultiArray) -> int | None:
    """The capture time (ns) of the utterance's last sample, None when the message carries none."""
    dims = list(msg.layout.dim)
    label = dims[0].label if len(dims) == 1 else ""
    if not label.startswith(AUDIO_LABEL + END_KEY):
        return None
    try:
        return int(label[len(AUDIO_LABEL + END_KEY):])
    except ValueError as exc:
        raise ValueError(f"utterance audio label {label!r}: end_ns is not an integer") from exc


def msg_to_audio(msg: Float32MultiArray) -> np.ndarray:
    """Float32MultiArray of the layout above -> (N,) float32 at 16 kHz; ValueError otherwise."""
    dims = list(msg.layout.dim)
    if len(dims) != 1 or dims[0].label.split(";", 1)[0] != AUDIO_LABEL:
        raise ValueError(f"utterance audio must have one dimension labelled {AUDIO_LABEL!r}")
    data = np.asarray(msg.data, dtype=np.float32)[msg.layout.data_offset:]
    if data.size != dims[0].size:
        raise ValueError(f"utterance audio has {data.size} samples, layout says {dims[0].size}")
    return data
