"""The soup: YAML recipes, the weighted sampler's mixture and determinism, the episode split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neon_ros.policy.soup import SoupSampler, is_held_out, load_soup

REPO = Path(__file__).resolve().parents[1]


def test_empirical_mixture_matches_weights():
    groups = {"lerobot": np.arange(0, 1000), "agibot": np.arange(1000, 1100), "voice": np.arange(1100, 6100)}
    weights = {"lerobot": 5.0, "agibot": 3.0, "voice": 2.0}
    sampler = SoupSampler(groups, weights, seed=7)
    owner = sampler.source_of()
    drawn = [owner[int(i)] for step in range(200) for i in sampler.batch(step, 128)]
    share = {n: drawn.count(n) / len(drawn) for n in groups}
    for name, w in weights.items():
        assert share[name] == pytest.approx(w / 10.0, abs=0.01)  # 25,600 draws: 3 sigma < 0.01
    assert sampler.mixture() == pytest.approx({"lerobot": 0.5, "agibot": 0.3, "voice": 0.2})
    assert "drawn" in sampler.report(20, 64)


def test_sampler_is_a_pure_function_of_seed_and_step():
    groups = {"a": np.arange(50), "b": np.arange(50, 60)}
    s1, s2 = SoupSampler(groups, {"a": 1, "b": 1}, seed=3), SoupSampler(groups, {"a": 1, "b": 1}, seed=3)
    assert np.array_equal(s1.batch(17, 32), s2.batch(17, 32))  # a resumed run draws the same batch
    assert not np.array_equal(s1.batch(17, 32), s1.batch(18, 32))
    assert not np.array_equal(s1.batch(17, 32), SoupSampler(groups, {"a": 1, "b": 1}, seed=4).batch(17, 32))


def test_sampler_drops_empty_sources_from_the_effective_mixture():
    sampler = SoupSampler({"a": np.arange(5), "empty": np.array([], np.int64)}, {"a": 1.0, "empty": 9.0})
    assert sampler.mixture() == {"a": 1.0}
    with pytest.raises(ValueError, match="weight"):
        SoupSampler({"a": np.arange(3)}, {"b": 1.0})


def test_soup_yaml_resolves_paths_and_rejects_mistakes(tmp_path):
    soup = load_soup(REPO / "config" / "soup" / "sim.yaml", data_root=tmp_path)
    assert soup.sources[0].path == tmp_path / "sim_g1" and soup.generate["tasks"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: x, type: nosuch, path: .}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: sources\[0\].*nosuch"):
        load_soup(bad)
    bad.write_text("sources:\n  - {name: x, type: voice, path: ., weight: 0}\n")
    with pytest.raises(ValueError, match="weight must be > 0"):
        load_soup(bad)


def test_every_shipped_soup_parses():
    for path in sorted((REPO / "config" / "soup").glob("*.yaml")):
        soup = load_soup(path)
        assert soup.sources and abs(sum(soup.weights().values()) - 1.0) < 1e-9, path


def test_held_out_split_is_by_episode_and_stable():
    held = [is_held_out("sim", f"ep{i}", 0.2) for i in range(2000)]
    assert 0.17 < np.mean(held) < 0.23
    assert held == [is_held_out("sim", f"ep{i}", 0.2) for i in range(2000)]
