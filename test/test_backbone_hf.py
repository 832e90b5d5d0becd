"""Tiny random configs of the REAL architectures (Qwen2.5-Omni thinker, Qwen3-VL, V-JEPA2 +
Wav2Vec-BERT 2.0 + Llama), built in-process with their processors and a tiny BPE tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neon_ros.backbones import MissingWeightsError, load_backbone, load_config

ARCH_PRESETS = ["qwen2_5_omni_3b", "cosmos_reason2_2b", "tribe_v2"]
INSTRUCTION = "pick up the red cup"


def moving_clip(t: int, h: int, w: int) -> np.ndarray:
    """A bright square sliding right over a textured background."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
    frames = []
    for i in range(t):
        f = base.copy()
        x = 10 + i * (w - 80) // max(t - 1, 1)
        f[h // 3 : h // 3 + 48, x : x + 48] = (250, 240, 30)
        frames.append(f)
    return np.stack(frames)


def beep(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000.0
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture(scope="module", params=ARCH_PRESETS)
def bb(request):
    return load_backbone(request.param, tiny=True, num_frames=4)  # short clips keep CI fast


def clip_for(bb) -> np.ndarray:
    return moving_clip(bb.num_frames, *bb.frame_size)


def test_end_to_end_deterministic_and_motion_sensitive(bb):
    clip = clip_for(bb)
    audio = beep() if bb.has_audio else None
    f = bb.encode(clip, INSTRUCTION, audio)
    assert f.shape == (bb.width,) and f.dtype == np.float32 and np.all(np.isfinite(f))
    np.testing.assert_array_equal(f, bb.encode(clip, INSTRUCTION, audio))
    rev = bb.encode(clip[::-1].copy(), INSTRUCTION, audio)
    assert np.linalg.norm(rev - f) > 1e-3 * np.linalg.norm(f)
    if bb.has_audio:  # the audio path is used
        assert not np.allclose(f, bb.encode(clip, INSTRUCTION, None))
    assert not np.allclose(f, bb.encode(clip, "wave with the left hand", audio))
    assert bb.backbone_id.endswith("-tiny.L-1")


def test_frozen_under_a_head_training_step(bb):
    assert all(not p.requires_grad for p in bb.parameters())
    assert all(not m.training for mod in bb.torch_modules() for m in mod.modules())
    before = [p.detach().clone() for p in bb.parameters()]
    head = torch.nn.Sequential(torch.nn.Linear(bb.width, 16), torch.nn.GELU(), torch.nn.Linear(16, 29))
    opt = torch.optim.AdamW([*head.parameters(), *bb.parameters()], lr=1e-2)
    clip = clip_for(bb)
    feats = torch.from_numpy(np.stack([bb.encode(clip, INSTRUCTION), bb.encode(clip[::-1].copy(), INSTRUCTION)]))
    loss = head(feats).pow(2).mean()
    loss.backward()
    opt.step()
    assert head[0].weight.grad is not None
    for b, p in zip(before, bb.parameters(), strict=True):
        assert torch.equal(b, p)


def test_weights_load_from_a_local_hf_folder(bb, tmp_path):
    """save_pretrained -> load_backbone(weights_dir=...) goes through the real from_pretrained path."""
    bb.save_pretrained(tmp_path)
    loaded = load_backbone(
        bb.config.name, weights_dir=str(tmp_path), dtype="float32", device="cpu", width=bb.width, num_frames=4
    )
    assert not loaded.config.tiny
    clip = clip_for(bb)
    audio = beep() if bb.has_audio else None
    np.testing.assert_allclose(loaded.encode(clip, INSTRUCTION, audio), bb.encode(clip, INSTRUCTION, audio),
                               rtol=1e-4, atol=1e-5)


def test_generate_text_where_supported(bb):
    if not bb.can_generate:
        with pytest.raises(NotImplementedError, match="cannot generate"):
            bb.generate_text(clip_for(bb), "what do you see?")
        return
    text = bb.generate_text(clip_for(bb), "what do you see?", max_new_tokens=4)
    assert isinstance(text, str)


@pytest.mark.parametrize("preset", ["qwen2_5_omni_3b", "qwen2_5_omni_7b", "cosmos_reason2_2b", "cosmos_reason2_8b", "tribe_v2"])
def test_missing_weights_dir_is_explained(preset, tmp_path, monkeypatch):
    monkeypatch.setenv("NEON_MODELS", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        load_backbone(preset, device="cpu", dtype="float32")
    msg = str(err.value)
    cfg = load_config(preset)
    folder = cfg.model or next(iter(cfg.components.values()))
    assert preset in msg and str(tmp_path / folder) in msg and "NEON_MODELS" in msg and "never downloads" in msg


def test_wrong_frame_size_and_empty_clip():
    bb = load_backbone("cosmos_reason2_2b", tiny=True)
    h, w = bb.frame_size
    with pytest.raises(ValueError, match=f"expects {h}x{w}"):
        bb.encode(np.zeros((bb.num_frames, h + 4, w, 3), np.uint8), INSTRUCTION)
    with pytest.raises(ValueError, match="empty clip"):
        bb.encode(np.zeros((0, h, w, 3), np.uint8), INSTRUCTION)
    with pytest.raises(ValueError, match="uint8"):
        bb.encode(np.zeros((2, h, w, 3), np.float64), INSTRUCTION)
    # the video layout equals the model's own image processor on a static clip (temporal patch = 2 same frames)
    frame = moving_clip(1, h, w)[0]
    video = bb.processor.video_processor([np.stack([frame, frame])])
    image = bb.processor.image_processor(images=[frame], return_tensors="np")
    np.testing.assert_allclose(video["pixel_values_videos"].numpy(), image["pixel_values"], rtol=1e-5, atol=1e-5)
    assert video["video_grid_thw"].tolist() == image["image_grid_thw"].tolist()


def test_tribe_modality_dropout_and_missing_modalities():
    from neon_ros.backbones.tribe import fused_slices, modality_dropout

    cfg = load_config("tribe_v2")
    slices = fused_slices(cfg)
    assert sum(s.stop - s.start for s in slices.values()) == cfg.width == 2048
    feats = np.ones((256, cfg.width), np.float32)
    out = modality_dropout(feats, slices, {"video": 0.5, "audio": 0.5, "text": 0.5}, np.random.default_rng(0))
    kept = np.stack([out[:, s].any(axis=1) for s in slices.values()], axis=1)
    assert kept.any(axis=1).all()  # never everything dropped
    assert 0.3 < 1 - kept[:, 1].mean() < 0.7 and np.all(feats == 1)  # ~p dropped, input untouched
    t = modality_dropout(torch.ones(8, cfg.width), slices, {"audio": 1.0}, torch.Generator().manual_seed(0))
    assert torch.all(t[:, slices["audio"]] == 0) and torch.all(t[:, slices["video"]] == 1)


def test_int8_dynamic_quantization_stays_close():
    clip = moving_clip(2, 256, 352)
    ref = load_backbone("cosmos_reason2_2b", tiny=True, num_frames=2)
    q8 = load_backbone("cosmos_reason2_2b", tiny=True, num_frames=2, quantization="int8_dynamic")
    a, b = ref.encode(clip, INSTRUCTION), q8.encode(clip, INSTRUCTION)
    assert np.all(np.isfinite(b)) and not np.array_equal(a, b)  # int8 weights really in use
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()


def test_preset_frames_are_not_resized_by_the_processor(bb):
    """The processor's own budget (e.g. Qwen2.5-Omni's 128-token video minimum) keeps preset frames as they are."""
    if not hasattr(bb, "processor"):
        pytest.skip("V-JEPA2 crops by design (shortest edge 292 -> centre 256)")
    batch = bb.inputs(clip_for(bb), INSTRUCTION, None)
    p = bb.processor.video_processor.patch_size
    h, w = bb.frame_size
    assert batch["video_grid_thw"].tolist() == [[-(-bb.num_frames // 2), h // p, w // p]]


def test_pooled_layer_is_configurable(bb):
    clip = clip_for(bb)
    last = bb.encode(clip, INSTRUCTION)
    try:
        bb.config.layer = 1  # the first transformer block's output
        assert bb.backbone_id.endswith(".L1")
        first = bb.encode(clip, INSTRUCTION)
        bb.config.layer = 99
        with pytest.raises(ValueError, match="layer 99 out of range"):
            bb.encode(clip, INSTRUCTION)
    finally:
        bb.config.layer = -1
    assert first.shape == last.shape and not np.allclose(first, last)
