"""`neon-ros security`: an SROS2 keystore for the Neon stack, with one enclave per node.

Without it, anyone who reaches the stack's ROS 2 graph can publish action chunks or teleop
and call /g1_bridge/enable. With ROS 2 security (SROS2: DDS-Security authentication, access
control and encryption) only holders of a certificate signed by this keystore's CA join the
graph, and each enclave may publish and subscribe only what its permissions list:

- only ``/neon/action_head`` may publish /neon/action_chunk;
- only ``/neon/teleop`` may publish /neon/teleop/joint_trajectory and /neon/estop and call
  /g1_bridge/enable and /g1_bridge/damp (``neon-ros teleop``, or ``ros2`` commands run with
  ROS_SECURITY_ENCLAVE_OVERRIDE=/neon/teleop);
- every other enclave gets exactly the topics its node uses (POLICIES below; a test checks
  them against the nodes' code), its own node's services, /rosout and /parameter_events;
- ``/neon/camera`` is for a camera driver (``--camera-node``, ``--camera-topic``),
  ``/neon/observer`` may only read (``ros2 topic echo`` with the override above).

Layout written (the one ``ros2 security create_keystore`` / ``create_enclave`` write, so the
usual tools read it):

    KEYSTORE/public/ca.cert.pem            the CA (also identity_ca.cert.pem, permissions_ca.cert.pem)
    KEYSTORE/private/ca.key.pem            its key (also identity_ca.key.pem, permissions_ca.key.pem)
    KEYSTORE/enclaves/governance.xml + .p7s
    KEYSTORE/enclaves/neon/NODE/           cert.pem key.pem identity_ca.cert.pem permissions_ca.cert.pem
                                           governance.p7s permissions.xml permissions.p7s

governance.xml and permissions.xml follow the DDS-Security 1.1 formats as SROS2 writes them (ROS
topics as ``rt/TOPIC``, service requests as ``rq/SERVICERequest``, replies as
``rr/SERVICEReply``; deny rules before allow rules, default DENY) and are signed by the CA as
S/MIME (PKCS#7, detached, like ``openssl smime -sign -text``). A second run keeps the CA (so
copies made before stay valid) and writes everything else again.

On a robot whose ROS 2 has security (Debian/ROS packages of Fast DDS and Cyclone DDS are built
with it)::

    neon-ros security --keystore ~/neon_keystore --domain-id $ROS_DOMAIN_ID
    export ROS_SECURITY_KEYSTORE=~/neon_keystore ROS_SECURITY_ENABLE=true ROS_SECURITY_STRATEGY=Enforce
    ros2 launch neon_ros neon.launch.py ...        # each node starts with --ros-args --enclave /neon/NODE
    ROS_SECURITY_ENCLAVE_OVERRIDE=/neon/teleop ros2 service call /g1_bridge/enable std_srvs/srv/SetBool "{data: true}"

Keep ``private/`` off the robot: the nodes need ``public/`` and ``enclaves/`` only.

Not tested running secured here: the Fast DDS inside this project's PyPI ROS 2 wheels is built
without DDS-Security, so ROS_SECURITY_ENABLE=true cannot be exercised on this machine. The
tests check what can be checked without it: the files parse, the permissions allow and deny
exactly the rules above, the node certificates chain to the CA and the signatures verify
against it (``openssl smime -verify``).

Launch helpers (no heavy imports: launch files import this module): ``enclave(node)`` and
``discovery_actions(range)``, which limit the stack's ROS 2 discovery to this machine unless
the launch argument ``discovery_range`` widens it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from neon_ros import contract
from neon_ros.errors import NeonError

ENCLAVE_ROOT = "/neon"
TELEOP = "teleop"
CAMERA = "camera"
OBSERVER = "observer"
CA_NAME = "Neon SROS2 CA"
ROS_DISCOVERY_TOPIC = "ros_discovery_info"  # the RMWs' own graph topic (not mangled)
PERMISSIONS_XSD = "http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_permissions.xsd"
GOVERNANCE_XSD = "http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd"
DEFAULT_DISCOVERY_RANGE = "LOCALHOST"
# Writes that move or stop the robot -> the one enclave allowed to make them (DDS topic names).
PROTECTED_WRITES = {
    "rt" + contract.TOPIC_ACTION_CHUNK: "action_head",
    "rt" + contract.TOPIC_LOCO_CMD: "action_head",
    "rt" + contract.TOPIC_GRIP_CMD: "action_head",
    "rt" + contract.TOPIC_TELEOP: TELEOP,
    "rt" + contract.TOPIC_ESTOP: TELEOP,
    f"rq{contract.SERVICE_ENABLE}Request": TELEOP,
    f"rq{contract.SERVICE_DAMP}Request": TELEOP,
    f"rq{contract.SERVICE_BODY_ENABLE}Request": TELEOP,
}


class KeystoreError(NeonError, RuntimeError):
    """The keystore cannot be written or its CA read; the message says what to do."""


def enclave(name: str) -> str:
    """The enclave of node (or role) ``name``: /neon/NAME."""
    return f"{ENCLAVE_ROOT}/{name}"


def discovery_actions(discovery_range: object) -> list[object]:
    """Launch actions that set ROS 2 discovery for the nodes started after them.

    ``discovery_range`` (a launch substitution or string) goes to ROS_AUTOMATIC_DISCOVERY_RANGE
    (Jazzy and later); ROS_LOCALHOST_ONLY (Humble) is 1 exactly when it is LOCALHOST.
    """
    from launch.actions import SetEnvironmentVariable
    from launch.substitutions import PythonExpression

    return [SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", discovery_range),
            SetEnvironmentVariable("ROS_LOCALHOST_ONLY",
                                   PythonExpression(["'1' if '", discovery_range, "' == 'LOCALHOST' else '0'"]))]


@dataclass(frozen=True)
class EnclavePolicy:
    """What one enclave may do, in ROS names.

    nodes: the names (fnmatch patterns) of the nodes that run in it; each may serve its own
        services (``/NODE/...``: parameters, type description) and write /rosout.
    publish / subscribe: topics; serve / call: services it provides / calls.
    """

    name: str
    nodes: tuple[str, ...]
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    serve: tuple[str, ...] = ()
    call: tuple[str, ...] = ()

    def dds_publish(self) -> list[str]:
        """DDS topics (patterns) this enclave may write."""
        own = [f"rr/{n}/*Reply" for n in self.nodes]
        topics = ["rt/rosout", "rt/parameter_events", ROS_DISCOVERY_TOPIC, *own,
                  *("rt" + t for t in self.publish), *(f"rr{s}Reply" for s in self.serve),
                  *(f"rq{s}Request" for s in self.call)]
        return sorted(set(topics))

    def dds_subscribe(self) -> list[str]:
        """DDS topics (patterns) this enclave may read."""
        own = [f"rq/{n}/*Request" for n in self.nodes]
        topics = ["rt/parameter_events", ROS_DISCOVERY_TOPIC, *own, *("rt" + t for t in self.subscribe),
                  *(f"rq{s}Request" for s in self.serve), *(f"rr{s}Reply" for s in self.call)]
        return sorted(set(topics))


def policies(camera_topic: str = contract.TOPIC_CAMERA, camera_node: str = "camera",
             camera_publish: tuple[str, ...] = ()) -> tuple[EnclavePolicy, ...]:
    """Every enclave of the stack (DESIGN.md section 3; the nodes' code is checked against it in the tests)."""
    c = contract
    diag = c.TOPIC_DIAGNOSTICS
    camera_info = str(PurePosixPath(camera_topic).parent / "camera_info")
    return (
        EnclavePolicy("g1_bridge", ("g1_bridge",), publish=(c.TOPIC_JOINT_STATES, diag),
                      subscribe=(c.TOPIC_ACTION_CHUNK, c.TOPIC_TELEOP, c.TOPIC_ESTOP),
                      serve=(c.SERVICE_ENABLE, c.SERVICE_DAMP)),
        EnclavePolicy("bridge_watchdog", ("bridge_watchdog",), publish=(diag,)),
        EnclavePolicy("body_bridge", ("body_bridge",), publish=(diag,),
                      subscribe=(c.TOPIC_LOCO_CMD, c.TOPIC_GRIP_CMD, c.TOPIC_ESTOP), serve=(c.SERVICE_BODY_ENABLE,)),
        EnclavePolicy("sim_g1", ("sim_g1",), publish=(camera_topic, diag)),
        EnclavePolicy("camera_buffer", ("camera_buffer",), publish=(c.TOPIC_CLIP, diag), subscribe=(camera_topic,)),
        EnclavePolicy("backbone", ("backbone",), publish=(c.TOPIC_FEATURES, diag),
                      subscribe=(c.TOPIC_CLIP, c.TOPIC_INSTRUCTION, c.TOPIC_UTTERANCE_AUDIO)),
        EnclavePolicy("action_head", ("action_head",),
                      publish=(c.TOPIC_ACTION_CHUNK, c.TOPIC_LOCO_CMD, c.TOPIC_GRIP_CMD, c.TOPIC_MARKERS,
                               c.TOPIC_NARRATION, diag),
                      subscribe=(c.TOPIC_FEATURES, c.TOPIC_JOINT_STATES, c.TOPIC_INSTRUCTION)),
        EnclavePolicy("speech_in", ("speech_in",), publish=(c.TOPIC_INSTRUCTION, c.TOPIC_UTTERANCE_AUDIO, diag)),
        EnclavePolicy("speech_out", ("speech_out",), publish=(diag,),
                      subscribe=(c.TOPIC_NARRATION, c.TOPIC_INSTRUCTION)),
        # `ros2 bag record` runs as node rosbag2_recorder and announces splits on /events/write_split
        EnclavePolicy("recorder", ("recorder", "rosbag2_recorder"), publish=(diag, "/events/write_split"),
                      subscribe=tuple(dict.fromkeys((*c.TRAINING_TOPICS, camera_topic)))),
        # the operator: `neon-ros teleop` (node neon_teleop) and `ros2` commands (nodes _ros2cli_*)
        EnclavePolicy(TELEOP, ("neon_teleop", "_ros2cli_*"),
                      publish=(c.TOPIC_TELEOP, c.TOPIC_ESTOP, c.TOPIC_INSTRUCTION), subscribe=(c.TOPIC_JOINT_STATES,),
                      call=(c.SERVICE_ENABLE, c.SERVICE_DAMP, c.SERVICE_BODY_ENABLE)),
        EnclavePolicy(CAMERA, (camera_node,),
                      publish=tuple(dict.fromkeys((camera_topic, camera_info, "/tf", "/tf_static", *camera_publish)))),
        EnclavePolicy(OBSERVER, ("_ros2cli_*",), subscribe=("/*",)),
    )


# --- XML ----------------------------------------------------------------------------------------
def _element(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    e = ET.SubElement(parent, tag)
    if text is not None:
        e.text = text
    return e


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def _dds_root(schema: str) -> ET.Element:
    return ET.Element("dds", {"xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                              "xsi:noNamespaceSchemaLocation": schema})


def _domains(parent: ET.Element, domain_id: int) -> None:
    _element(_element(parent, "domains"), "id", str(domain_id))


def _rule(grant: ET.Element, kind: str, domain_id: int, publish: list[str], subscribe: list[str]) -> None:
    rule = _element(grant, kind)
    _domains(rule, domain_id)
    for action, topics in (("publish", publish), ("subscribe", subscribe)):
        if topics:
            listed = _element(_element(rule, action), "topics")
            for t in topics:
                _element(listed, "topic", t)


def governance_xml(domain_id: int) -> bytes:
    """SROS2's default governance for ``domain_id``: authenticated participants only, every topic
    access-controlled, discovery, liveliness and data encrypted."""
    root = _dds_root(GOVERNANCE_XSD)
    rule = _element(_element(root, "domain_access_rules"), "domain_rule")
    _domains(rule, domain_id)
    for tag, text in (("allow_unauthenticated_participants", "false"), ("enable_join_access_control", "true"),
                      ("discovery_protection_kind", "ENCRYPT"), ("liveliness_protection_kind", "ENCRYPT"),
                      ("rtps_protection_kind", "ENCRYPT")):
        _element(rule, tag, text)
    topic_rule = _element(_element(rule, "topic_access_rules"), "topic_rule")
    for tag, text in (("topic_expression", "*"), ("enable_discovery_protection", "true"),
                      ("enable_liveliness_protection", "true"), ("enable_read_access_control", "true"),
                      ("enable_write_access_control", "true"), ("metadata_protection_kind", "ENCRYPT"),
                      ("data_protection_kind", "ENCRYPT")):
        _element(topic_rule, tag, text)
    return _xml_bytes(root)


def permissions_xml(policy: EnclavePolicy, domain_id: int, not_before: datetime.datetime,
                    not_after: datetime.datetime) -> bytes:
    """The permissions of ``policy``'s enclave: protected writes it may not make denied first, then its
    allow rule, default DENY."""
    name = enclave(policy.name)
    root = _dds_root(PERMISSIONS_XSD)
    grant = _element(_element(root, "permissions"), "grant")
    grant.set("name", name)
    _element(grant, "subject_name", f"CN={name}")
    validity = _element(grant, "validity")
    _element(validity, "not_before", not_before.isoformat())
    _element(validity, "not_after", not_after.isoformat())
    denied = sorted(t for t, owner in PROTECTED_WRITES.items() if owner != policy.name)
    if denied:
        _rule(grant, "deny_rule", domain_id, denied, [])
    _rule(grant, "allow_rule", domain_id, policy.dds_publish(), policy.dds_subscribe())
    _element(grant, "default", "DENY")
    return _xml_bytes(root)


# --- keys, certificates, signatures -------------------------------------------------------------
def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _certificate(subject: str, key, issuer, issuer_key, not_before, not_after, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None), critical=ca)
            .sign(issuer_key, hashes.SHA256()))


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())  # prime256v1, as DDS-Security 9.3.1 asks


def sign_smime(data: bytes, cert, key) -> bytes:
    """``data`` signed by ``cert``/``key`` as S/MIME (PKCS#7, detached, text), as SROS2 signs."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(cert, key, hashes.SHA256())
    return builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.Text, pkcs7.PKCS7Options.DetachedSignature])


def _load_or_create_ca(keystore: Path, not_before, not_after):
    """(CA certificate, CA key, created?): the keystore's CA, made when it has none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = keystore / "public" / "ca.cert.pem", keystore / "private" / "ca.key.pem"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        except (ValueError, TypeError) as exc:
            raise KeystoreError(f"cannot read the CA of {keystore} ({exc}); move the keystore away to make a "
                                "new one (every enclave must then be copied again)") from exc
        return cert, key, False
    key = _new_key()
    cert = _certificate(CA_NAME, key, None, key, not_before, not_after, ca=True)
    _write_private(key_path, _key_pem(key))
    os.chmod(key_path.parent, 0o700)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(_cert_pem(cert))
    return cert, key, True


def _alias(directory: Path, alias: str, target: str) -> None:
    link = directory / alias
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


@dataclass(frozen=True)
class Keystore:
    """What ``create_keystore`` wrote."""

    path: Path
    enclaves: tuple[str, ...]
    ca_created: bool


def create_keystore(keystore: Path, domain_id: int, days: int = 3650,
                    enclave_policies: tuple[EnclavePolicy, ...] | None = None) -> Keystore:
    """Write (or refresh, keeping its CA) the SROS2 keystore at ``keystore``."""
    if importlib.util.find_spec("cryptography") is None:
        raise KeystoreError("the `cryptography` package is missing: run `make setup` (or pip install cryptography)")
    if not 0 <= domain_id <= 232:
        raise KeystoreError(f"ROS domain id must be in [0, 232], got {domain_id}")
    if days < 1:
        raise KeystoreError(f"--days must be at least 1, got {days}")
    chosen = policies() if enclave_policies is None else enclave_policies
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    try:
        ca_cert, ca_key, created = _load_or_create_ca(keystore, not_before, not_after)
        public, private, enclaves = keystore / "public", keystore / "private", keystore / "enclaves"
        for alias in ("identity_ca.cert.pem", "permissions_ca.cert.pem"):
            _alias(public, alias, "ca.cert.pem")
        for alias in ("identity_ca.key.pem", "permissions_ca.key.pem"):
            _alias(private, alias, "ca.key.pem")
        enclaves.mkdir(parents=True, exist_ok=True)
        governance = governance_xml(domain_id)
        (enclaves / "governance.xml").write_bytes(governance)
        governance_p7s = sign_smime(governance, ca_cert, ca_key)
        (enclaves / "governance.p7s").write_bytes(governance_p7s)
        names = []
        for policy in chosen:
            name = enclave(policy.name)
            folder = enclaves / name.lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            key = _new_key()
            cert = _certificate(name, key, ca_cert, ca_key, not_before, not_after, ca=False)
            _write_private(folder / "key.pem", _key_pem(key))
            (folder / "cert.pem").write_bytes(_cert_pem(cert))
            for public_name in ("identity_ca.cert.pem", "permissions_ca.cert.pem"):
                shutil.copyfile(public / "ca.cert.pem", folder / public_name)
            (folder / "governance.p7s").write_bytes(governance_p7s)
            permissions = permissions_xml(policy, domain_id, not_before, not_after)
            (folder / "permissions.xml").write_bytes(permissions)
            (folder / "permissions.p7s").write_bytes(sign_smime(permissions, ca_cert, ca_key))
            names.append(name)
    except OSError as exc:
        raise KeystoreError(f"cannot write the keystore at {keystore}: {exc}") from exc
    return Keystore(keystore, tuple(names), created)


# --- command line -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystore", type=Path, required=True,
                        help="keystore folder (created; an existing CA is kept): use it as ROS_SECURITY_KEYSTORE")
    parser.add_argument("--domain-id", type=int, default=os.environ.get("ROS_DOMAIN_ID") or "0",
                        help="the ROS 2 domain the stack runs in (default: $ROS_DOMAIN_ID, else 0)")
    parser.add_argument("--days", type=int, default=3650, help="validity of new certificates and permissions")
    parser.add_argument("--camera-topic", default=contract.TOPIC_CAMERA,
                        help=f"the camera image topic (neon.launch.py camera_topic; default {contract.TOPIC_CAMERA})")
    parser.add_argument("--camera-node", default="camera",
                        help="node name of the camera driver that runs in enclave /neon/camera")
    parser.add_argument("--camera-publish", action="append", default=[], metavar="TOPIC",
                        help="another topic the camera driver publishes (repeatable)")


def run(args: argparse.Namespace) -> int:
    chosen = policies(args.camera_topic, args.camera_node, tuple(args.camera_publish))
    try:
        store = create_keystore(args.keystore, args.domain_id, args.days, chosen)
    except KeystoreError as exc:
        print(f"neon-ros security: {exc}", file=sys.stderr)
        return 1
    path = store.path.resolve()
    print(f"{'created' if store.ca_created else 'kept'} CA {path / 'public' / 'ca.cert.pem'} "
          f"(key in {path / 'private'}: keep it off the robot)")
    print(f"enclaves for ROS domain {args.domain_id}: {' '.join(store.enclaves)}")
    print(f"use: export ROS_SECURITY_KEYSTORE={path} ROS_SECURITY_ENABLE=true ROS_SECURITY_STRATEGY=Enforce\n"
          f"     ros2 launch neon_ros neon.launch.py ...   (nodes run in {ENCLAVE_ROOT}/NODE)\n"
          f"     ROS_SECURITY_ENCLAVE_OVERRIDE={enclave(TELEOP)} neon-ros teleop ...")
    return 0
