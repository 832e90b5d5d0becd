"""The action head: size, shapes, bounded and finite outputs, refused NaN, a loss that trains."""

import pytest
import torch

from neon_ros.policy import embodiment as E
from neon_ros.policy.model import COMPONENTS, ActionHead, HeadConfig, loss

SMALL = HeadConfig(d_model=64, layers=2, feature_dim=96)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def inputs(cfg: HeadConfig, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, cfg.feature_dim, generator=g), torch.randn(batch, cfg.proprio_dim, generator=g),
            torch.ones(batch, cfg.proprio_dim), torch.randint(0, E.num_embodiments(), (batch,), generator=g))


def test_default_head_has_5_to_7_million_parameters():
    model = ActionHead()
    assert 5e6 <= model.num_params() <= 7e6
    assert model.in_proj is None  # 2048-wide features need no projection
    assert 10e6 < model.flops_per_step() < 14e6


def test_narrower_backbone_gets_a_trainable_projection_to_2048():
    model = ActionHead(HeadConfig(feature_dim=1408, d_model=64))
    assert model.in_proj is not None
    assert tuple(model.in_proj.weight.shape) == (2048, 1408) and model.in_proj.weight.requires_grad


@pytest.mark.parametrize("batch", [1, 5])
def test_output_shapes(batch):
    out = ActionHead(SMALL)(*inputs(SMALL, batch))
    assert set(out) == set(COMPONENTS)
    assert out["joint_delta"].shape == (batch, 16, 29)
    assert out["ee"].shape == (batch, 16, 2, 9)
    assert out["grip"].shape == (batch, 16, 2)
    assert out["loco"].shape == (batch, 16, 3)


def test_soft_capped_outputs_are_bounded():
    cfg = HeadConfig(d_model=64, feature_dim=96, output_softcap=2.5)
    torch.manual_seed(0)
    model = ActionHead(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 3.0)  # wild weights: raw readouts far beyond the cap
    out = model(*inputs(cfg, 16))
    raw_max = max(v.abs().max() for v in out.values())
    assert raw_max <= 2.5
    assert raw_max > 2.0  # the cap is what bounds them, not small weights


@pytest.mark.parametrize("scale", [1e6, 1e30, 3e38])
def test_outputs_stay_finite_for_extreme_inputs(scale):
    model = ActionHead(SMALL)
    f, p, m, e = inputs(SMALL, 4)
    big_f, big_p = torch.sign(f) * scale, torch.sign(p) * scale  # finite float32 values up to 3e38
    for features, proprio, mask in [(big_f, p, m), (f, big_p, m), (-big_f, -big_p, m * 0),
                                    (torch.full_like(f, scale), torch.full_like(p, -scale), m)]:
        out = model(features, proprio, mask, e)
        assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_non_finite_input_is_refused(bad, which):
    model = ActionHead(SMALL)
    x = list(inputs(SMALL, 3))
    x[which] = x[which].clone()
    x[which][1, 5] = bad
    name = ["features", "proprio", "proprio_mask"][which]
    with pytest.raises(ValueError, match=f"{name} holds 1 non-finite"):
        model(*x)


def test_wrong_shapes_and_ids_are_refused_clearly():
    model = ActionHead(SMALL)
    f, p, m, e = inputs(SMALL, 2)
    with pytest.raises(ValueError, match=r"features must have shape \(B, 96\)"):
        model(f[:, :50], p, m, e)
    with pytest.raises(ValueError, match="embodiment ids must be in"):
        model(f, p, m, torch.tensor([0, 99]))
    with pytest.raises(ValueError, match="integer tensor"):
        model(f, p, m, e.float())


@pytest.mark.parametrize("field,value", [("d_model", 0), ("layers", -1), ("chunk", 2.5), ("output_softcap", 0.0),
                                         ("input_clip", float("inf")), ("num_embodiments", 1)])
def test_config_is_validated(field, value):
    with pytest.raises(ValueError, match=f"HeadConfig.{field}"):
        HeadConfig(**{field: value})


def _targets(cfg: HeadConfig, batch: int):
    g = torch.Generator().manual_seed(7)
    return {k: torch.randn(batch, *s, generator=g) * 0.5 for k, s in cfg.output_shapes().items()}


def test_a_few_optimisation_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = ActionHead(SMALL)
    x = inputs(SMALL, 16)
    target = _targets(SMALL, 16)
    masks = {k: torch.from_numpy(v).expand(16, *v.shape) for k, v in E.get("g1").component_masks().items()}
    masks["loco"] = masks["loco"][:, 0]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        total = loss(model(*x), target, masks)["total"]
        first = float(total.detach()) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    with torch.no_grad():
        final = float(loss(model(*x), target, masks)["total"])
    assert final < 0.5 * first


def test_masked_elements_do_not_count():
    model = ActionHead(SMALL)
    with torch.no_grad():
        pred = model(*inputs(SMALL, 4))
    target = {k: v.detach().clone() for k, v in pred.items()}
    masks = {"ee": torch.tensor([[1.0, 0.0]] * 4), "joint_delta": torch.zeros(4, 29), "grip": torch.ones(4, 2),
             "loco": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    target["ee"][:, :, 1] += 10.0  # right arm: masked out
    target["joint_delta"] += 5.0  # masked out entirely
    target["loco"][2:] = float("nan")  # unlabelled samples, also masked
    out = loss(pred, target, masks)
    assert all(float(out[k]) == pytest.approx(0.0, abs=1e-10) for k in COMPONENTS)
    target["ee"][:, :, 0] += 1.0  # left arm counts
    assert float(loss(pred, target, masks)["ee"]) == pytest.approx(1.0, rel=1e-5)
    out = loss(pred, {"grip": target["grip"]}, {})
    assert set(out) == {"grip", "total"}
