"""`neon-ros assets`: cached, verified, licensed; a clear one-line failure without network."""

import subprocess
import sys
from pathlib import Path

import mujoco
import pytest
from support import script

from neon_ros.sim import assets


def test_cli_prints_a_loadable_mjcf():
    out = subprocess.run(script("neon-ros") + ["assets", "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip().splitlines()[-1])
    model = mujoco.MjModel.from_xml_path(str(path))
    assert model.njnt == 30  # free joint + 29 hinges
    assert "BSD-3-Clause" in (path.parent / "NOTICE").read_text()
    assert (path.parent / "LICENSE.mjlab").exists()


def test_changed_file_is_detected(tmp_path, monkeypatch):
    src = assets.g1_dir()
    import shutil

    shutil.copytree(src, tmp_path / assets.G1_DIRNAME)
    monkeypatch.setenv("NEON_ASSETS", str(tmp_path))
    assert assets.verify() == tmp_path / assets.G1_DIRNAME / "g1.xml"
    (tmp_path / assets.G1_DIRNAME / "g1.xml").write_text("<mujoco/>")
    with pytest.raises(assets.AssetError, match="--force"):
        assets.verify()


def test_no_network_no_cache_says_what_to_do(tmp_path):
    env = {"NEON_ASSETS": str(tmp_path / "empty"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "0", "PIP_TIMEOUT": "2",
           "PIP_RETRIES": "0", "PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "neon_ros.cli", "assets"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "neon-ros assets" in lines[0] and "PyPI" in lines[0]
