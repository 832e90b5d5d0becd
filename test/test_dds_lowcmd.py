"""Two real unitree_sdk2py processes: hg LowCmd_ over DDS on loopback, CRC checked by the receiver."""

import subprocess

import pytest
from support import REPO, Proc, python, random_dds_domain, ros_env

pytestmark = pytest.mark.dds


@pytest.mark.parametrize("bad", [False, True])
def test_lowcmd_crc_over_loopback(tmp_path, bad):
    domain = random_dds_domain()
    env = ros_env()
    args = ["-m", "test.peers.lowcmd_sender", str(domain), "30"] + (["bad"] if bad else [])
    with Proc(python(*args), env, tmp_path / "sender.log"):
        out = subprocess.run(python("-m", "test.peers.lowcmd_receiver", str(domain), "20"), env=env,
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    assert int(fields["n"]) >= 20, out.stdout + out.stderr
    assert float(fields["q18"]) == pytest.approx(0.75)
    assert int(fields["crc_ok"]) == (0 if bad else int(fields["n"]))
