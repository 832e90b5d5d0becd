"""Static checks of launch/*.py (launch and launch_ros are not installable here).

Each launch file is parsed (ast): every neon_ros executable it starts must be a console
script in setup.py with its node module present, every share path it builds
(PathJoinSubstitution([FindPackageShare(...), "config", ...])) must exist in the repo,
every parameter it overrides must be declared by that node, and every
LaunchConfiguration it reads must be declared by a DeclareLaunchArgument (in the file or,
for included files, by the file it includes).
"""

import ast
import re
from pathlib import Path

import pytest
import yaml
from support import REPO

from neon_ros import contract

LAUNCH_FILES = ("neon.launch.py", "sim.launch.py", "record.launch.py")
PACKAGE = "neon_ros"


def call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def kw(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


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
    or the keys of a module-level PARAMETERS table it declares in a loop."""
    src = (REPO / (module.split(":")[0].replace(".", "/") + ".py")).read_text()
    names = set(re.findall(r"(?:\bd|declare|declare_parameter)\(\s*(?:self\s*,\s*)?\"(\w+)\"", src))
    for n in ast.parse(src).body:
        target = n.target if isinstance(n, ast.AnnAssign) else (n.targets[0] if isinstance(n, ast.Assign) else None)
        if getattr(target, "id", "") == "PARAMETERS" and isinstance(n.value, ast.Dict) and "PARAMETERS.items()" in src:
            names.update(const(k) for k in n.value.keys if const(k))
    return names


def parse(name: str) -> ast.Module:
    return ast.parse((REPO / "launch" / name).read_text(), filename=name)


def launch_arguments(tree: ast.Module) -> set[str]:
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and call_name(n) == "DeclareLaunchArgument":
            names.add(const(n.args[0]) if n.args else const(kw(n, "name")))
        # neon.launch.py declares from an ARGUMENTS table of (name, default, doc) tuples
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in n.targets):
            names.update(const(e.elts[0]) for e in n.value.elts)
    return names - {None}


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_names_only_things_that_exist(name):
    src = (REPO / "launch" / name).read_text()
    compile(src, name, "exec")
    tree = parse(name)
    scripts = console_scripts()
    args = launch_arguments(tree)
    if name == "sim.launch.py":
        args |= launch_arguments(parse("neon.launch.py"))
    started = []
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call):
            continue
        cname = call_name(n)
        pkg = kw(n, "package")
        if cname == "Node" and (getattr(pkg, "id", None) == "PACKAGE" or const(pkg) == PACKAGE):
            exe = const(kw(n, "executable"))
            assert exe in scripts, f"{name}: executable {exe!r} is not a console script in setup.py"
            module = scripts[exe]
            assert (REPO / (module.split(":")[0].replace(".", "/") + ".py")).is_file(), f"{module} missing"
            declared = declared_params(module)
            params = kw(n, "parameters")
            for p in params.elts if params is not None else ():
                if isinstance(p, ast.Dict):
                    for key in p.keys:
                        assert const(key) in declared, f"{name}: {exe} does not declare parameter {const(key)!r}"
            started.append(exe)
        elif cname == "PathJoinSubstitution":
            parts = [const(e) for e in n.args[0].elts[1:]]
            assert all(parts), f"{name}: non-literal share path {ast.unparse(n)}"
            assert (REPO.joinpath(*parts)).is_file(), f"{name}: {'/'.join(parts)} does not exist"
        elif cname == "LaunchConfiguration" and n.args and const(n.args[0]):
            assert const(n.args[0]) in args, f"{name}: launch argument {const(n.args[0])!r} is not declared"
    # the `arg = LaunchConfiguration` alias: arg("x")
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "arg" and n.args and const(n.args[0]):
            assert const(n.args[0]) in args, f"{name}: launch argument {const(n.args[0])!r} is not declared"
    expected = {
        "neon.launch.py": {"camera_buffer", "backbone", "action_head", "speech_in", "speech_out", "g1_bridge"},
        "sim.launch.py": {"sim_g1"},
        "record.launch.py": {"recorder"},
    }[name]
    assert expected <= set(started), (name, started)


def test_robot_launch_is_safe_by_default():
    """On the robot: arm_sdk mode, bridge disabled until /g1_bridge/enable; the sim overrides both."""
    src = (REPO / "launch" / "neon.launch.py").read_text()
    assert '("bridge_mode", "arm_sdk"' in src and '("autostart", "false"' in src
    assert '("dds_domain_id", "0"' in src
    sim = (REPO / "launch" / "sim.launch.py").read_text()
    assert '"bridge_mode": "lowcmd"' in sim and '"autostart": "true"' in sim and '"network_interface": "lo"' in sim


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


def test_camera_buffer_and_backbone_get_the_same_preset():
    """The clip geometry must come from the preset the backbone runs, else every clip is refused."""
    presets = {}
    for n in ast.walk(parse("neon.launch.py")):
        if isinstance(n, ast.Call) and call_name(n) == "Node":
            exe = const(kw(n, "executable"))
            for p in getattr(kw(n, "parameters"), "elts", ()):
                if isinstance(p, ast.Dict):
                    for key, value in zip(p.keys, p.values, strict=True):
                        if const(key) == "preset":
                            presets[exe] = ast.unparse(value)
    assert presets.get("camera_buffer") == presets.get("backbone") == "arg('preset')", presets
