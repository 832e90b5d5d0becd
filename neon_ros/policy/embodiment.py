"""Embodiments: the robots whose demonstrations train the head, and what each supervises.

Every training sample carries an embodiment id (an ``nn.Embedding`` index in the head).
The G1 is id 0, always. A source fills only the proprioception slots it has (the first
``proprio_joints`` position slots and the same number of velocity slots, masked) and
supervises only the action components it can measure (a loss mask per component and,
for end-effector motion, per arm). Registering a new robot is one ``register`` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neon_ros import g1

# The head's output components (model.ActionHead returns a dict with these keys).
COMPONENTS: tuple[str, ...] = ("joint_delta", "ee", "grip", "loco")
ARMS: tuple[str, ...] = ("left", "right")  # order of the arm axis of "ee" and "grip"
PROPRIO_DIM = 2 * g1.NUM_JOINTS  # G1 joint positions then velocities


@dataclass(frozen=True)
class Embodiment:
    """One robot (or a video-only source) in the training soup."""

    name: str
    id: int  # embedding index; unique; the G1 is 0
    proprio_joints: int  # joints whose position and velocity it reports (0 = none)
    components: frozenset[str]  # action components it can supervise (subset of COMPONENTS)
    arms: tuple[bool, bool]  # which arms (left, right) its end-effector/gripper labels cover
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"embodiment name {self.name!r} must be a non-empty snake_case word")
        if self.id < 0:
            raise ValueError(f"embodiment {self.name}: id must be >= 0, got {self.id}")
        if not 0 <= self.proprio_joints <= g1.NUM_JOINTS:
            raise ValueError(f"embodiment {self.name}: proprio_joints must be in [0, {g1.NUM_JOINTS}], "
                             f"got {self.proprio_joints}")
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"embodiment {self.name}: unknown components {sorted(unknown)}; "
                             f"valid: {', '.join(COMPONENTS)}")
        if len(self.arms) != len(ARMS):
            raise ValueError(f"embodiment {self.name}: arms must be a (left, right) pair of bools")
        if ({"ee", "grip"} & set(self.components)) and not any(self.arms):
            raise ValueError(f"embodiment {self.name}: supervises ee/grip but covers no arm")

    @property
    def proprio_dim(self) -> int:
        """Number of proprioceptive values it provides (positions + velocities)."""
        return 2 * self.proprio_joints

    def supervises(self, component: str) -> bool:
        return component in self.components

    def proprio_mask(self) -> np.ndarray:
        """(PROPRIO_DIM,) float32: 1 where this embodiment fills the proprio slot."""
        mask = np.zeros(PROPRIO_DIM, dtype=np.float32)
        mask[: self.proprio_joints] = 1.0
        mask[g1.NUM_JOINTS: g1.NUM_JOINTS + self.proprio_joints] = 1.0
        return mask

    def pack_proprio(self, q, dq=None) -> tuple[np.ndarray, np.ndarray]:
        """Its joint positions (and velocities, zero-masked if None) -> (vector (58,), mask (58,))."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.size != self.proprio_joints:
            raise ValueError(f"embodiment {self.name} reports {self.proprio_joints} joint positions, got {q.size}")
        vec = np.zeros(PROPRIO_DIM, dtype=np.float64)
        mask = self.proprio_mask()
        vec[: q.size] = q
        if dq is None:
            mask[g1.NUM_JOINTS:] = 0.0
        else:
            dq = np.asarray(dq, dtype=np.float64).reshape(-1)
            if dq.size != self.proprio_joints:
                raise ValueError(f"embodiment {self.name} reports {self.proprio_joints} joint velocities, "
                                 f"got {dq.size}")
            vec[g1.NUM_JOINTS: g1.NUM_JOINTS + dq.size] = dq
        return vec, mask

    def component_masks(self) -> dict[str, np.ndarray]:
        """Loss masks for one sample: joint_delta (29,), ee (2,), grip (2,), loco (1,) as float32."""
        arms = np.asarray(self.arms, dtype=np.float32)
        return {
            "joint_delta": np.full(g1.NUM_JOINTS, float(self.supervises("joint_delta")), np.float32),
            "ee": arms * float(self.supervises("ee")),
            "grip": arms * float(self.supervises("grip")),
            "loco": np.full(1, float(self.supervises("loco")), np.float32),
        }


_REGISTRY: dict[str, Embodiment] = {}


def register(emb: Embodiment) -> Embodiment:
    """Add an embodiment; names and ids must be unique."""
    if emb.name in _REGISTRY:
        raise ValueError(f"embodiment {emb.name!r} is already registered")
    clash = [e.name for e in _REGISTRY.values() if e.id == emb.id]
    if clash:
        raise ValueError(f"embodiment id {emb.id} of {emb.name!r} is already used by {clash[0]!r}")
    _REGISTRY[emb.name] = emb
    return emb


def get(key: str | int) -> Embodiment:
    """An embodiment by name or id; a KeyError lists the registered ones."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        for emb in _REGISTRY.values():
            if emb.id == int(key):
                return emb
    elif isinstance(key, str) and key in _REGISTRY:
        return _REGISTRY[key]
    valid = ", ".join(f"{e.name}={e.id}" for e in all_embodiments())
    raise KeyError(f"unknown embodiment {key!r}; registered: {valid}")


def all_embodiments() -> tuple[Embodiment, ...]:
    return tuple(sorted(_REGISTRY.values(), key=lambda e: e.id))


def names() -> tuple[str, ...]:
    return tuple(e.name for e in all_embodiments())


def num_embodiments() -> int:
    """Embedding rows needed: max id + 1."""
    return max(e.id for e in _REGISTRY.values()) + 1


G1 = register(Embodiment(
    "g1", 0, g1.NUM_JOINTS, frozenset(COMPONENTS), (True, True),
    "Unitree G1 29-DoF humanoid with dexterous hands (the robot Neon drives)"))
register(Embodiment(
    "so100", 1, 6, frozenset({"ee", "grip"}), (False, True),
    "SO-100 / SO-101 5-DoF arm + gripper (LeRobot); one arm, mapped to the right hand"))
register(Embodiment(
    "franka", 2, 7, frozenset({"ee", "grip"}), (False, True),
    "Franka Emika Panda 7-DoF arm + parallel gripper; one arm, mapped to the right hand"))
register(Embodiment(
    "agibot_a2d", 3, 0, frozenset({"ee", "grip", "loco"}), (True, True),
    "AgiBot A2D bimanual mobile manipulator (end-effector poses, grippers, base velocity)"))
register(Embodiment(
    "aloha", 4, 14, frozenset({"ee", "grip"}), (True, True),
    "ALOHA bimanual 6-DoF arms + grippers (joints 0-6 left, 7-13 right, as reported)"))
register(Embodiment(
    "shortarm", 6, 7, frozenset({"ee"}), (False, True),
    "simulated arm of another geometry (neon_ros.data.sim_expert.generate, arm_scale): the G1's right arm "
    "0.85x as long, hand poses in its shoulder frame; one arm, the right hand"))
register(Embodiment(
    "generic", 5, 0, frozenset(), (False, False),
    "video-only source (human or unlabelled video): conditions the head, supervises nothing"))
