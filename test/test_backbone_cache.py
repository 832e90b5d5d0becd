"""The feature cache: shards keyed by backbone id + sample id, resumable, identical after resume."""

from __future__ import annotations

import numpy as np
import pytest

from neon_ros.backbones import load_backbone
from neon_ros.data.cache import FeatureCache, Sample, build_cache


@pytest.fixture(scope="module")
def bb():
    return load_backbone("cpu_default")


def dataset(n: int, decoded: list[str] | None = None, crash_at: int | None = None):
    """n small clips; frames are decoded lazily (recorded in `decoded`); raises at index crash_at."""
    for i in range(n):
        if crash_at is not None and i == crash_at:
            raise RuntimeError("simulated crash")

        def frames(i=i):
            if decoded is not None:
                decoded.append(f"s{i:02d}")
            rng = np.random.default_rng(i)
            return rng.integers(0, 255, (1, 256, 256, 3), dtype=np.uint8)  # one frame keeps CI fast

        yield Sample(f"s{i:02d}", frames, f"task {i % 3}")


def shard_bytes(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.glob("shard-*.safetensors"))}


def test_cache_resumes_and_matches_uninterrupted_run(bb, tmp_path):
    full = build_cache(bb, dataset(7), tmp_path / "full", shard_size=3, batch_size=2, total=7, progress=False)
    assert (full.encoded, full.skipped, full.shards_written) == (7, 0, 3)

    part_root = tmp_path / "part"
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_cache(bb, dataset(7, crash_at=6), part_root, shard_size=3, batch_size=2, progress=False)
    cache_dir = part_root / full.directory.name
    assert len(FeatureCache.open(part_root, bb.backbone_id)) == 6  # two whole shards; nothing of the third
    (cache_dir / ".shard-00002.safetensors.tmp999").write_bytes(b"half a shard")  # what a kill mid-write leaves

    decoded: list[str] = []
    resumed = build_cache(bb, dataset(7, decoded), part_root, shard_size=3, batch_size=2, progress=False)
    assert (resumed.encoded, resumed.skipped) == (1, 6)
    assert decoded == ["s06"]  # cached samples were never decoded again
    assert not list(cache_dir.glob(".shard-*"))
    assert shard_bytes(cache_dir) == shard_bytes(full.directory)

    again = build_cache(bb, dataset(7), part_root, shard_size=3, progress=False)
    assert (again.encoded, again.skipped, again.shards_written) == (0, 7, 0)


def test_reader_api(bb, tmp_path):
    build_cache(bb, dataset(4), tmp_path, shard_size=3, progress=False)  # shards of 3 + 1
    cache = FeatureCache.open(tmp_path, bb.backbone_id)
    assert cache.ids() == ["s00", "s01", "s02", "s03"] and cache.has("s03") and not cache.has("s04")
    ids, feats = cache.load_all()
    assert feats.shape == (4, bb.width) and feats.dtype == np.float32
    clip = next(iter(dataset(4)))
    np.testing.assert_allclose(cache.get("s00"), bb.encode(clip.frames(), clip.instruction), rtol=1e-4, atol=1e-4)
    with pytest.raises(KeyError, match="s09"):
        cache.get("s09")
    with pytest.raises(ValueError, match="use another --out folder"):
        FeatureCache.create(tmp_path, bb.backbone_id, bb.width + 1)
    with pytest.raises(FileNotFoundError, match="neon-ros features"):
        FeatureCache.open(tmp_path, "qwen2_5_omni_3b.L-1")


# A deterministic stand-in for a frozen backbone: this test is about the cache unit only
# (a real SIGKILL of the writing process), so it must start in a fraction of a second.
WRITER = """
import sys, time
import numpy as np
from neon_ros.data.cache import Sample, build_cache

class Digest:
    backbone_id = "digest.L-1"
    width = 16

    def encode_batch(self, clips, texts, audios):
        time.sleep(float(sys.argv[2]))
        return np.stack([np.resize(c.astype(np.float32).ravel(), 16) + len(t) for c, t in zip(clips, texts)])

samples = (Sample(f"s{i:03d}", np.full((1, 4, 4, 3), i, np.uint8), "x" * (i % 5)) for i in range(40))
build_cache(Digest(), samples, sys.argv[1], shard_size=2, batch_size=2, progress=False)
"""


@pytest.mark.timeout(120)
def test_cache_survives_sigkill(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from support import REPO

    def writer(root, delay):
        return subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(delay)], cwd=REPO)

    assert writer(tmp_path / "full", 0).wait(60) == 0
    victim = writer(tmp_path / "killed", 0.1)
    shards = tmp_path / "killed" / "digest.L-1"
    deadline = time.monotonic() + 60
    while len(list(shards.glob("shard-*.safetensors"))) < 5 and victim.poll() is None:
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    done = len(list(shards.glob("shard-*.safetensors")))
    assert 5 <= done < 20  # killed part-way
    assert writer(tmp_path / "killed", 0).wait(60) == 0
    assert shard_bytes(shards) == shard_bytes(tmp_path / "full" / "digest.L-1")
    assert len(FeatureCache.open(tmp_path / "killed", "digest.L-1")) == 40
