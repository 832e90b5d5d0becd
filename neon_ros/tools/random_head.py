"""A head checkpoint with random weights, for node tests and the stack benchmark.

Saved with the head's own checkpoint API (``neon_ros.runtime.checkpoint.save``), with
normalisation statistics of plausible G1 motion (standing pose, small deltas), so the
action_head node runs it exactly as it runs a trained one. Never for a real robot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_random_checkpoint(path: str | Path, feature_dim: int, backbone_id: str, d_model: int = 128,
                           layers: int = 2, seed: int = 0, delta_std: float = 0.05) -> Path:
    """Write a random-weight head for ``backbone_id`` features of width ``feature_dim``; returns the JSON path."""
    import torch

    from neon_ros import g1
    from neon_ros.policy.actions import NormStats
    from neon_ros.policy.model import ActionHead, HeadConfig
    from neon_ros.runtime import checkpoint

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = HeadConfig(feature_dim=int(feature_dim), d_model=int(d_model), layers=int(layers))
    model = ActionHead(cfg)
    n = 64
    stats = NormStats()
    q = g1.STANDING_POSE + 0.05 * rng.standard_normal((n, g1.NUM_JOINTS))
    stats.update("proprio", np.concatenate([q, 0.1 * rng.standard_normal((n, g1.NUM_JOINTS))], 1), "g1")
    k = cfg.chunk
    ramp = np.linspace(0.0, 1.0, k)[None, :, None]
    stats.update("joint_delta", delta_std * ramp * rng.standard_normal((n, 1, g1.NUM_JOINTS)), "g1")
    stats.update("ee", 0.02 * rng.standard_normal((n, k, cfg.arms, 9)), "g1")
    stats.update("grip", rng.uniform(0.0, 1.0, (n, k, cfg.arms)), "g1")
    stats.update("loco", 0.05 * rng.standard_normal((n, k, cfg.loco_dim)), "g1")
    return checkpoint.save(path, model, backbone_id=backbone_id, stats=stats, extra={"random_weights": True})
