"""`neon-ros bench bridge`'s scheduler floor: its figures, and the probe process it runs."""

import contextlib
import signal
import subprocess
import sys

import numpy as np
from support import REPO

from neon_ros.tools.bench.bridge_safety import floor_figures

MS = 1_000_000


def test_figures_of_a_window():
    # 500 Hz wake-ups over 1 s, one of them 7 ms late after an 11 ms gap (4 wake-ups lost)
    wall = np.arange(500) * 2 * MS
    wall = np.concatenate([wall[:100], wall[104:] + 1 * MS])
    late = np.full(wall.size, 50_000)
    late[100] = 7 * MS
    rows = np.stack([wall, late], axis=1)
    f = floor_figures(rows, 0, 1000 * MS)
    assert f["rate_pct"] == 100.0 * 496 / 500
    assert f["max_late_ms"] == 7.0
    assert f["max_gap_ms"] == 11.0
    inner = floor_figures(rows, 300 * MS, 400 * MS)  # only the window counts
    assert inner["rate_pct"] == 100.0 and inner["max_late_ms"] == 0.05 and inner["max_gap_ms"] == 2.0
    empty = floor_figures(rows, 2000 * MS, 3000 * MS)
    assert empty["rate_pct"] == 0.0 and np.isnan(empty["max_late_ms"])


@contextlib.contextmanager
def _probe(out, *args: str):
    """The probe, started and past its status line; killed however the test ends."""
    probe = subprocess.Popen([sys.executable, "-m", "neon_ros.tools.bench.sched_floor", "--out", str(out), *args],
                             cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        first = probe.stdout.readline()
        assert first.startswith("sched_floor: normal priority"), first
        yield probe
    finally:
        probe.kill()
        probe.wait()


def test_the_probe_records_each_wake_up(tmp_path):
    out = tmp_path / "floor.npy"
    with _probe(out, "--slice-us", "100", "--seconds", "0.2") as probe:
        assert probe.wait(timeout=30) == 0
    rows = np.load(out)
    assert rows.shape == (101, 2)  # 0.2 s of 2 ms deadlines, counted, not timed
    assert np.all(np.diff(rows[:, 0]) > 0)  # one row per wake-up, in order
    assert np.all(rows[:, 1] >= 0)  # a wake-up is never before its deadline


def test_the_probe_stops_and_saves_on_sigint(tmp_path):
    out = tmp_path / "floor.npy"
    with _probe(out) as probe:
        probe.send_signal(signal.SIGINT)
        assert probe.wait(timeout=30) == 0
    assert np.load(out).shape[1] == 2
