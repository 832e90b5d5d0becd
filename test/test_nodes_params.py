"""All ten nodes: one parameter table each, config/neon.yaml defaults, --help, read-only parameters."""

import importlib
import json
import subprocess

import pytest
import yaml
from support import REPO, python, ros_env

from neon_ros.ros import rosutil
from test.peers.nodes_events import start_node, wait_ready

NODES = ("camera_buffer", "speech_in", "backbone", "action_head", "speech_out", "g1_bridge", "sim_g1", "recorder",
         "bridge_watchdog", "body_bridge")
# Declared but left out of config/neon.yaml, with the reason.
NOT_IN_YAML = {
    "recorder": {"topics"},  # defaults to contract.TRAINING_TOPICS; a copy in the yaml would drift from it
}
# DESIGN.md section 3: parameters that tools and tests rely on.
DESIGN_PARAMETERS = {
    "g1_bridge": {"mode", "network_interface", "dds_domain_id", "autostart", "command_timeout"},
    "sim_g1": {"network_interface", "dds_domain_id", "fixed_base", "camera_rate"},
    "camera_buffer": {"source"},
    "backbone": {"preset"},
    "action_head": {"checkpoint", "runtime", "max_feature_age"},
    "speech_in": {"audio_source"},
    "speech_out": {"backend", "output"},
    "recorder": set(),
    "bridge_watchdog": set(),  # not in DESIGN.md (issue 12 adds it beside g1_bridge)
    "body_bridge": {"mode", "network_interface", "dds_domain_id", "autostart", "command_timeout"},
}


def table(name: str) -> dict:
    return importlib.import_module(f"neon_ros.nodes.{name}").PARAMETERS


def test_every_node_is_covered():
    assert set(NODES) == {p.stem for p in (REPO / "neon_ros" / "nodes").glob("*.py")} - {"__init__"}
    assert set(NODES) == set(DESIGN_PARAMETERS)


@pytest.mark.parametrize("name", NODES)
def test_yaml_defaults_match_the_declared_parameters(name):
    params = table(name)
    config = yaml.safe_load((REPO / "config" / "neon.yaml").read_text())[name]["ros__parameters"]
    assert set(config) == set(params) - NOT_IN_YAML.get(name, set())
    assert DESIGN_PARAMETERS[name] <= set(config)
    for key, value in config.items():
        assert value == params[key].default and type(value) is type(params[key].default), key


@pytest.mark.parametrize("name", NODES)
def test_descriptors_are_read_only_with_description_and_range(name):
    for key, param in table(name).items():
        desc = rosutil.descriptor(param)
        assert desc.read_only and desc.description == param.description != "", key
        numeric = isinstance(param.default, int | float) and not isinstance(param.default, bool)
        if param.limits is None:
            assert not desc.integer_range and not desc.floating_point_range, key
            continue
        assert numeric, f"{key}: a range on a non-number"
        lo, hi = param.limits
        assert lo <= param.default <= hi, key
        (rng,) = desc.integer_range if isinstance(param.default, int) else desc.floating_point_range
        assert (rng.from_value, rng.to_value) == (lo, hi), key


@pytest.mark.parametrize("name", NODES)
def test_help_lists_every_parameter(name):
    out = subprocess.run(python("-m", f"neon_ros.nodes.{name}", "--help"), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert all(key in out.stdout for key in table(name))


@pytest.mark.ros
@pytest.mark.timeout(150)
def test_param_set_is_refused_at_run_time(tmp_path):
    """`ros2 param set` on a parameter read once at start fails and leaves the value as it was."""
    env = ros_env()
    params = {"num_frames": 2, "frame_height": 16, "frame_width": 16, "clip_rate": 5.0}
    with start_node("camera_buffer", env, tmp_path, params) as cam:
        wait_ready(cam, "camera_buffer")
        out = subprocess.run(python("-m", "test.peers.param_set", "camera_buffer", "clip_rate", "2.0"), env=env,
                             cwd=REPO, capture_output=True, text=True, timeout=90)
        assert cam.alive(), cam.output()
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout + out.stderr
    result = json.loads(lines[-1][len("RESULT "):])
    assert not result["successful"] and "read-only" in result["reason"], result
    assert result["after"] == 5.0
