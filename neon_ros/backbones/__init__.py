"""Frozen backbones (DESIGN.md section 5): one preset line swaps them.

    from neon_ros.backbones import load_backbone, list_presets
    bb = load_backbone("cpu_default")            # or "qwen2_5_omni_3b", tiny=True in tests
    feats = bb.encode(frames_uint8_THW3, "pick up the red cup", audio=None)  # (bb.width,) float32

Adapters are registered in ``registry.ARCHITECTURES`` and imported lazily.
"""

from neon_ros.backbones.base import (
    AUDIO_SAMPLE_RATE,
    Backbone,
    BackboneConfig,
    MissingWeightsError,
)
from neon_ros.backbones.registry import (
    ARCHITECTURES,
    list_presets,
    load_backbone,
    load_config,
    register_architecture,
)

__all__ = [
    "ARCHITECTURES",
    "AUDIO_SAMPLE_RATE",
    "Backbone",
    "BackboneConfig",
    "MissingWeightsError",
    "list_presets",
    "load_backbone",
    "load_config",
    "register_architecture",
]
