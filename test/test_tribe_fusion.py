"""TRIBE v2 head fusion: a trainable cross-modal fusion over the feature cache's modality slices,
modality dropout in the training loop, a head that keeps acting on what is left when a modality
is zeroed, unchanged heads without slices, ONNX parity with the fusion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neon_ros import g1
from neon_ros.data.cache import FeatureCache, Sample, build_cache
from neon_ros.data.labels import LabelWriter
from neon_ros.data.training import load_training_data
from neon_ros.policy import schema
from neon_ros.policy import train as train_mod
from neon_ros.policy.model import ActionHead, HeadConfig
from neon_ros.policy.train import TrainConfig, train
from neon_ros.runtime import checkpoint, onnx_export

SLICES = {"video": (0, 16), "audio": (16, 24), "text": (24, 40)}
WIDTH = 40
VIDEO_JOINTS, TEXT_JOINTS = slice(0, 14), slice(14, 29)  # the synthetic targets: which modality drives which joints


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_data(root, episodes: int = 8, per_episode: int = 40, seed: int = 0):
    """A `neon-ros features` folder of TRIBE-sliced features: video drives joints 0-13, text 14-28,
    audio is noise."""
    rng = np.random.default_rng(seed)
    w_video = rng.normal(size=(14, 16)) / 4
    w_text = rng.normal(size=(15, 16)) / 4
    writer = LabelWriter(root, shard_size=64)
    ids, feats = [], []
    for e in range(episodes):
        for k in range(per_episode):
            f = rng.normal(size=WIDTH).astype(np.float32)
            t, m = schema.empty_targets(), schema.empty_masks()
            drive = np.concatenate([np.tanh(w_video @ f[0:16]), np.tanh(w_text @ f[24:40])])  # (29,)
            t["joint_delta"][:] = np.outer(np.arange(1, 17) / 16, drive)
            m["joint_delta"][:] = 1.0
            sid = f"s/ep{e}/{k:04d}"
            writer.add(schema.Sample(sid, "s", "g1", "do it", None, g1.STANDING_POSE.tolist() + [0.0] * 29,
                                     np.ones(schema.PROPRIO_DIM, np.float32), t, m, episode=f"ep{e}"))
            ids.append(sid)
            feats.append(f)
    writer.close()
    FeatureCache.create(root, "tribe_v2-tiny.L-1", WIDTH, SLICES).write_shard(ids, np.stack(feats))
    return root


def config(data, out, steps: int, **kw) -> TrainConfig:
    base = dict(batch_size=64, warmup=10, d_model=32, layers=1, threads=1, progress=False, held_out=0.25,
                checkpoint_every=10_000, eval_every=0, log_every=50, lr=3e-3, feature_dropout=0.0)
    return TrainConfig(data=data, out=out, steps=steps, **{**base, **kw})


def zeroed(features: torch.Tensor, *modalities: str) -> torch.Tensor:
    out = features.clone()
    for m in modalities:
        out[:, slice(*SLICES[m])] = 0
    return out


def test_fusion_is_trainable_and_the_encoders_stay_frozen(tmp_path):
    from neon_ros.backbones import load_backbone

    bb = load_backbone("tribe_v2", tiny=True, width=64, num_frames=2, frame_size=(64, 64),
                       options={"slices": {"video": 32, "audio": 16, "text": 16}})
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8) for _ in range(4)]
    speech = rng.normal(size=8000).astype(np.float32) * 0.1
    samples = [Sample(f"c{i}", c, text, speech if i == 0 else None)
               for i, (c, text) in enumerate(zip(clips, ["pick", "", "wave", "go"], strict=True))]
    build_cache(bb, samples, tmp_path, progress=False)
    cache = FeatureCache.open(tmp_path, bb.backbone_id)
    assert cache.modality_slices == bb.modality_slices == {"video": (0, 32), "audio": (32, 48), "text": (48, 64)}
    ids, feats = cache.load_all()
    features = torch.from_numpy(feats)
    assert torch.all(features[ids.index("c1"), 48:64] == 0)  # no instruction: a zero text slice
    assert torch.all(features[ids.index("c2"), 32:48] == 0) and features[ids.index("c0"), 32:48].any()  # heard once

    frozen = [p.detach().clone() for p in bb.parameters()]  # the three encoders and their fixed projections
    torch.manual_seed(0)
    head = ActionHead(HeadConfig(feature_dim=bb.width, d_model=32, layers=1, modality_slices=cache.modality_slices))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    args = (torch.zeros(4, 58), torch.ones(4, 58), torch.zeros(4, dtype=torch.long))
    target = torch.randn(4, 16, 29)
    for _ in range(3):  # zero-initialised branch outputs: gradients reach every tensor from the second step on
        opt.zero_grad()
        loss = ((head(features, *args)["joint_delta"] - target) ** 2).mean()
        loss.backward()
        opt.step()
    grads = {n: p.grad for n, p in head.fusion.named_parameters()}
    assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads.values()), \
        [n for n, g in grads.items() if g is None or not float(g.abs().sum())]
    assert not any(p.requires_grad for p in bb.parameters())
    assert all(torch.equal(p, q) for p, q in zip(bb.parameters(), frozen, strict=True))


def test_training_applies_modality_dropout(tmp_path, monkeypatch):
    data = make_data(tmp_path / "data", episodes=4, per_episode=16)
    seen: list[torch.Tensor] = []
    real = train_mod.batch_loss

    def spy(model, batch, aux_weight, split):
        seen.append(batch["features"].clone())
        return real(model, batch, aux_weight, split)

    monkeypatch.setattr(train_mod, "batch_loss", spy)
    train(config(data, tmp_path / "run", 2, modality_dropout=0.5))
    assert len(seen) == 2
    present = torch.stack([(f[:, slice(*SLICES[m])] != 0).any(1) for f in seen for m in SLICES]
                          ).reshape(2, len(SLICES), -1)  # (step, modality, row)
    assert (~present).any(2).all()  # each step zeroes each modality in some rows
    assert present.any(1).all()  # never every modality of a sample
    head = checkpoint.load(tmp_path / "run" / "head")
    assert head.config.modality_slices == SLICES and head.build_model().fusion is not None

    seen.clear()
    train(config(data, tmp_path / "off", 2, modality_dropout=0.0))
    assert all((f[:, slice(*s)] != 0).any(1).all() for f in seen for s in SLICES.values())


def test_head_acts_on_the_remaining_modality(tmp_path):
    data = make_data(tmp_path / "data")
    train(config(data, tmp_path / "run", 500, modality_dropout=0.3))
    model = checkpoint.load(tmp_path / "run" / "head").build_model()
    _, held, *_ = load_training_data(data, None, 0.25)
    batch = held.batch(np.arange(len(held)))
    target = batch["targets"]["joint_delta"][:, -1]  # (N, 29) normalised, last step

    def predict(features):
        with torch.no_grad():
            out = model(features, batch["proprio"], batch["proprio_mask"], batch["embodiment"])["joint_delta"]
        assert torch.isfinite(out).all()
        return out[:, -1]  # (N, 29)

    def corr(a, b):
        return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])

    features = batch["features"]
    full, no_text, no_video = predict(features), predict(zeroed(features, "text")), predict(zeroed(features, "video"))
    nothing = predict(zeroed(features, *SLICES))
    assert corr(full, target) > 0.7
    assert corr(no_text[:, VIDEO_JOINTS], target[:, VIDEO_JOINTS]) > 0.6  # video alone still drives its joints
    assert corr(no_video[:, TEXT_JOINTS], target[:, TEXT_JOINTS]) > 0.6  # text alone still drives its joints
    for partial in (no_text, no_video):
        assert float(partial.std(0).mean()) > 0.1  # not a constant action
        assert float((partial - nothing).abs().mean()) > 0.1  # not what the head does with no input at all


def test_a_checkpoint_without_slices_predicts_as_before(tmp_path):
    """Golden numbers from the head before the fusion existed (same seed, same inputs)."""
    torch.manual_seed(0)
    model = ActionHead(HeadConfig(feature_dim=24, d_model=16, layers=1))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    ck = checkpoint.save(tmp_path / "old", model, backbone_id="cpu_default.L-1", stats=_stats(model.cfg))
    meta = json.loads(ck.read_text())
    for key in ("modality_slices", "fusion_dim", "fusion_layers", "fusion_heads"):
        del meta["config"][key]  # a checkpoint written before these fields existed
    ck.write_text(json.dumps(meta))
    loaded = checkpoint.load(ck)
    assert loaded.config.modality_slices == {} and loaded.config == model.cfg
    assert not any(k.startswith("fusion.") for k in loaded.state_dict)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(3, 24, generator=g), torch.randn(3, 58, generator=g), torch.ones(3, 58), torch.tensor([0, 1, 2]))
    with torch.no_grad():
        out = loaded.build_model()(*x)
    sums = {"joint_delta": 2.6241, "ee": 68.1631, "grip": -3.061, "loco": -5.4586}
    assert {k: float(v.sum()) for k, v in out.items()} == pytest.approx(sums, abs=1e-3)
    first = [1.94957, -2.34676, 1.59854, 1.02125, -0.5009, 1.44748, 3.15096, 3.16716, 0.177]
    np.testing.assert_allclose(out["joint_delta"][:, 0, :3].flatten().numpy(), first, atol=1e-4)


def test_fusion_head_round_trips_and_exports_to_onnx(tmp_path):
    cfg = HeadConfig(feature_dim=WIDTH, d_model=32, layers=1, modality_slices=SLICES, fusion_dim=32,
                     fusion_layers=2)
    torch.manual_seed(0)
    model = ActionHead(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # non-trivial everywhere (zero-init branches would hide export errors)
    ck = checkpoint.save(tmp_path / "fused", model, backbone_id="tribe_v2.L-1", stats=_stats(cfg))
    loaded = checkpoint.load(ck)
    assert loaded.config == cfg and loaded.config.modality_slices == SLICES
    model = loaded.build_model()
    report = onnx_export.export_onnx(model, tmp_path / "fused.onnx", weights_sha256=loaded.weights_sha256)
    assert max(report.parity.values()) <= onnx_export.PARITY_TOLERANCE
    features, *rest = onnx_export.example_inputs(model, 4, seed=3, scale=3.0)
    features = torch.cat([zeroed(features[:1], "text"), zeroed(features[1:2], "video", "audio"),
                          zeroed(features[2:3], *SLICES), features[3:]])  # absent modalities, even all of them
    inputs = (features, *rest)
    got = onnx_export.run_session(onnx_export.ort_session(tmp_path / "fused.onnx"), inputs)
    with torch.no_grad():
        ref = model(*inputs)
    assert max(float(np.abs(got[k] - ref[k].numpy()).max()) for k in got) <= onnx_export.PARITY_TOLERANCE


def test_default_fusion_is_small_and_replaces_the_feature_projection():
    tribe = {"video": (0, 1024), "audio": (1024, 1536), "text": (1536, 2048)}
    fused, plain = ActionHead(HeadConfig(modality_slices=tribe)), ActionHead(HeadConfig())
    n = sum(p.numel() for p in fused.fusion.parameters())
    assert n < 600_000 and fused.feat is None and fused.in_proj is None
    assert fused.num_params() == plain.num_params() - plain.feat.weight.numel() - plain.feat.bias.numel() + n
    assert 10e6 < fused.flops_per_step() < 14e6


@pytest.mark.parametrize(("kw", "match"), [
    ({"modality_slices": {"video": (0, 16)}}, "at least two"),
    ({"modality_slices": {"video": (0, 16), "text": (8, 40)}}, "overlap"),
    ({"modality_slices": {"video": (0, 16), "text": (16, 41)}}, "feature_dim"),
    ({"modality_slices": {"video": (4, 4), "text": (16, 40)}}, "start < stop"),
    ({"modality_slices": {"video": [0, 16.0], "text": (16, 40)}}, "start, stop"),
    ({"modality_slices": [("video", (0, 16))]}, "must map"),
    ({"fusion_dim": 30, "fusion_heads": 4}, "divide"),
    ({"fusion_layers": 0}, "fusion_layers"),
])
def test_fusion_config_is_validated(kw, match):
    with pytest.raises(ValueError, match=match):
        HeadConfig(feature_dim=WIDTH, **kw)


def test_modality_dropout_option_is_validated(tmp_path):
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="modality_dropout"):
            TrainConfig(data=tmp_path, out=tmp_path, modality_dropout=bad)
    cfg = HeadConfig.from_dict(json.loads(json.dumps(HeadConfig(feature_dim=WIDTH, modality_slices=SLICES).to_dict())))
    assert cfg.modality_slices == SLICES  # JSON lists come back as (start, stop) tuples


def _stats(cfg: HeadConfig):
    from neon_ros.policy import actions

    rng = np.random.default_rng(0)
    stats = actions.NormStats()
    stats.update("proprio", rng.normal(0.1, 0.5, size=(64, cfg.proprio_dim)), "g1")
    for key, shape in cfg.output_shapes().items():
        stats.update(key, rng.normal(0.05, 0.2, size=(64, *shape)), "g1")
    return stats

