"""The utterance audio message on /neon/utterance_audio (contract.TOPIC_UTTERANCE_AUDIO).

Type: std_msgs/Float32MultiArray (a standard type: `ros2 bag`, Foxglove and rqt read it).
Layout: one dimension, ``label = "samples_16000hz_mono"``, ``size = stride = N``,
``data_offset = 0``; ``data`` = N float32 samples in [-1, 1], 16 kHz, mono, the audio of
the utterance whose transcript was published on /neon/instruction at the same time (both
latched, so a backbone with an audio path that starts late still gets the pair).
No rclpy import here (message classes only).
"""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from neon_ros.voice.audio import SAMPLE_RATE

AUDIO_LABEL = f"samples_{SAMPLE_RATE}hz_mono"


def audio_to_msg(audio: np.ndarray) -> Float32MultiArray:
    a = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=AUDIO_LABEL, size=int(a.size), stride=int(a.size))]
    msg.layout.data_offset = 0
    msg.data = a  # stored as array.array("f") by the generated setter
    return msg


def msg_to_audio(msg: Float32MultiArray) -> np.ndarray:
    """Float32MultiArray of the layout above -> (N,) float32 at 16 kHz; ValueError otherwise."""
    dims = list(msg.layout.dim)
    if len(dims) != 1 or dims[0].label != AUDIO_LABEL:
        raise ValueError(f"utterance audio must have one dimension labelled {AUDIO_LABEL!r}")
    data = np.asarray(msg.data, dtype=np.float32)[msg.layout.data_offset:]
    if data.size != dims[0].size:
        raise ValueError(f"utterance audio has {data.size} samples, layout says {dims[0].size}")
    return data
