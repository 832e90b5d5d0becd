"""Every backbone preset declares its expected latency on the robot computer, and the action
head's feature-age budget follows it (no model is loaded)."""

import pytest

from neon_ros.backbones.base import BackboneConfig
from neon_ros.backbones.registry import expected_latency, list_presets, load_config
from neon_ros.runtime import gate


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_declares_its_latency(preset):
    latency = load_config(preset).expected_latency_s
    assert 0.0 < latency <= 5.0, preset
    budget = gate.feature_age_budget(latency)
    assert budget == pytest.approx(latency + gate.FEATURE_AGE_SLACK)
    assert gate.GateConfig(backbone_id=preset, feature_dim=8, max_feature_age=budget).max_feature_age > latency


def test_ids_resolve_to_their_preset():
    assert expected_latency("qwen2_5_omni_3b.L-1") == pytest.approx(1.3)
    assert expected_latency("qwen2_5_omni_7b-tiny.L-2") == pytest.approx(2.2)  # a tiny config of the preset
    assert expected_latency("cpu_default.L-1") == pytest.approx(0.08)
    assert expected_latency("test") is None  # not a preset: the default budget
    assert gate.feature_age_budget(None) == gate.DEFAULT_MAX_FEATURE_AGE == 0.3


@pytest.mark.parametrize("bad", [-0.1, 6.0, float("nan")])
def test_a_bad_latency_is_refused(bad):
    with pytest.raises(ValueError, match="expected_latency_s"):
        BackboneConfig(name="x", architecture="cpu_default", expected_latency_s=bad)


def test_eval_takes_the_presets_latency_as_its_feature_delay():
    import argparse

    from neon_ros.tools.evaluate import _delay

    assert _delay("preset") == "preset" and _delay("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="'preset'"):
        _delay("slow")
