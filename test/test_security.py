"""Access control: `neon-ros security` (an SROS2 keystore with one enclave per node) and the launch files'
defaults (ROS 2 discovery on this machine, every node in its enclave).

The Fast DDS of the PyPI ROS 2 wheels here is built without DDS-Security, so nothing can run secured on
this machine (test_secured_nodes_are_held_to_their_permissions says so and skips). What is checked here:
the keystore's files parse, its permissions allow and deny exactly what the module promises (evaluated
with DDS-Security's rules: first matching rule decides, fnmatch topic expressions, then the default),
every topic and service the nodes' code uses is allowed to that node's enclave, the certificates chain to
the CA and every signed file verifies against it with `openssl smime -verify`.
"""

from __future__ import annotations

import ast
import fnmatch
import shutil
import stat
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import test_launch_files
from support import REPO, python, ros_env
from test_launch_files import arguments, neon_nodes, of_kind, resolve

from neon_ros import cli, contract
from neon_ros.tools import security, stack

DOMAIN = 7
load = test_launch_files.load  # the launch-file fixture: load(NAME) -> the description built from stand-ins
ENCLAVES = [p.name for p in security.policies()]


@pytest.fixture(scope="module")
def keystore(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keystore") / "ks"
    assert cli.main(["security", "--keystore", str(path), "--domain-id", str(DOMAIN)]) == 0
    return path


def grant(keystore: Path, name: str) -> ET.Element:
    root = ET.parse(keystore / "enclaves" / "neon" / name / "permissions.xml").getroot()
    grants = root.findall("permissions/grant")
    assert len(grants) == 1
    return grants[0]


def allowed(rules: ET.Element, action: str, topic: str, domain: int = DOMAIN) -> bool:
    """DDS-Security access control for one grant: the first rule of the domain naming ``topic`` decides."""
    for rule in rules:
        if rule.tag not in ("allow_rule", "deny_rule"):
            continue
        if str(domain) not in {i.text for i in rule.findall("domains/id")}:
            continue
        if any(fnmatch.fnmatchcase(topic, t.text) for t in rule.findall(f"{action}/topics/topic")):
            return rule.tag == "allow_rule"
    return rules.findtext("default") == "ALLOW"


def test_keystore_has_the_sros2_layout_and_well_formed_xml(keystore):
    for rel in ("public/ca.cert.pem", "public/identity_ca.cert.pem", "public/permissions_ca.cert.pem",
                "private/ca.key.pem", "private/identity_ca.key.pem", "private/permissions_ca.key.pem",
                "enclaves/governance.xml", "enclaves/governance.p7s"):
        assert (keystore / rel).is_file(), rel
    assert sorted(p.name for p in (keystore / "enclaves" / "neon").iterdir()) == sorted(ENCLAVES)
    for name in ENCLAVES:
        folder = keystore / "enclaves" / "neon" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["cert.pem", "key.pem", "identity_ca.cert.pem", "permissions_ca.cert.pem", "governance.p7s",
             "permissions.xml", "permissions.p7s"]), name
        assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
        g = grant(keystore, name)
        assert g.get("name") == f"/neon/{name}" and g.findtext("subject_name") == f"CN=/neon/{name}"
        assert g.findtext("validity/not_before") < g.findtext("validity/not_after")
        assert [r.tag for r in g][-1] == "default" and g.findtext("default") == "DENY"
        assert {i.text for i in g.findall("*/domains/id")} == {str(DOMAIN)}
    assert stat.S_IMODE((keystore / "private" / "ca.key.pem").stat().st_mode) == 0o600
    gov = ET.parse(keystore / "enclaves" / "governance.xml").getroot()
    rule = gov.find("domain_access_rules/domain_rule")
    assert rule.findtext("domains/id") == str(DOMAIN)
    assert rule.findtext("allow_unauthenticated_participants") == "false"
    assert rule.findtext("enable_join_access_control") == "true"
    topics = rule.find("topic_access_rules/topic_rule")
    assert topics.findtext("topic_expression") == "*"
    assert topics.findtext("enable_read_access_control") == topics.findtext("enable_write_access_control") == "true"


def test_only_action_head_publishes_chunks_only_teleop_commands_and_enables(keystore):
    chunk, teleop, estop = (f"rt{t}" for t in (contract.TOPIC_ACTION_CHUNK, contract.TOPIC_TELEOP, contract.TOPIC_ESTOP))
    enable, damp = (f"rq{s}Request" for s in (contract.SERVICE_ENABLE, contract.SERVICE_DAMP))
    enable_reply = f"rr{contract.SERVICE_ENABLE}Reply"
    for name in ENCLAVES:
        g = grant(keystore, name)
        assert allowed(g, "publish", chunk) == (name == "action_head"), name
        for command in (teleop, estop, enable, damp):
            assert allowed(g, "publish", command) == (name == security.TELEOP), (name, command)
        # nobody but the bridge can answer an enable call (or read the requests)
        assert allowed(g, "publish", enable_reply) == (name == "g1_bridge"), name
        assert allowed(g, "subscribe", enable) == (name == "g1_bridge"), name
        assert not allowed(g, "publish", "rt/anything/else"), name
        assert allowed(g, "publish", "rt/rosout") and allowed(g, "publish", security.ROS_DISCOVERY_TOPIC)
        assert not allowed(g, "publish", chunk, domain=DOMAIN + 1), name  # rules are for the stack's domain only
    bridge = grant(keystore, "g1_bridge")
    assert all(allowed(bridge, "subscribe", t) for t in (chunk, teleop, estop, enable))
    assert allowed(grant(keystore, security.TELEOP), "subscribe", enable_reply)
    observer = grant(keystore, security.OBSERVER)
    assert allowed(observer, "subscribe", chunk) and not allowed(observer, "subscribe", enable)


def endpoints(source: Path) -> dict[str, set[str]]:
    """What a node's code creates, from ``create_publisher(T, contract.X)`` and the like."""
    kinds = {"create_publisher": "publish", "create_subscription": "subscribe", "create_service": "serve",
             "create_client": "call"}
    out: dict[str, set[str]] = {k: set() for k in kinds.values()}
    for call in ast.walk(ast.parse(source.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") in kinds and len(call.args) >= 2:
            name = call.args[1]
            if isinstance(name, ast.Attribute) and getattr(name.value, "id", "") == "contract":
                out[kinds[call.func.attr]].add(getattr(contract, name.attr))
    return out


def test_every_endpoint_the_nodes_create_is_allowed_to_their_enclave(keystore):
    sources = {n.name: REPO / "neon_ros" / "nodes" / f"{n.name}.py" for n in stack.STACK}
    sources |= {"recorder": REPO / "neon_ros/nodes/recorder.py", security.TELEOP: REPO / "neon_ros/ros/teleop.py"}
    assert set(sources) <= set(ENCLAVES), f"no enclave for {set(sources) - set(ENCLAVES)}"
    for name, source in sources.items():
        g, found = grant(keystore, name), endpoints(source)
        assert any(found.values()), f"no endpoint found in {source}"
        subscribed = found["subscribe"] | (set(contract.TRAINING_TOPICS) if name == "recorder" else set())
        for topic in found["publish"]:
            assert allowed(g, "publish", "rt" + topic), (name, topic)
        for topic in subscribed:
            assert allowed(g, "subscribe", "rt" + topic), (name, topic)
        for service in found["serve"]:
            assert allowed(g, "subscribe", f"rq{service}Request") and allowed(g, "publish", f"rr{service}Reply")
        for service in found["call"]:
            assert allowed(g, "publish", f"rq{service}Request") and allowed(g, "subscribe", f"rr{service}Reply")
    for name in ENCLAVES:  # each node serves its own parameter services
        node = next(p for p in security.policies() if p.name == name).nodes[0].replace("*", "x")
        g = grant(keystore, name)
        assert allowed(g, "subscribe", f"rq/{node}/get_parametersRequest"), name
        assert allowed(g, "publish", f"rr/{node}/get_parametersReply"), name


def test_signatures_verify_against_the_ca(keystore, tmp_path):
    from cryptography import x509

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot check the S/MIME signatures")
    ca_path = keystore / "public" / "permissions_ca.cert.pem"
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    signed = [(keystore / "enclaves" / "governance.p7s", keystore / "enclaves" / "governance.xml")]
    for name in ENCLAVES:
        folder = keystore / "enclaves" / "neon" / name
        signed.append((folder / "permissions.p7s", folder / "permissions.xml"))
        cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
        cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
        assert cert.subject.rfc4514_string() == f"CN=/neon/{name}"
        assert (folder / "permissions_ca.cert.pem").read_bytes() == ca_path.read_bytes()
        assert (folder / "governance.p7s").read_bytes() == signed[0][0].read_bytes()
    for p7s, xml in signed:
        out = tmp_path / "content"
        run = subprocess.run([openssl, "smime", "-verify", "-in", str(p7s), "-CAfile", str(ca_path), "-text",
                              "-out", str(out)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, (p7s, run.stderr)
        assert out.read_bytes().replace(b"\r\n", b"\n") == xml.read_bytes(), p7s  # signs exactly the XML
    # a permission added to the signed file breaks its signature
    tampered = tmp_path / "tampered.p7s"
    text = signed[1][0].read_text()
    tampered.write_text(text.replace("<default>DENY</default>", "<default>ALLOW</default>", 1))
    run = subprocess.run([openssl, "smime", "-verify", "-in", str(tampered), "-CAfile", str(ca_path), "-text",
                          "-out", str(tmp_path / "x")], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "ALLOW" in tampered.read_text()


def test_a_second_run_keeps_the_ca(tmp_path):
    store = security.create_keystore(tmp_path / "ks", domain_id=0)
    ca = (store.path / "public" / "ca.cert.pem").read_bytes()
    again = security.create_keystore(tmp_path / "ks", domain_id=0)
    assert store.ca_created and not again.ca_created
    assert (again.path / "public" / "ca.cert.pem").read_bytes() == ca
    with pytest.raises(security.KeystoreError, match=r"\[0, 232\]"):
        security.create_keystore(tmp_path / "ks2", domain_id=300)


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_secured_nodes_are_held_to_their_permissions(keystore):
    """Where Fast DDS has DDS-Security: /neon/action_head may publish chunks, /neon/speech_in may not."""
    probe = textwrap.dedent(f"""
        import sys, rclpy
        from trajectory_msgs.msg import JointTrajectory
        enclave, node = sys.argv[1], sys.argv[2]
        rclpy.init(args=["probe", "--ros-args", "--enclave", enclave])
        try:
            n = rclpy.create_node(node)
        except Exception as exc:
            print("NODE", exc); sys.exit(0)
        try:
            n.create_publisher(JointTrajectory, "{contract.TOPIC_ACTION_CHUNK}", 1)
            print("PUBLISHER ok")
        except Exception as exc:
            print("PUBLISHER refused", exc)
    """)
    env = ros_env(ROS_SECURITY_KEYSTORE=str(keystore), ROS_SECURITY_ENABLE="true",
                  ROS_SECURITY_STRATEGY="Enforce", ROS_DOMAIN_ID=str(DOMAIN))
    results = {}
    for name in ("action_head", "speech_in"):
        run = subprocess.run(python("-c", probe, f"/neon/{name}", name), env=env, capture_output=True, text=True,
                             timeout=60)
        results[name] = run.stdout + run.stderr
        if "doesn't have the security libraries" in results[name]:
            pytest.skip("this Fast DDS is built without DDS-Security (the PyPI ROS 2 wheels): the keystore cannot "
                        "be exercised here")
    assert "PUBLISHER ok" in results["action_head"], results
    assert "PUBLISHER refused" in results["speech_in"], results


# --- launch files ----------------------------------------------------------------------------------
def environment(description, args: dict[str, object]) -> dict[str, str]:
    """The environment variables a launch description sets, given launch argument values."""
    out = {}
    for action in of_kind(description, "SetEnvironmentVariable"):
        name, value = action.args
        if type(value).__name__ == "PythonExpression":
            value = eval("".join(str(resolve(part, args)) for part in value.args[0]))  # our own launch file
        out[name] = resolve(value, args)
    return out


@pytest.mark.parametrize("name", ["neon.launch.py", "sim.launch.py", "record.launch.py"])
def test_launch_keeps_ros_discovery_on_this_machine_unless_widened(load, name):
    description = load(name)
    defaults = arguments(description)
    assert defaults["discovery_range"] == "LOCALHOST"
    assert environment(description, defaults) == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                                                  "ROS_LOCALHOST_ONLY": "1"}
    wide = {**defaults, "discovery_range": "SUBNET"}
    assert environment(description, wide) == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_LOCALHOST_ONLY": "0"}
    entities = description.args[0]  # set before any node starts
    first_env = next(i for i, e in enumerate(entities) if type(e).__name__ == "SetEnvironmentVariable")
    first_node = next((i for i, e in enumerate(entities) if type(e).__name__ == "Node"), len(entities))
    assert first_env < first_node


def test_launched_nodes_run_in_their_enclaves_and_the_bridge_on_the_robot_interface(load):
    for name in ("neon.launch.py", "sim.launch.py", "record.launch.py"):
        for exe, node in neon_nodes(load(name)).items():
            args = node.kwargs.get("arguments", [])
            assert args[-3:] == ["--ros-args", "--enclave", f"/neon/{exe}"], (name, exe, args)
            assert exe in ENCLAVES, f"{name}: {exe} has no enclave in neon_ros.tools.security.policies()"
    robot = load("neon.launch.py")
    bridge = {k: resolve(v, arguments(robot)) for k, v in neon_nodes(robot)["g1_bridge"].kwargs["parameters"][1].items()}
    assert bridge["network_interface"] == "eth0"  # the Unitree DDS on the robot's own network only
