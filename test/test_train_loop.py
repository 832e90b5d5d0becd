"""Training: 2-step train + resume, kill -9 then resume = uninterrupted weights, DDP on gloo;
weight decay on Linear matrices only; `neon-ros train` options come from TrainConfig."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from neon_ros import g1
from neon_ros.data.labels import LabelWriter
from neon_ros.policy.model import ActionHead, HeadConfig
from neon_ros.policy.schema import PROPRIO_DIM, Sample, empty_masks, empty_targets
from neon_ros.policy.train import TrainConfig, param_groups, train
from neon_ros.tools import train as train_cli

REPO = Path(__file__).resolve().parents[1]
WIDTH = 32
TINY = ["--d-model", "32", "--layers", "1", "--threads", "1", "--no-progress", "--held-out", "0.25"]


def make_data(root: Path, episodes: int = 8, per_episode: int = 8, seed: int = 0) -> Path:
    """A `neon-ros features` folder: a feature cache + labels whose joint deltas follow the features."""
    from neon_ros.data.cache import FeatureCache

    rng = np.random.default_rng(seed)
    writer = LabelWriter(root, shard_size=16)
    ids, feats = [], []
    for e in range(episodes):
        for k in range(per_episode):
            f = rng.normal(size=WIDTH).astype(np.float32)
            t, m = empty_targets(), empty_masks()
            t["joint_delta"][:] = np.outer(np.arange(16) / 16, np.tanh(f[:29] if WIDTH >= 29 else f[0]))
            m["joint_delta"][:] = 1.0
            sid = f"{'ab'[e % 2]}/ep{e}/{k:04d}"
            writer.add(Sample(sid, "ab"[e % 2], "g1", "do it", None, g1.STANDING_POSE.tolist() + [0.0] * 29,
                              np.ones(PROPRIO_DIM, np.float32), t, m, episode=f"ep{e}"))
            ids.append(sid)
            feats.append(f)
    writer.close()
    FeatureCache.create(root, "synthetic", WIDTH).write_shard(ids, np.stack(feats))
    return root


def config(data: Path, out: Path, steps: int, **kw) -> TrainConfig:
    base = dict(batch_size=16, warmup=2, d_model=32, layers=1, threads=1, progress=False, held_out=0.25,
                checkpoint_every=5, eval_every=0, log_every=1, lr=3e-3)
    return TrainConfig(data=data, out=out, steps=steps, **{**base, **kw})


def weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "head.safetensors"))


def test_two_step_train_then_resume(tmp_path):
    data = make_data(tmp_path / "data")
    train(config(data, tmp_path / "run", 2))
    assert torch.load(tmp_path / "run" / "train_state.pt", weights_only=False)["step"] == 2
    result = train(config(data, tmp_path / "run", 4), resume=True)
    assert torch.load(tmp_path / "run" / "train_state.pt", weights_only=False)["step"] == 4
    rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # each step logged once
    assert "joint_delta" in result and (tmp_path / "run" / "head.json").exists()


def test_weight_decay_only_on_linear_matrices(tmp_path):
    model = ActionHead(HeadConfig(feature_dim=WIDTH, d_model=32, layers=2))
    names = {id(p): n for n, p in model.named_parameters()}
    decay, rest = param_groups(model, 0.05)
    assert (decay["weight_decay"], rest["weight_decay"]) == (0.05, 0.0)
    decayed = sorted(names[id(p)] for p in decay["params"])
    linears = ["blocks.0.fc", "blocks.0.proj", "blocks.1.fc", "blocks.1.proj", "feat", "in_proj",
               *(f"out.{c}" for c in ("ee", "grip", "joint_delta", "loco")), "proprio"]
    assert decayed == sorted(f"{m}.weight" for m in linears)
    assert sorted(names[id(p)] for p in rest["params"]) == sorted(
        [f"{m}.bias" for m in linears] + ["embodiment.weight", "blocks.0.alpha", "blocks.1.alpha"])
    data = make_data(tmp_path / "data")
    train(config(data, tmp_path / "run", 1, weight_decay=0.05, layers=2))
    groups = torch.load(tmp_path / "run" / "train_state.pt", weights_only=False)["optimizer"]["param_groups"]
    assert [(g["weight_decay"], len(g["params"])) for g in groups] == [(0.05, len(linears)), (0.0, len(linears) + 3)]


def test_cli_options_are_the_train_config_fields(tmp_path):
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    options = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["option"]}
    assert {"--data", "--out", "--batch-size", "--no-progress", "--soup", "--resume"} <= flags
    assert {"min_lr_ratio", "grad_clip", "weights"}.isdisjoint(options)
    args = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "7", "--lr", "3e-3", *TINY]
    cfg = train_cli.config_from_args(parser.parse_args(args))
    assert cfg == TrainConfig(data=tmp_path, out=tmp_path / "run", steps=7, lr=3e-3, d_model=32, layers=1,
                              threads=1, progress=False, held_out=0.25)
    assert train_cli.config_from_args(parser.parse_args(args[:4])) == TrainConfig(data=tmp_path, out=tmp_path / "run")
    with pytest.raises(ValueError, match="held_out"):
        train_cli.config_from_args(parser.parse_args([*args[:4], "--held-out", "1.5"]))


@pytest.mark.timeout(240)
def test_resume_after_kill_9_gives_the_uninterrupted_weights(tmp_path):
    data = make_data(tmp_path / "data")
    steps = 200
    train(config(data, tmp_path / "straight", steps))
    cmd = [sys.executable, "-m", "neon_ros.cli", "train", "--data", str(data), "--out", str(tmp_path / "killed"),
           "--steps", str(steps), "--batch-size", "16", "--warmup", "2", "--lr", "3e-3", "--checkpoint-every", "5",
           "--eval-every", "0", "--log-every", "1", *TINY]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = tmp_path / "killed" / "train_state.pt"
    deadline = time.monotonic() + 180
    step = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            step = torch.load(state, weights_only=False)["step"]
            if step >= 20:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    killed_at = torch.load(state, weights_only=False)["step"]
    assert 20 <= killed_at < steps
    train(config(data, tmp_path / "killed", steps), resume=True)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = (tmp_path / "killed" / "train_log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, steps + 1))


@pytest.mark.timeout(240)
def test_ddp_two_cpu_processes_on_gloo_match_one_process(tmp_path):
    data = make_data(tmp_path / "data")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["--data", str(data), "--steps", "6", "--batch-size", "16", "--warmup", "2", "--eval-every", "0",
            "--aux-weight", "0", "--feature-dropout", "0", *TINY]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "neon_ros.cli", "train", "--out", str(tmp_path / "ddp"), *args],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=200)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "2 DDP ranks" in ddp.stdout
    single = subprocess.run([sys.executable, "-m", "neon_ros.cli", "train", "--out", str(tmp_path / "one"), *args],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=200)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    for k in a:  # averaged half-batch gradients = the full-batch gradient (up to summation order)
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4)


def test_joint_noise_keeps_the_labels_aimed_at_the_same_targets():
    """Displaced arm joints come with labels for the same absolute targets: joint deltas minus the
    noise, and hand displacements that reach the same future palm poses from the displaced palms
    (before, hand labels of displaced rows went unsupervised and the ee output never learnt to
    correct). Legs, non-G1 rows and the undisplaced half are untouched."""
    import numpy as np
    import torch

    from neon_ros import g1
    from neon_ros.data.robots import g1_hand_poses
    from neon_ros.policy import actions, embodiment
    from neon_ros.policy.train import JointNoiseTables, jitter_joints

    n, arms = 64, list(g1.ARM_INDICES["left"]) + list(g1.ARM_INDICES["right"])
    p_mean, p_std = torch.as_tensor(g1.STANDING_POSE, dtype=torch.float32), torch.full((29,), 0.5)
    d_std = torch.full((16, 29), 0.1)
    ee_mean, ee_std = np.zeros((16, 2, 9)), np.full((16, 2, 9), 0.5)
    g1_id = embodiment.get("g1").id
    tables = JointNoiseTables(p_mean, p_std, d_std, ee_mean, ee_std, g1_id, arms, g1_hand_poses)
    emb = torch.full((n,), g1_id)
    emb[:8] = embodiment.get("franka").id
    step = np.eye(4)
    step[:3, 3] = (0.05, -0.02, 0.03)  # every label: the palm moves 5 cm forward (its own frame)
    ee = torch.as_tensor(actions.pose9_from_transform(step) / 0.5, dtype=torch.float32).expand(n, 16, 2, 9)
    batch = {"proprio": torch.zeros(n, 58), "embodiment": emb,
             "targets": {"joint_delta": torch.zeros(n, 16, 29), "ee": ee.clone()},
             "masks": {"joint_delta": torch.ones(n, 29), "ee": torch.ones(n, 2)}}
    out = jitter_joints(batch, 0.1, tables, torch.Generator().manual_seed(0))
    moved = (out["proprio"][:, :29] != 0).any(1)
    assert 0 < int(moved.sum()) < n - 8 and not moved[:8].any()
    eps = out["proprio"][:, :29] * p_std  # rad
    assert torch.all(eps[:, [j for j in range(29) if j not in arms]] == 0)
    torch.testing.assert_close(out["targets"]["joint_delta"] * d_std, -eps[:, None, :].expand(n, 16, 29))
    assert torch.all(out["masks"]["ee"] == 1)  # displaced rows keep their hand labels, corrected
    torch.testing.assert_close(out["targets"]["ee"][~moved], ee[~moved])
    q_clean = g1.STANDING_POSE[None]
    want = g1_hand_poses(q_clean)[0] @ step  # (2, 4, 4): where the labels send the palms
    for r in torch.nonzero(moved).ravel()[:5].tolist():
        q_noisy = q_clean + eps[r].double().numpy()
        rel = actions.transform_from_pose9(out["targets"]["ee"][r].double().numpy() * 0.5)  # (16, 2, 4, 4)
        np.testing.assert_allclose(g1_hand_poses(q_noisy)[0][None] @ rel, np.broadcast_to(want, rel.shape),
                                   atol=1e-5)
        assert not np.allclose(rel[0, :, :3, 3], step[:3, 3], atol=1e-3)  # really re-expressed
    assert torch.all(batch["proprio"] == 0)  # the cached batch itself is not changed
