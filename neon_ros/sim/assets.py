"""The G1 MJCF and meshes, taken from the mjlab==1.6.0 wheel (`neon-ros assets` fetches them).

The wheel is fetched with ``pip download --no-deps`` (mjlab itself is never installed),
only the G1 files are extracted into the cache directory ($NEON_ASSETS, else the user
cache dir), checked against the wheel's own RECORD hashes, and the model's notice is
written beside them. Nothing here runs at import time.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from neon_ros.errors import NeonError

MJLAB_VERSION = "1.6.0"
WHEEL_NAME = f"mjlab-{MJLAB_VERSION}-py3-none-any.whl"
G1_PREFIX = "mjlab/asset_zoo/robots/unitree_g1/xmls/"
G1_DIRNAME = "unitree_g1"
MANIFEST = "manifest.json"

NOTICE = f"""Unitree G1 (29 DoF, rev 1.0) MuJoCo model and meshes.

Source: the mjlab {MJLAB_VERSION} wheel on PyPI (mjlab/asset_zoo/robots/unitree_g1/xmls),
which carries the model from MuJoCo Menagerie (unitree_g1), made by Unitree Robotics and
released under the BSD-3-Clause license; mjlab itself is Apache-2.0 (its LICENSE is
reproduced in LICENSE.mjlab beside this file). Neon extracts these files unchanged.

BSD 3-Clause License: Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials
   provided with the distribution.
3. Neither the name of the copyright holder nor the names of its contributors may be used
   to endorse or promote products derived from this software without specific prior
   written permission.
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS
OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED.
"""


class AssetError(NeonError, RuntimeError):
    """The G1 model is missing or damaged; the message says what to do."""


def cache_root() -> Path:
    """$NEON_ASSETS, else $XDG_CACHE_HOME/neon, else ~/.cache/neon."""
    env = os.environ.get("NEON_ASSETS")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "neon"


def g1_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / G1_DIRNAME


def _record_hashes(wheel: zipfile.ZipFile) -> dict[str, str]:
    record_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    rows = csv.reader(io.StringIO(wheel.read(record_name).decode()))
    return {row[0]: row[1] for row in rows if len(row) >= 2 and row[1]}


def _sha256_b64(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def download_wheel(dest: Path) -> Path:
    """pip download the mjlab wheel (no dependencies, nothing installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "-d", str(dest), f"mjlab=={MJLAB_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.exists():
        raise AssetError(
            f"could not download {WHEEL_NAME} from the package index (no network?): connect to "
            f"PyPI and run `neon-ros assets` again, or run `neon-ros assets --wheel PATH` with a "
            f"copy of the wheel, or point NEON_ASSETS at an existing G1 folder."
        )
    return wheel


def extract(wheel_path: Path, root: Path) -> Path:
    """Extract and verify the G1 files of the wheel into root/unitree_g1; returns the MJCF path."""
    target = g1_dir(root)
    tmp = Path(tempfile.mkdtemp(prefix=".g1-", dir=root))
    manifest: dict[str, str] = {}
    with zipfile.ZipFile(wheel_path) as wheel:
        hashes = _record_hashes(wheel)
        members = [n for n in wheel.namelist() if n.startswith(G1_PREFIX) and not n.endswith("/")]
        if not members:
            raise AssetError(f"{wheel_path} holds no G1 model under {G1_PREFIX}")
        for name in members:
            data = wheel.read(name)
            if hashes.get(name) and hashes[name] != _sha256_b64(data):
                raise AssetError(f"{name} in {wheel_path} does not match the wheel's RECORD hash")
            rel = name[len(G1_PREFIX):]
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            manifest[rel] = _sha256_b64(data)
        license_name = next((n for n in wheel.namelist() if n.endswith("licenses/LICENSE")), None)
        if license_name:
            (tmp / "LICENSE.mjlab").write_bytes(wheel.read(license_name))
    (tmp / "NOTICE").write_text(NOTICE)
    (tmp / MANIFEST).write_text(json.dumps({"source": WHEEL_NAME, "files": manifest}, indent=1))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)  # atomic on one filesystem: a killed run leaves no half folder
    return target / "g1.xml"


def verify(root: Path | None = None) -> Path:
    """The G1 MJCF path if the cached files are complete and unchanged, else AssetError."""
    d = g1_dir(root)
    manifest_path = d / MANIFEST
    if not manifest_path.exists():
        raise AssetError(f"no G1 model in {d}: run `neon-ros assets` (needs PyPI once)")
    files = json.loads(manifest_path.read_text())["files"]
    for rel, digest in files.items():
        p = d / rel
        if not p.exists() or _sha256_b64(p.read_bytes()) != digest:
            raise AssetError(f"G1 asset {p} is missing or changed: run `neon-ros assets --force`")
    return d / "g1.xml"


def g1_mjcf_path() -> Path:
    """The verified G1 MJCF, for the simulator and kinematics (raises AssetError)."""
    return verify()


def ensure(force: bool = False, wheel: Path | None = None) -> Path:
    """The G1 MJCF: the cached one if it verifies (unless ``force``), else extracted from ``wheel``
    or from a freshly downloaded wheel (raises AssetError)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if not force:
        try:
            return verify(root)
        except AssetError:
            pass
    if wheel is not None:
        return extract(wheel, root)
    with tempfile.TemporaryDirectory() as tmp:
        return extract(download_wheel(Path(tmp)), root)
