"""Feature cache: run a frozen backbone ONCE over a dataset, keep its pooled features on disk.

The backbone is frozen, so training the head never needs to run it again. Layout::

    ROOT/<backbone_id>/manifest.json             {"backbone_id", "width", "format": 1}, plus
                                                 "modality_slices" {name: [start, stop]} for a
                                                 backbone whose features have them (TRIBE v2)
    ROOT/<backbone_id>/shard-00000.safetensors   "features" (N, width) float32; metadata "neon" =
                                                 JSON {"backbone_id", "ids": [sample ids, row order]}
    ROOT/<backbone_id>/shard-00001.safetensors   ...

Writing (``build_cache``):

    from neon_ros.backbones import load_backbone
    from neon_ros.data.cache import Sample, build_cache
    bb = load_backbone("cpu_default")
    samples = (Sample(sid, frames_or_callable, instruction, audio_or_None) for ...)
    report = build_cache(bb, samples, root="features/", shard_size=256, total=len(dataset))

- ``Sample.frames`` (and ``audio``) may be a zero-argument callable returning the array, so
  samples that are already cached are never decoded.
- Samples are grouped into shards in iteration order; each shard is written atomically
  (temporary file + ``os.replace``), so a kill leaves only whole shards. Re-running skips
  every sample id already in a shard: with the same sample order (and batch_size), a resumed run writes
  byte-identical shards to an uninterrupted one (safetensors files carry no timestamps).
- A tqdm progress bar shows samples done / total (``progress=False`` to silence it).

Reading (training):

    from neon_ros.data.cache import FeatureCache
    cache = FeatureCache.open("features/", bb.backbone_id)   # or FeatureCache.open_dir(path)
    cache.has("ep3/t120"); cache.get("ep3/t120")             # (width,) float32
    cache.ids()                                              # list[str], shard order
    cache.modality_slices                                    # {} or {"video": (0, 1024), ...}
    ids, feats = cache.load_all()                            # list[str], (N, width) float32

Sample ids are any non-empty strings, unique within one backbone's cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.safetensors"
FORMAT_VERSION = 1


@dataclasses.dataclass
class Sample:
    """One sample to encode: id, clip (T, H, W, 3) uint8, instruction, optional 16 kHz audio.

    ``frames`` and ``audio`` may be zero-argument callables (decoded only when needed).
    """

    sample_id: str
    frames: np.ndarray | Callable[[], np.ndarray]
    instruction: str = ""
    audio: np.ndarray | Callable[[], np.ndarray | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sample_id, str) or not self.sample_id:
            raise ValueError(f"Sample.sample_id must be a non-empty str, got {self.sample_id!r}")


@dataclasses.dataclass
class CacheReport:
    """What one build_cache run did."""

    directory: Path
    encoded: int
    skipped: int
    shards_written: int
    seconds: float


def safe_dirname(backbone_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", backbone_id)
    if not name or name in {".", ".."}:
        raise ValueError(f"unusable backbone id {backbone_id!r}")
    return name


class FeatureCache:
    """Reader/writer of one backbone's cached features (see the module docstring)."""

    def __init__(self, directory: Path, backbone_id: str, width: int,
                 modality_slices: dict[str, tuple[int, int]] | None = None) -> None:
        self.directory = Path(directory)
        self.backbone_id = backbone_id
        self.width = int(width)
        # the backbone's modality -> [start, stop) (Backbone.modality_slices); {} = one undivided vector
        self.modality_slices = {m: (int(a), int(b)) for m, (a, b) in (modality_slices or {}).items()}
        self._index: dict[str, tuple[Path, int]] = {}
        self._order: list[str] = []
        self._loaded: dict[Path, np.ndarray] = {}
        self.refresh()

    # -- opening ---------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, backbone_id: str, width: int,
               modality_slices: dict[str, tuple[int, int]] | None = None) -> FeatureCache:
        directory = Path(root) / safe_dirname(backbone_id)
        directory.mkdir(parents=True, exist_ok=True)
        manifest = directory / MANIFEST
        slices = {m: [int(a), int(b)] for m, (a, b) in (modality_slices or {}).items()}
        data = json.loads(manifest.read_text()) if manifest.exists() else {}
        if data and (data.get("backbone_id") != backbone_id or int(data.get("width", -1)) != int(width)):
            raise ValueError(
                f"feature cache {directory} holds {data.get('backbone_id')} width {data.get('width')}, "
                f"not {backbone_id} width {width}; use another --out folder"
            )
        if data and data.get("modality_slices", slices) != slices:
            raise ValueError(f"feature cache {directory} has modality slices {data['modality_slices']}, the backbone "
                             f"{slices}; use another --out folder")
        if not data or (slices and "modality_slices" not in data):  # new, or written before slices were recorded
            entry = {"backbone_id": backbone_id, "width": int(width), "format": FORMAT_VERSION}
            _atomic_write_bytes(manifest, json.dumps({**entry, **({"modality_slices": slices} if slices else {})}).encode())
        return cls(directory, backbone_id, width, modality_slices)

    @classmethod
    def open(cls, root: str | Path, backbone_id: str) -> FeatureCache:
        return cls.open_dir(Path(root) / safe_dirname(backbone_id))

    @classmethod
    def open_dir(cls, directory: str | Path) -> FeatureCache:
        manifest = Path(directory) / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(
                f"no feature cache in {directory} (missing {MANIFEST}); build one with `neon-ros features`"
            )
        data = json.loads(manifest.read_text())
        return cls(Path(directory), str(data["backbone_id"]), int(data["width"]), data.get("modality_slices"))

    # -- reading ---------------------------------------------------------------
    def shard_paths(self) -> list[Path]:
        return sorted(self.directory.glob(SHARD_GLOB))

    def refresh(self) -> None:
        """Re-read the shard headers (cheap: ids only, features load lazily)."""
        from safetensors import safe_open

        self._index.clear()
        self._order.clear()
        self._loaded.clear()
        for path in self.shard_paths():
            with safe_open(str(path), framework="numpy") as fh:
                ids = json.loads((fh.metadata() or {}).get("neon", "{}")).get("ids", [])
            for row, sid in enumerate(ids):
                if sid in self._index:
                    raise ValueError(f"feature cache {self.directory}: sample {sid!r} appears in two shards")
                self._index[sid] = (path, row)
                self._order.append(sid)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._index

    def has(self, sample_id: str) -> bool:
        return sample_id in self._index

    def ids(self) -> list[str]:
        return list(self._order)

    def _shard(self, path: Path) -> np.ndarray:
        if path not in self._loaded:
            from safetensors.numpy import load_file

            self._loaded[path] = load_file(str(path))["features"]
        return self._loaded[path]

    def get(self, sample_id: str) -> np.ndarray:
        if sample_id not in self._index:
            raise KeyError(f"sample {sample_id!r} is not in the feature cache {self.directory}")
        path, row = self._index[sample_id]
        return self._shard(path)[row]

    def load_all(self) -> tuple[list[str], np.ndarray]:
        """Every cached sample: (ids, (N, width) float32), in shard order."""
        if not self._order:
            return [], np.zeros((0, self.width), np.float32)
        feats = np.concatenate([self._shard(p) for p in self.shard_paths()])
        return self.ids(), feats

    # -- writing ---------------------------------------------------------------
    def next_shard_path(self) -> Path:
        paths = self.shard_paths()
        nxt = int(paths[-1].stem.split("-")[1]) + 1 if paths else 0
        return self.directory / f"shard-{nxt:05d}.safetensors"

    def write_shard(self, ids: list[str], features: np.ndarray) -> Path:
        from safetensors.numpy import save

        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape != (len(ids), self.width):
            raise ValueError(f"shard features {features.shape} do not match {len(ids)} ids x width {self.width}")
        if not np.all(np.isfinite(features)):
            raise ValueError("refusing to cache non-finite features")
        path = self.next_shard_path()
        # One metadata key: safetensors does not keep the order of several, and shards must be byte-stable.
        meta = json.dumps({"backbone_id": self.backbone_id, "ids": ids})
        blob = save({"features": features}, metadata={"neon": meta})
        _atomic_write_bytes(path, blob)
        for row, sid in enumerate(ids):
            self._index[sid] = (path, row)
            self._order.append(sid)
        return path


def _atomic_write_bytes(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _materialise(value: Any) -> Any:
    return value() if callable(value) else value


def build_cache(
    backbone: Any,
    samples: Iterable[Sample | tuple],
    root: str | Path,
    shard_size: int = 256,
    batch_size: int = 8,
    total: int | None = None,
    progress: bool = True,
) -> CacheReport:
    """Encode every sample not yet cached and write shards (see the module docstring)."""
    import time

    from tqdm import tqdm

    if shard_size < 1 or batch_size < 1:
        raise ValueError("shard_size and batch_size must be >= 1")
    t0 = time.perf_counter()
    # duck-typed backbones (tests, wrappers) without slices are one undivided vector
    cache = FeatureCache.create(root, backbone.backbone_id, backbone.width, getattr(backbone, "modality_slices", None))
    for stale in cache.directory.glob(".shard-*.tmp*"):  # a kill mid-write leaves these
        stale.unlink(missing_ok=True)
    pending: list[Sample] = []
    encoded = skipped = shards = 0
    seen: set[str] = set()
    bar = tqdm(total=total, desc=f"features {backbone.backbone_id}", unit="clip", disable=not progress)

    def flush() -> None:
        nonlocal encoded, shards
        feats = []
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            feats.append(
                backbone.encode_batch(
                    [_materialise(s.frames) for s in chunk],
                    [s.instruction for s in chunk],
                    [_materialise(s.audio) for s in chunk],
                )
            )
            bar.update(len(chunk))
        cache.write_shard([s.sample_id for s in pending], np.concatenate(feats))
        encoded += len(pending)
        shards += 1
        pending.clear()

    try:
        for item in samples:
            sample = item if isinstance(item, Sample) else Sample(*item)
            if sample.sample_id in seen:
                raise ValueError(f"duplicate sample id {sample.sample_id!r} in the dataset")
            seen.add(sample.sample_id)
            if cache.has(sample.sample_id):
                skipped += 1
                bar.update(1)
                continue
            pending.append(sample)
            if len(pending) >= shard_size:
                flush()
        if pending:
            flush()
    finally:
        bar.close()
    return CacheReport(cache.directory, encoded, skipped, shards, time.perf_counter() - t0)
