"""Checks of launch/*.py without launch and launch_ros (they are not installable here).

Each launch file runs against stand-ins of the launch API that only record what they are
built with. Every neon_ros executable it starts must be a console script in setup.py with
its node module present, every parameter it sets must be declared by that node, every
share path it builds (PathJoinSubstitution([FindPackageShare(...), "config", ...])) must
exist in the repo, and every launch argument it reads or passes to an included file must
be declared (for sim.launch.py also by neon.launch.py, which it includes). The nodes and
the bridge settings they start are those of the stack table (neon_ros.tools.stack).
"""

import ast
import importlib.util
import re
import sys
import types
from collections.abc import ItemsView, Mapping
from pathlib import Path

import pytest
import yaml
from support import REPO

from neon_ros import contract
from neon_ros.ros import params
from neon_ros.tools import stack

LAUNCH_FILES = ("neon.launch.py", "sim.launch.py", "record.launch.py")
LAUNCH_MODULES = ("launch", "launch.actions", "launch.conditions", "launch.launch_description_sources",
                  "launch.substitutions", "launch_ros", "launch_ros.actions", "launch_ros.parameter_descriptions",
                  "launch_ros.substitutions")
PACKAGE = "neon_ros"


def const(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "CONSOLE_SCRIPTS" for t in n.targets):
            entries = [const(e) for e in n.value.elts]
            return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries if e}
    raise AssertionError("CONSOLE_SCRIPTS not found in setup.py")


def declared_params(module: str) -> set[str]:
    """Parameter names a node declares: declare(self, "x"), d(self, "x"), declare_parameter("x"),
    or the keys of a module-level PARAMETERS table it declares (in a loop or with declare_parameters)."""
    src = (REPO / (module.split(":")[0].replace(".", "/") + ".py")).read_text()
    names = set(re.findall(r"(?:\bd|declare|declare_parameter)\(\s*(?:self\s*,\s*)?\"(\w+)\"", src))
    table_declared = re.search(r"PARAMETERS\.items\(\)|declare_parameters\(\s*self\s*,\s*PARAMETERS\b", src)
    for n in ast.parse(src).body:
        target = n.target if isinstance(n, ast.AnnAssign) else (n.targets[0] if isinstance(n, ast.Assign) else None)
        if getattr(target, "id", "") == "PARAMETERS" and isinstance(n.value, ast.Dict) and table_declared:
            names.update(const(k) for k in n.value.keys if const(k))
            # **scheduling_params(...): the shared table's names (neon_ros.ros.params, no rclpy)
            names.update(name for k, v in zip(n.value.keys, n.value.values, strict=True)
                         if k is None and isinstance(v, ast.Call) and getattr(v.func, "id", "") == "scheduling_params"
                         for name in params.scheduling_params())
    return names


class Recorded:
    """Stand-in for a class of the launch API: keeps the arguments it was built with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def kind(obj) -> str:
    return type(obj).__name__ if isinstance(obj, Recorded) else ""


def stand_in(name: str) -> types.ModuleType:
    """A module whose every public name is a Recorded subclass of that name."""
    module = types.ModuleType(name)
    classes: dict[str, type] = {}

    def attribute(attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return classes.setdefault(attr, type(attr, (Recorded,), {}))

    module.__getattr__ = attribute
    return module


@pytest.fixture
def load(monkeypatch):
    """load(NAME): the LaunchDescription launch/NAME generates, built from stand-ins."""
    for name in LAUNCH_MODULES:
        monkeypatch.setitem(sys.modules, name, stand_in(name))

    def generate(name: str) -> Recorded:
        spec = importlib.util.spec_from_file_location("launch_file_" + name.split(".")[0], REPO / "launch" / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.generate_launch_description()

    return generate


def objects(value):
    """Every Recorded object inside ``value`` (itself included), depth first."""
    if isinstance(value, Recorded):
        yield value
        for v in (*value.args, *value.kwargs.values()):
            yield from objects(v)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from objects(k)
            yield from objects(v)
    elif isinstance(value, (list, tuple, ItemsView)):
        for v in value:
            yield from objects(v)


def of_kind(description: Recorded, name: str) -> list[Recorded]:
    return [o for o in objects(description) if kind(o) == name]


def arguments(description: Recorded) -> dict[str, object]:
    """Declared launch arguments: name -> default (None = required)."""
    return {d.args[0]: d.kwargs.get("default_value") for d in of_kind(description, "DeclareLaunchArgument")}


def neon_nodes(description: Recorded) -> dict[str, Recorded]:
    """executable -> Node of this package, in start order."""
    return {n.kwargs["executable"]: n for n in of_kind(description, "Node") if n.kwargs.get("package") == PACKAGE}


def node_params(node: Recorded) -> dict[str, object]:
    """The parameter overrides a Node sets (its dicts; params files aside)."""
    out: dict[str, object] = {}
    for p in node.kwargs.get("parameters", ()):
        if isinstance(p, Mapping):
            out.update(p)
    return out


def resolve(value, args: Mapping[str, object]):
    """A parameter value as the node receives it, given launch argument values ``args``."""
    if kind(value) == "ParameterValue":
        text = resolve(value.args[0], args)
        typ = value.kwargs.get("value_type", str)
        return {"true": True, "false": False}[text] if typ is bool else typ(text)
    if kind(value) == "LaunchConfiguration":
        return args.get(value.args[0])
    return value


def include_arguments(description: Recorded) -> dict[str, object]:
    """What a file passes to the files it includes, resolved against its own argument defaults."""
    own = arguments(description)
    return {k: resolve(v, own) for inc in of_kind(description, "IncludeLaunchDescription")
            for k, v in inc.kwargs.get("launch_arguments", ())}


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_names_only_things_that_exist(name, load):
    compile((REPO / "launch" / name).read_text(), name, "exec")
    description = load(name)
    declared = set(arguments(description))
    if name == "sim.launch.py":
        included = set(arguments(load("neon.launch.py")))
        passed = set(include_arguments(description))
        assert passed <= included, f"{name} passes undeclared arguments {passed - included} to neon.launch.py"
        declared |= included
    read = {c.args[0] for c in of_kind(description, "LaunchConfiguration")}
    assert read <= declared, f"{name}: launch arguments {read - declared} are not declared"
    for path in of_kind(description, "PathJoinSubstitution"):
        share, *parts = path.args[0]
        assert kind(share) == "FindPackageShare" and share.args == (PACKAGE,), f"{name}: {path.args}"
        assert all(isinstance(p, str) for p in parts), f"{name}: non-literal share path {parts}"
        assert REPO.joinpath(*parts).is_file(), f"{name}: {'/'.join(parts)} does not exist"
    scripts = console_scripts()
    for exe, node in neon_nodes(description).items():
        assert exe in scripts, f"{name}: executable {exe!r} is not a console script in setup.py"
        assert node.kwargs.get("name") == exe, f"{name}: node {node.kwargs.get('name')!r} runs {exe!r}"
        module = scripts[exe]
        assert (REPO / (module.split(":")[0].replace(".", "/") + ".py")).is_file(), f"{module} missing"
        undeclared = set(node_params(node)) - declared_params(module)
        assert not undeclared, f"{name}: {exe} does not declare parameters {undeclared}"


def test_launch_files_start_the_stack_table(load):
    robot = list(neon_nodes(load("neon.launch.py")))
    sim_only = list(neon_nodes(load("sim.launch.py")))
    assert robot == [n.name for n in stack.robot_nodes()]
    assert {"camera_buffer", "backbone", "action_head", "speech_in", "speech_out", "g1_bridge"} <= set(robot)
    assert "sim_g1" in sim_only and set(robot) | set(sim_only) == {n.name for n in stack.STACK}
    assert list(neon_nodes(load("record.launch.py"))) == ["recorder"]


def test_stack_table_names_nodes_and_parameters_that_exist():
    scripts = console_scripts()
    for entry in stack.STACK:
        assert entry.name in scripts, f"stack node {entry.name!r} is not a console script in setup.py"
        declared = declared_params(scripts[entry.name])
        for overrides in (entry.sim, entry.robot or {}):
            assert set(overrides) <= declared, f"{entry.name} does not declare {set(overrides) - declared}"


def test_robot_launch_is_safe_by_default(load):
    """On the robot: arm_sdk mode, bridge disabled until /g1_bridge/enable; the sim overrides both."""
    robot = load("neon.launch.py")
    defaults = arguments(robot)
    bridge = node_params(neon_nodes(robot)["g1_bridge"])
    on_robot = {k: resolve(v, defaults) for k, v in bridge.items()}
    assert on_robot == {"mode": "arm_sdk", "autostart": False, "network_interface": "eth0", "dds_domain_id": 0,
                        "gravity_compensation": False, "rt_priority": 50}
    assert on_robot == stack.node("g1_bridge").robot
    sim = load("sim.launch.py")
    in_sim = {k: resolve(v, {**defaults, **include_arguments(sim)}) for k, v in bridge.items()}
    assert {k: in_sim[k] for k in ("mode", "autostart", "network_interface", "gravity_compensation",
                                   "rt_priority")} == {
        "mode": "lowcmd", "autostart": True, "network_interface": "lo", "gravity_compensation": True,
        "rt_priority": 0,
    } == stack.node("g1_bridge").sim
    sim_g1 = {k: resolve(v, arguments(sim)) for k, v in node_params(neon_nodes(sim)["sim_g1"]).items()}
    assert sim_g1.items() >= stack.node("sim_g1").sim.items() and sim_g1["fixed_base"] is True


def test_record_launch_records_the_training_topics():
    src = (REPO / "launch" / "record.launch.py").read_text()
    assert "TRAINING_TOPICS" in src and '"mcap"' in src and '"record"' in src
    assert all(t.startswith("/") for t in contract.TRAINING_TOPICS)


def test_params_file_sections_are_nodes_that_exist():
    data = yaml.safe_load((REPO / "config" / "neon.yaml").read_text()) or {}
    scripts = console_scripts()
    for node_name, section in data.items():
        assert node_name in scripts, f"config/neon.yaml section {node_name!r} is not a Neon node"
        declared = declared_params(scripts[node_name])
        for key in (section or {}).get("ros__parameters", {}):
            assert key in declared, f"config/neon.yaml: {node_name} does not declare {key!r}"


def test_rviz_config_shows_what_the_issue_lists():
    rviz = yaml.safe_load((REPO / "config" / "neon.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/RobotModel",
            "rviz_default_plugins/MarkerArray"} <= classes, classes
    topics = {d.get("Topic", {}).get("Value") for d in displays if isinstance(d.get("Topic"), dict)}
    assert {contract.TOPIC_CAMERA, contract.TOPIC_CLIP, contract.TOPIC_MARKERS} <= topics, topics
    assert Path(REPO / "launch" / "neon.launch.py").read_text().count("\"neon.rviz\"") == 1


def test_camera_buffer_and_backbone_get_the_same_preset(load):
    """The clip geometry must come from the preset the backbone runs, else every clip is refused."""
    nodes = neon_nodes(load("neon.launch.py"))
    presets = {exe: node_params(nodes[exe]).get("preset") for exe in ("camera_buffer", "backbone")}
    assert all(kind(p) == "LaunchConfiguration" for p in presets.values()), presets
    assert presets["camera_buffer"].args == presets["backbone"].args == ("preset",)
