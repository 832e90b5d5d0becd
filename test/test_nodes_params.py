"""The perception/inference nodes: parameter tables, config/neon.yaml defaults and --help agree."""

import importlib
import subprocess

import pytest
import yaml
from support import REPO, python

NODES = ("camera_buffer", "backbone", "action_head")


@pytest.mark.parametrize("name", NODES)
def test_yaml_defaults_match_the_declared_parameters(name):
    table = importlib.import_module(f"neon_ros.nodes.{name}").PARAMETERS
    config = yaml.safe_load((REPO / "config" / "neon.yaml").read_text())[name]["ros__parameters"]
    assert set(config) == set(table)
    for key, (default, desc, rng) in table.items():
        assert config[key] == default and type(config[key]) is type(default), key
        assert desc and (rng is None or rng[0] <= default <= rng[1])


@pytest.mark.parametrize("name", NODES)
def test_help_lists_every_parameter(name):
    out = subprocess.run(python("-m", f"neon_ros.nodes.{name}", "--help"), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    table = importlib.import_module(f"neon_ros.nodes.{name}").PARAMETERS
    assert all(key in out.stdout for key in table)
