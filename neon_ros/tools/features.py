"""`neon-ros features`: run a frozen backbone once over a data soup and cache what training needs.

Writes ``OUT/<backbone id>/shard-*.safetensors`` (features, :mod:`neon_ros.data.cache`)
and ``OUT/labels/shard-*.npz`` (targets and masks, :mod:`neon_ros.data.labels`), plus
``OUT/soup_report.json`` (samples per source, skipped episodes with their errors).
Resumable: a second run skips every sample already cached (kill it any time).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neon_ros.data.labels import LabelWriter
from neon_ros.data.training import REPORT, ee_frame_of
from neon_ros.policy.schema import Sample
from neon_ros.policy.soup import Soup, iter_soup, load_soup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--soup", required=True, type=Path, help="soup YAML (config/soup/*.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="cache folder (features + labels)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder that relative source paths resolve against (default: the soup file's folder)")
    parser.add_argument("--backbone", default="cpu_default", help="backbone preset (config/backbones/NAME.yaml)")
    parser.add_argument("--tiny", action="store_true", help="tiny random backbone config (tests)")
    parser.add_argument("--shard-size", type=int, default=256, help="samples per feature shard")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per backbone call")
    parser.add_argument("--generate", action="store_true",
                        help="first write the soup's simulated demonstrations (its `generate:` section, e.g. "
                             "config/soup/sim.yaml) into each lerobot source path that does not exist yet")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def fit_clip(frames: np.ndarray, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """A sample's clip resampled to the backbone's frame count and frame size."""
    from neon_ros.runtime.image import resize_rgb

    idx = np.round(np.linspace(0, len(frames) - 1, num_frames)).astype(int)
    return np.stack([resize_rgb(frames[i], size) for i in idx])


class FrameMemo:
    """Per-frame embedding reuse for frame-wise backbones (``frame_maps`` + ``pool``, e.g.
    cpu_default): samples a few frames apart share most of their clip, so each distinct
    frame goes through the image encoder once. Results equal ``encode_batch`` exactly; any
    other backbone is used as it is."""

    def __init__(self, backbone, capacity: int = 512):
        from collections import OrderedDict

        self.backbone = backbone
        self.memo: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.capacity = capacity
        self.frames_encoded = 0
        self.usable = hasattr(backbone, "frame_maps") and hasattr(backbone, "pool")

    def __getattr__(self, name):
        return getattr(self.backbone, name)

    def encode_batch(self, clips, instructions, audios=None) -> np.ndarray:
        if not self.usable:
            return self.backbone.encode_batch(clips, instructions, audios)
        import hashlib

        from neon_ros.backbones.base import check_clip

        keys = [[hashlib.blake2b(f.tobytes(), digest_size=16).digest() for f in
                 check_clip(c, self.backbone.frame_size, "features")] for c in clips]
        todo: dict[bytes, np.ndarray] = {}
        for clip, ks in zip(clips, keys, strict=True):
            for f, k in zip(clip, ks, strict=True):
                if k not in self.memo:
                    todo.setdefault(k, f)
        if todo:
            maps = self.backbone.frame_maps(np.stack(list(todo.values())))
            self.frames_encoded += len(todo)
            for k, m in zip(todo, maps, strict=True):
                self.memo[k] = m
        out = [self.backbone.pool(np.stack([self.memo[k] for k in ks]), text)
               for ks, text in zip(keys, instructions, strict=True)]
        for ks in keys:
            for k in ks:
                self.memo.move_to_end(k)
        while len(self.memo) > self.capacity:
            self.memo.popitem(last=False)
        return np.stack(out)


def cache_samples(samples: Iterator[Sample], labels: LabelWriter, backbone) -> Iterator:
    """Feed the cache builder, recording each sample's labels on the way. Spoken-only samples
    are left out when the backbone has no audio input (their pair then has no partner)."""
    from neon_ros.data.cache import Sample as CacheSample

    for s in samples:
        if s.audio is not None and not s.instruction and not backbone.has_audio:
            continue  # a spoken-only sample means nothing to a backbone that cannot hear
        labels.add(s)
        frames = s.frames
        audio = s.audio if backbone.has_audio else None
        yield CacheSample(s.sample_id, lambda f=frames: fit_clip(f, backbone.num_frames, backbone.frame_size),
                          s.instruction, audio)


def extract(soup: Soup, out: Path, backbone, shard_size: int = 256, batch_size: int = 8,
            progress: bool = True) -> dict:
    """Features + labels of every sample of ``soup`` under ``out``; returns the report dict."""
    from neon_ros.data.cache import build_cache

    ee_frame = soup_ee_frame(soup)
    if (out / REPORT).exists() and ee_frame_of(out) != ee_frame:
        raise ValueError(f"{out} holds labels with ee_frame {ee_frame_of(out)!r}; soup {soup.name} asks for "
                         f"{ee_frame!r}: extract into another folder")
    out.mkdir(parents=True, exist_ok=True)
    sources = soup.open()
    labels = LabelWriter(out)
    t0 = time.perf_counter()
    try:
        report = build_cache(FrameMemo(backbone), cache_samples(iter_soup(sources), labels, backbone), out,
                             shard_size=shard_size, batch_size=batch_size, progress=progress)
    finally:
        labels.close()
    summary = {
        "soup": soup.name, "backbone_id": backbone.backbone_id, "encoded": report.encoded,
        "already_cached": report.skipped, "seconds": round(time.perf_counter() - t0, 2),
        "clips_per_second": round(report.encoded / max(report.seconds, 1e-9), 2),
        "skipped_episodes": [vars(r) for src in sources for r in src.skipped], "ee_frame": ee_frame,
    }
    (out / REPORT).write_text(json.dumps(summary, indent=1))
    return summary


def soup_ee_frame(soup: Soup) -> str:
    """The hand-label frame every source of ``soup`` uses (a head learns one meaning of its ee output)."""
    frames = {s.ee_frame for s in soup.sources}
    if len(frames) != 1:
        raise ValueError(f"soup {soup.name}: sources disagree on ee_frame ({sorted(frames)}); one head has one")
    return frames.pop()


def generate_sim(soup: Soup, progress: bool = True) -> None:
    """Write the scripted-expert demonstrations a soup's ``generate:`` section asks for."""
    from neon_ros.data import sim_expert

    gen = soup.generate
    if not gen:
        raise ValueError(f"soup {soup.name} has no `generate:` section")
    for src in soup.sources:
        if src.type == "lerobot" and not src.path.exists():
            rates = sim_expert.generate(src.path, list(gen["tasks"]), int(gen["episodes_per_task"]),
                                        float(gen.get("seconds", 3.0)), int(gen.get("fps", 10)),
                                        tuple(gen.get("camera_size", (128, 128))), seed=soup.seed, progress=progress)
            print(f"sim expert -> {src.path}: success per task {rates}")


def run(args: argparse.Namespace) -> int:
    from neon_ros.backbones import load_backbone

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    soup = load_soup(args.soup, args.data_root)
    # The backbone loads before the simulator creates a GL context (see train/evaluate.py).
    backbone = load_backbone(args.backbone, **({"tiny": True} if args.tiny else {}))
    if args.generate:
        generate_sim(soup, progress=not args.no_progress)
    summary = extract(soup, args.out, backbone, args.shard_size, args.batch_size, not args.no_progress)
    print(f"features: {summary['encoded']} clips encoded ({summary['clips_per_second']} clips/s), "
          f"{summary['already_cached']} already cached, {len(summary['skipped_episodes'])} episodes skipped "
          f"-> {args.out}")
    for skip in summary["skipped_episodes"]:
        print(f"  skipped {skip['source']}/{skip['episode']}: {skip['error']}")
    return 0
