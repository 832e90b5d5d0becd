"""The one training sample every source adapter produces (DESIGN.md section 4 action space).

A :class:`Sample` is one moment ``t`` of one episode: what the robot saw (the last second
of camera video, or the key of its already-cached backbone features), what it was told
(instruction text and/or audio), what it felt (proprioception, masked), and what it did
next (16 future steps of every action component of the head, each with its own loss
mask). Sources fill only the components they really supervise; a zero mask means
"no label here", never "label zero".

Layouts (``S = CHUNK_STEPS = 16``, ``J = NUM_JOINTS = 29``):

- ``proprio`` (58,): joint positions then joint velocities. G1 sources use the 29 G1
  joints in SDK order; other robots put their own joints in the first slots of each half
  (``q[0:n]``, ``dq[29:29+n]``) and the embodiment id tells the head which robot it is.
- ``joint_delta`` (S, J): G1 joint targets minus the current G1 joint positions (rad).
- ``ee`` (S, 2, 9): per arm (0 = left, 1 = right) the hand displacement in its own current
  frame, ``T_rel = T_now^-1 T_future``: translation (m) then the 6D rotation (the first two
  columns of the rotation matrix).
- ``grip`` (S, 2): hand/gripper closure per hand, 0 open .. 1 closed (absolute, not delta).
- ``loco`` (S, 3): base velocity command (vx m/s, vy m/s, yaw rate rad/s).

Masks are per channel and broadcast over the 16 steps: ``joint_mask`` (J,), ``ee_mask``
(2,), ``grip_mask`` (2,), ``loco_mask`` (1,), ``proprio_mask`` (58,).

``pair_key`` marks an auxiliary consistency pair (stereo views, spoken vs written
instruction): the head must act the same on both sample's features (see
:mod:`neon_ros.policy.train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neon_ros.contract import CHUNK_STEPS
from neon_ros.errors import NeonError
from neon_ros.g1 import NUM_JOINTS
from neon_ros.policy import embodiment

PROPRIO_DIM = embodiment.PROPRIO_DIM  # q then dq (58)
EE_DIM = 9  # translation (3) + 6D rotation (6)
# What an "ee" label is: "hand" = relative actions T_now^-1 T_future (the default, DESIGN.md section 4);
# "base" = absolute poses T_future in the robot's base frame (only to measure what relative buys)
EE_FRAMES = ("hand", "base")
NUM_HANDS = len(embodiment.ARMS)  # 0 = left, 1 = right
LOCO_DIM = 3  # vx, vy, yaw rate
COMPONENTS = embodiment.COMPONENTS  # ("joint_delta", "ee", "grip", "loco"), the head's outputs

# Target array shapes and mask shapes per component (the mask broadcasts over steps).
TARGET_SHAPES: dict[str, tuple[int, ...]] = {
    "joint_delta": (CHUNK_STEPS, NUM_JOINTS),
    "ee": (CHUNK_STEPS, NUM_HANDS, EE_DIM),
    "grip": (CHUNK_STEPS, NUM_HANDS),
    "loco": (CHUNK_STEPS, LOCO_DIM),
}
MASK_SHAPES: dict[str, tuple[int, ...]] = {
    "joint_delta": (NUM_JOINTS,),
    "ee": (NUM_HANDS,),
    "grip": (NUM_HANDS,),
    "loco": (1,),
}
# The identity rotation in the 6D representation (first two columns of I), hold-still ee.
IDENTITY_6D = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=np.float32)


def empty_targets() -> dict[str, np.ndarray]:
    """Hold-still targets for every component (zero deltas, identity displacement)."""
    t = {name: np.zeros(shape, np.float32) for name, shape in TARGET_SHAPES.items()}
    t["ee"][..., 3:] = IDENTITY_6D
    return t


def empty_masks() -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, np.float32) for name, shape in MASK_SHAPES.items()}


@dataclass
class Sample:
    """One training moment. Field layouts are in the module docstring.

    sample_id: unique and stable across runs: ``SOURCE/EPISODE/FRAME``; the feature-cache key.
    source: name of the soup source it came from (weights and the mixture report use it).
    embodiment: robot name in the head's embodiment registry (``g1``, ``franka``, ``so100``...).
    instruction: written instruction ("" when the sample has only audio).
    frames: (T, H, W, 3) uint8, the last second of the camera, oldest first; ``None`` once
        the features are cached (training never loads video).
    audio: (N,) float32 mono at ``audio_rate`` Hz, a spoken instruction; ``None`` if absent.
    proprio, proprio_mask: (58,) float32.
    targets: component name -> array of TARGET_SHAPES; masks: name -> array of MASK_SHAPES.
    pair_key: sample_id of the consistency partner, or ``None``.
    episode: episode id within the source (held-out splits are by episode).
    """

    sample_id: str
    source: str
    embodiment: str
    instruction: str
    frames: np.ndarray | None
    proprio: np.ndarray
    proprio_mask: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=empty_targets)
    masks: dict[str, np.ndarray] = field(default_factory=empty_masks)
    audio: np.ndarray | None = None
    audio_rate: int = 16000
    pair_key: str | None = None
    episode: str = ""

    def __post_init__(self) -> None:
        if not self.sample_id or "\n" in self.sample_id:
            raise ValueError(f"sample_id must be a non-empty single line, got {self.sample_id!r}")
        if self.frames is not None:
            f = np.asarray(self.frames)
            if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
                raise ValueError(f"{self.sample_id}: frames must be (T,H,W,3) uint8, got {f.shape} {f.dtype}")
        for name, arr, shape in (("proprio", self.proprio, (PROPRIO_DIM,)),
                                 ("proprio_mask", self.proprio_mask, (PROPRIO_DIM,))):
            if np.shape(arr) != shape:
                raise ValueError(f"{self.sample_id}: {name} must have shape {shape}, got {np.shape(arr)}")
        for name in COMPONENTS:
            if np.shape(self.targets[name]) != TARGET_SHAPES[name]:
                raise ValueError(f"{self.sample_id}: target {name} must be {TARGET_SHAPES[name]}, "
                                 f"got {np.shape(self.targets[name])}")
            if np.shape(self.masks[name]) != MASK_SHAPES[name]:
                raise ValueError(f"{self.sample_id}: mask {name} must be {MASK_SHAPES[name]}, "
                                 f"got {np.shape(self.masks[name])}")
            if not np.all(np.isfinite(self.targets[name])):
                raise ValueError(f"{self.sample_id}: target {name} has non-finite values")
        if not np.all(np.isfinite(self.proprio)):
            raise ValueError(f"{self.sample_id}: proprio has non-finite values")
        if self.audio is not None and np.asarray(self.audio).ndim != 1:
            raise ValueError(f"{self.sample_id}: audio must be mono (N,), got {np.shape(self.audio)}")

    def supervised(self) -> list[str]:
        """Names of the action components this sample has any label for."""
        return [n for n in COMPONENTS if float(np.sum(self.masks[n])) > 0]


class CorruptEpisodeError(NeonError, RuntimeError):
    """An episode's files cannot be read; the message names the file. The soup skips it."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
