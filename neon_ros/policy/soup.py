"""The data soup: a YAML recipe of sources and weights, streamed and mixed deterministically.

A soup file (``config/soup/*.yaml``)::

    name: sim                 # a label for reports
    seed: 0                   # sampler seed (the training CLI can override it)
    held_out: 0.15            # fraction of EPISODES kept for open-loop evaluation
    sources:
      - {name: sim_g1, type: lerobot, path: sim_g1, weight: 3.0, stride: 0.2}
      - {name: voice, type: voice, path: voice/manifest.jsonl, weight: 0.5}

Relative paths resolve against ``data_root`` when given (``--data-root``), else against
the soup file's folder; ``$VARS`` and ``~`` expand. Each entry's fields are those of
:class:`~neon_ros.data.registry.SourceConfig`.

:class:`SoupSampler` draws a source for each batch slot with probability proportional to
its weight, then a sample of that source uniformly: batch ``b`` depends only on
``(seed, b)``, so a resumed run draws exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from neon_ros.data.registry import Source, SourceConfig, open_source
from neon_ros.policy.schema import Sample

SOUP_FIELDS = {"name", "seed", "held_out", "sources", "generate", "description"}


@dataclass
class Soup:
    """A parsed soup file. ``generate`` is free-form (read by the simulated-data generator)."""

    name: str
    sources: list[SourceConfig]
    seed: int = 0
    held_out: float = 0.15
    generate: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError(f"soup {self.name}: no sources")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"soup {self.name}: duplicate source names {names}")
        if not 0.0 <= self.held_out < 1.0:
            raise ValueError(f"soup {self.name}: held_out must be in [0, 1), got {self.held_out}")

    def weights(self) -> dict[str, float]:
        total = sum(s.weight for s in self.sources)
        return {s.name: s.weight / total for s in self.sources}

    def open(self) -> list[Source]:
        return [open_source(s) for s in self.sources]


def load_soup(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Soup:
    """Read and validate a soup YAML; errors name the file and the offending entry."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read soup YAML ({exc})") from exc
    unknown = set(doc) - SOUP_FIELDS
    if unknown:
        raise ValueError(f"{path}: unknown soup fields {sorted(unknown)}; known: {sorted(SOUP_FIELDS)}")
    base = Path(data_root) if data_root else path.parent
    sources = []
    for i, entry in enumerate(doc.get("sources") or []):
        try:
            entry = dict(entry)
            p = Path(os.path.expanduser(os.path.expandvars(str(entry["path"]))))
            entry["path"] = p if p.is_absolute() else base / p
            sources.append(SourceConfig(**entry))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: sources[{i}]: {exc}") from exc
    return Soup(name=str(doc.get("name", path.stem)), sources=sources, seed=int(doc.get("seed", 0)),
                held_out=float(doc.get("held_out", 0.15)), generate=dict(doc.get("generate") or {}), path=path)


def iter_soup(sources: list[Source]) -> Iterator[Sample]:
    """Every sample of every source, source after source (the feature extractor's order)."""
    for src in sources:
        yield from src.samples()


def is_held_out(source: str, episode: str, fraction: float) -> bool:
    """Stable episode-level split: the same episodes are held out on every machine and run."""
    digest = hashlib.sha256(f"{source}/{episode}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


class SoupSampler:
    """Weighted, seeded mixing of sources. ``groups`` maps source name -> sample indices."""

    def __init__(self, groups: dict[str, np.ndarray], weights: dict[str, float], seed: int = 0):
        self.names = [n for n in groups if len(groups[n]) > 0]
        if not self.names:
            raise ValueError("SoupSampler: every source is empty")
        missing = [n for n in self.names if n not in weights]
        if missing:
            raise ValueError(f"SoupSampler: no weight for sources {missing}")
        self.groups = {n: np.asarray(groups[n], np.int64) for n in self.names}
        w = np.array([float(weights[n]) for n in self.names])
        if np.any(w <= 0):
            raise ValueError("SoupSampler: weights must be > 0")
        self.probs = w / w.sum()
        self.seed = int(seed)

    def mixture(self) -> dict[str, float]:
        """Effective mixture: the weights renormalised over the sources that have samples."""
        return dict(zip(self.names, self.probs.tolist(), strict=True))

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        """Indices of batch ``step`` (a pure function of seed, step and batch size)."""
        rng = np.random.Generator(np.random.PCG64([self.seed, int(step)]))
        which = rng.choice(len(self.names), size=batch_size, p=self.probs)
        out = np.empty(batch_size, np.int64)
        for g, name in enumerate(self.names):
            sel = which == g
            if sel.any():
                idx = self.groups[name]
                out[sel] = idx[rng.integers(0, len(idx), size=int(sel.sum()))]
        return out

    def source_of(self) -> dict[int, str]:
        return {int(i): n for n, idx in self.groups.items() for i in idx}

    def report(self, steps: int, batch_size: int) -> str:
        """A table of target weight vs the empirical share over the first ``steps`` batches."""
        counts = dict.fromkeys(self.names, 0)
        owner = self.source_of()
        for s in range(steps):
            for i in self.batch(s, batch_size):
                counts[owner[int(i)]] += 1
        total = max(sum(counts.values()), 1)
        lines = [f"{'source':<20} {'samples':>8} {'weight':>8} {'drawn':>8}"]
        for n, p in zip(self.names, self.probs, strict=True):
            lines.append(f"{n:<20} {len(self.groups[n]):>8} {p:>8.3f} {counts[n] / total:>8.3f}")
        return "\n".join(lines)
