"""Open-loop action error on held-out samples, per component, against the hold-still baseline.

Errors are in physical units over supervised elements only: joint deltas in rad (mean
absolute error), hand translation in m and hand rotation in rad (geodesic angle) of the
relative end-effector motion, grip closure (0..1), locomotion (mean absolute error).
The hold-still baseline predicts no motion: zero deltas, identity displacement, the
current closure, zero velocity. ``ratio`` = head error / baseline error (lower is better).
"""

from __future__ import annotations

import numpy as np
import torch

from neon_ros.policy import actions, embodiment
from neon_ros.policy.schema import COMPONENTS, IDENTITY_6D


def predict_physical(model, split, stats, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """De-normalised predictions for every row of ``split``."""
    model.eval()
    outs: dict[str, list] = {c: [] for c in COMPONENTS}
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            b = split.batch(np.arange(start, min(start + batch_size, len(split))))
            pred = model(b["features"], b["proprio"], b["proprio_mask"], b["embodiment"])
            for c in COMPONENTS:
                outs[c].append(pred[c].numpy().astype(np.float64))
    phys = {c: np.concatenate(v) for c, v in outs.items()}
    emb = split.embodiment.numpy()
    for e in np.unique(emb):
        rows = emb == e
        name = embodiment.get(int(e)).name
        for c in COMPONENTS:
            phys[c][rows] = stats.denormalize(c, phys[c][rows], name)
    return phys


def _masked_mean(err: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    mask = np.broadcast_to(mask, err.shape)
    n = int(mask.sum())
    return (float((err * mask).sum() / n) if n else float("nan")), n


def open_loop_errors(model, split, stats) -> dict[str, dict]:
    pred = predict_physical(model, split, stats)
    tgt = split.raw_targets
    m = {c: split.masks[c].numpy() for c in COMPONENTS}
    res: dict[str, dict] = {}

    def add(name: str, head_err: np.ndarray, hold_err: np.ndarray, mask: np.ndarray, unit: str) -> None:
        h, n = _masked_mean(head_err, mask)
        b, _ = _masked_mean(hold_err, mask)
        if n:
            res[name] = {"head_error": round(h, 6), "hold_still_error": round(b, 6),
                         "ratio": round(h / b, 4) if b > 0 else float("nan"), "unit": unit, "samples": n}

    add("joint_delta", np.abs(pred["joint_delta"] - tgt["joint_delta"]), np.abs(tgt["joint_delta"]),
        m["joint_delta"][:, None, :], "rad")
    ee_mask = m["ee"][:, None, :]
    add("ee_translation", np.linalg.norm(pred["ee"][..., :3] - tgt["ee"][..., :3], axis=-1),
        np.linalg.norm(tgt["ee"][..., :3], axis=-1), ee_mask, "m")
    r_pred = actions.matrix_from_rot6d(pred["ee"][..., 3:])
    r_true = actions.matrix_from_rot6d(tgt["ee"][..., 3:])
    r_hold = actions.matrix_from_rot6d(np.broadcast_to(IDENTITY_6D, tgt["ee"][..., 3:].shape))
    angle = actions.rotation_angle(np.swapaxes(r_pred, -1, -2) @ r_true)
    add("ee_rotation", angle, actions.rotation_angle(np.swapaxes(r_hold, -1, -2) @ r_true), ee_mask, "rad")
    add("grip", np.abs(np.clip(pred["grip"], 0, 1) - tgt["grip"]), np.abs(tgt["grip"] - tgt["grip"][:, :1]),
        m["grip"][:, None, :], "closure")
    add("loco", np.abs(pred["loco"] - tgt["loco"]), np.abs(tgt["loco"]), m["loco"][:, None, :], "m/s, rad/s")
    return res
