"""The demo's head: generate the simulated soup, cache cpu_default features, train, reuse.

``ensure_demo_head(cache_dir)`` returns the JSON path of a head checkpoint trained on
``config/soup/sim.yaml``'s scripted-expert demonstrations. The first call does the work
(a few minutes on 2 cores; ``quick=True``: a smaller soup and fewer steps, well under a
minute, for CI); later calls find the checkpoint under a key of the recipe and return it
at once. Concurrent callers serialise on a lock file; a killed build leaves no checkpoint
behind (the run folder is moved into place only when complete).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from neon_ros.config_files import config_file

RECIPE_VERSION = 7  # bump when the generator, features or training change the result


@dataclass(frozen=True)
class DemoRecipe:
    """How the demo head is made (the cache key hashes all of it)."""

    tasks: tuple[str, ...]
    episodes_per_task: int
    seconds: float
    fps: int
    camera_size: tuple[int, int]
    stride: float
    clip_seconds: float
    clip_lag: float
    steps: int
    batch_size: int
    d_model: int
    lr: float
    held_out: float
    perturbed: float = 0.0
    perturb_scale: float = 0.25
    joint_noise: float = 0.1
    seed: int = 0
    clip_lag_max: float = 0.0  # > clip_lag: each sample's lag drawn in [clip_lag, clip_lag_max] (slow backbones)

    def key(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if k != "clip_lag_max" or v}  # keys made before it stay
        blob = json.dumps({"v": RECIPE_VERSION, **fields}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sim_soup_path() -> Path:
    """config/soup/sim.yaml from the source tree, or from the installed share folder."""
    return config_file("soup", "sim.yaml")


def recipe(quick: bool) -> DemoRecipe:
    from neon_ros.policy.soup import load_soup

    soup = load_soup(sim_soup_path())
    gen, src = soup.generate, soup.sources[0]
    if quick:
        # CI: three contrasting tasks (both arms, reaching and periodic motion), more episodes each.
        return DemoRecipe(("reach_cup", "wave_left", "raise_hands"), 8, 4.0, int(gen["fps"]), (96, 96), src.stride,
                          src.clip_seconds, src.clip_lag, 1000, 64, 256, 2e-3, soup.held_out,
                          float(gen.get("perturbed", 0.0)), seed=soup.seed)
    return DemoRecipe(tuple(gen["tasks"]), int(gen["episodes_per_task"]), float(gen["seconds"]), int(gen["fps"]),
                      tuple(gen["camera_size"]), src.stride, src.clip_seconds, src.clip_lag, 3000, 128, 256, 2e-3,
                      soup.held_out, float(gen.get("perturbed", 0.0)), seed=soup.seed)


@contextlib.contextmanager
def _lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(r: DemoRecipe, work: Path, progress: bool = True) -> dict:
    """Generate, extract and train into ``work``; returns a summary."""
    from neon_ros.backbones import load_backbone
    from neon_ros.data import sim_expert
    from neon_ros.data.registry import SourceConfig
    from neon_ros.policy.soup import Soup
    from neon_ros.policy.train import TrainConfig, train
    from neon_ros.tools.features import extract

    backbone = load_backbone("cpu_default")  # before the simulator's GL context (see evaluate.py)
    expert = sim_expert.generate(work / "sim_g1", list(r.tasks), r.episodes_per_task, r.seconds, r.fps,
                                 r.camera_size, seed=r.seed, progress=progress, perturbed=r.perturbed,
                                 perturb_scale=r.perturb_scale)
    soup = Soup("sim", [SourceConfig("sim_g1", "lerobot", work / "sim_g1", stride=r.stride,
                                     clip_seconds=r.clip_seconds, clip_lag=r.clip_lag,
                                     clip_lag_max=r.clip_lag_max)], seed=r.seed,
                held_out=r.held_out)
    feats = extract(soup, work / "cache", backbone, progress=progress)
    result = train(TrainConfig(data=work / "cache", out=work / "run", steps=r.steps, batch_size=r.batch_size,
                               lr=r.lr, warmup=min(50, r.steps // 5), d_model=r.d_model, held_out=r.held_out,
                               joint_noise=r.joint_noise,
                               seed=r.seed, eval_every=0, checkpoint_every=r.steps, log_every=10,
                               progress=progress))
    return {"expert_success": expert, "features": {k: feats[k] for k in ("encoded", "clips_per_second")},
            "held_out": result}


def ensure_demo_head(cache_dir: Path, quick: bool = False) -> Path:
    """JSON path of the demo head checkpoint under ``cache_dir``, building it on first use."""
    r = recipe(quick)
    final = Path(cache_dir) / f"demo_head_{'quick_' if quick else ''}{r.key()}"
    ckpt = final / "head.json"
    if ckpt.exists():
        return ckpt
    with _lock(Path(cache_dir) / ".demo_head.lock"):
        if ckpt.exists():  # another process built it while we waited
            return ckpt
        work = final.with_name(final.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        summary = build(r, work)
        final.mkdir(parents=True, exist_ok=True)
        for name in ("head.json", "head.safetensors", "train_log.csv", "eval_log.csv"):
            if (work / "run" / name).exists():
                shutil.copy2(work / "run" / name, final / f".{name}.part")
        (final / "summary.json").write_text(json.dumps(summary, indent=1))
        (final / ".head.safetensors.part").replace(final / "head.safetensors")
        for name in ("train_log.csv", "eval_log.csv"):
            if (final / f".{name}.part").exists():
                (final / f".{name}.part").replace(final / name)
        (final / ".head.json.part").replace(ckpt)  # last: its presence means complete
        shutil.rmtree(work, ignore_errors=True)
    return ckpt
