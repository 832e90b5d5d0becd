"""Checkpoints, ONNX export parity, HeadRuntime (torch and onnxruntime), `neon-ros export`, the bench."""

import argparse
import json
import subprocess
import sys
import types

import numpy as np
import onnx
import pytest
import torch

from neon_ros import cli, g1
from neon_ros.policy import actions
from neon_ros.policy.model import COMPONENTS, ActionHead, HeadConfig
from neon_ros.runtime import checkpoint, onnx_export, trt
from neon_ros.runtime.head import HeadRuntime
from neon_ros.tools.bench import head as bench

CFG = HeadConfig(d_model=64, layers=2, feature_dim=96)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_stats(cfg: HeadConfig) -> actions.NormStats:
    rng = np.random.default_rng(0)
    stats = actions.NormStats()
    stats.update("proprio", rng.normal(0.1, 0.5, size=(64, cfg.proprio_dim)), "g1")
    for key, shape in cfg.output_shapes().items():
        stats.update(key, rng.normal(0.05, 0.2, size=(64, *shape)), "g1" if key == "joint_delta" else "franka")
    return stats


def random_head(cfg: HeadConfig = CFG, seed: int = 0) -> ActionHead:
    torch.manual_seed(seed)
    model = ActionHead(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # non-trivial everywhere (zero-init branches would hide export errors)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint and `neon-ros export` of it: (model, checkpoint json, out dir)."""
    root = tmp_path_factory.mktemp("head")
    model = random_head()
    ck = checkpoint.save(root / "ckpt" / "run_7", model, backbone_id="cpu_default", stats=make_stats(CFG), step=42)
    assert cli.main(["export", "--checkpoint", str(ck), "--out", str(root / "out"), "--int8"]) == 0
    return model, ck, root / "out"


@pytest.mark.parametrize("batch", [1, 8])
def test_onnx_matches_torch(exported, batch):
    model, _, out = exported
    session = onnx_export.ort_session(out / "head.onnx")
    x = onnx_export.example_inputs(model, batch, seed=100 + batch, scale=2.0)
    with torch.no_grad():
        ref = model(*x)
    got = onnx_export.run_session(session, x)
    for k in COMPONENTS:
        assert got[k].shape == tuple(ref[k].shape)
        assert np.abs(got[k] - ref[k].numpy()).max() <= 1e-4, k
    assert max(float(ref[k].abs().max()) for k in COMPONENTS) > 0.1  # outputs are not trivially zero


def test_checkpoint_round_trip(exported, tmp_path):
    model, ck_path, out = exported
    ck = checkpoint.load(ck_path)
    assert (ck.backbone_id, ck.step, ck.config) == ("cpu_default", 42, CFG)
    x = onnx_export.example_inputs(model, 3)
    with torch.no_grad():
        a, b = model(*x), ck.build_model()(*x)
    assert all(torch.equal(a[k], b[k]) for k in COMPONENTS)
    np.testing.assert_array_equal(ck.stats.mean_std("ee", "g1")[1], make_stats(CFG).mean_std("ee", "g1")[1])
    assert checkpoint.load(out).weights_sha256 == ck.weights_sha256  # export copied it beside the ONNX file
    for spelling in (ck_path.with_suffix(".safetensors"), ck_path.with_suffix("")):
        assert checkpoint.load(spelling).path == ck_path


@pytest.mark.parametrize("field,value", [("d_model", 128), ("chunk", 8), ("layers", 3), ("feature_dim", 2048)])
def test_mismatched_config_names_the_field(exported, tmp_path, field, value):
    _, ck_path, _ = exported
    meta = json.loads(ck_path.read_text())
    meta["config"][field] = value
    meta["weights"] = str(ck_path.with_suffix(".safetensors"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match=f"HeadConfig field '{field}' disagrees"):
        checkpoint.load(bad)


def test_checkpoint_errors_are_clear(exported, tmp_path):
    _, ck_path, _ = exported
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nothing")
    with pytest.raises(checkpoint.CheckpointError, match="'feature_dim' is 96"):
        checkpoint.load(ck_path, expect_feature_dim=2048)
    with pytest.raises(checkpoint.CheckpointError, match="trained on backbone 'cpu_default'"):
        checkpoint.load(ck_path, expect_backbone_id="tribe_v2")


def test_runtime_torch_and_onnxruntime_agree(exported):
    _, _, out = exported
    rt_torch = HeadRuntime(out, "torch")
    rt_ort = HeadRuntime(out, "onnxruntime")
    assert rt_ort.onnx_path == out / "head.onnx"  # reused: its metadata names these weights
    assert (rt_torch.feature_dim, rt_torch.backbone_id) == (96, "cpu_default")
    rng = np.random.default_rng(5)
    f = rng.normal(size=96)
    q = g1.STANDING_POSE + rng.normal(0, 0.05, size=29)
    dq = rng.normal(0, 0.1, size=29)
    a, b = rt_torch.predict(f, q, dq), rt_ort.predict(f, q, dq)
    for name in ("joint_targets", "joint_delta", "ee", "grip", "loco"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == np.float64 and x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=1e-4)
    assert a.joint_targets.shape == (16, 29) and a.ee.shape == (16, 2, 9)
    np.testing.assert_allclose(a.joint_targets, np.clip(q + a.joint_delta, g1.LOWER_LIMITS, g1.UPPER_LIMITS))
    assert ((a.grip >= 0) & (a.grip <= 1)).all()
    assert a.ee_transforms().shape == (16, 2, 4, 4)


def test_int8_runtime_stays_close_to_torch(exported):
    _, _, out = exported
    rt8, rt = HeadRuntime(out, "onnxruntime_int8"), HeadRuntime(out, "torch")
    assert rt8.onnx_path == out / "head_int8.onnx"
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(rt8.onnx_path)).graph.node}
    rng = np.random.default_rng(9)
    f, p = rng.normal(size=(1, 96)).astype(np.float32), rng.normal(size=(1, 58)).astype(np.float32)
    a, b = rt8.raw(f, p), rt.raw(f, p)
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in COMPONENTS)
    assert diff <= onnx_export.INT8_TOLERANCE * max(1.0, *(float(np.abs(v).max()) for v in b.values()))
    assert diff > 0  # really quantised, not the float32 graph


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "onnxruntime_int8"])
def test_runtime_refuses_bad_input(exported, runtime):
    rt = HeadRuntime(exported[2], runtime)
    f, q = np.zeros(96), np.zeros(29)
    with pytest.raises(ValueError, match="features holds 1 non-finite"):
        rt.predict(np.where(np.arange(96) == 3, np.nan, f), q, q)
    with pytest.raises(ValueError, match=r"dq holds 29 non-finite"):
        rt.predict(f, q, np.full(29, np.inf))
    with pytest.raises(ValueError, match=r"features must have shape \(96,\).*'cpu_default'"):
        rt.predict(np.zeros(2048), q, q)
    with pytest.raises(ValueError, match=r"q must have shape \(29,\)"):
        rt.predict(f, np.zeros(28), q)


def test_runtime_needs_statistics_and_a_known_runtime(tmp_path):
    ck = checkpoint.save(tmp_path / "h", random_head(), backbone_id="x", stats=actions.NormStats())
    with pytest.raises(ValueError, match="no normalisation statistics"):
        HeadRuntime(ck)
    with pytest.raises(ValueError, match="runtime must be one of"):
        HeadRuntime(ck, "tensorflow")


@pytest.mark.skipif(trt.available(), reason="TensorRT is installed: the missing-TensorRT path cannot run here")
def test_export_trt_without_tensorrt_says_one_sentence(exported, tmp_path):
    _, ck_path, _ = exported
    proc = subprocess.run([sys.executable, "-m", "neon_ros.cli", "export", "--checkpoint", str(ck_path),
                           "--out", str(tmp_path / "o"), "--trt", "--fp16"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [trt.UNAVAILABLE]
    assert lines[0].count(". ") == 0 and lines[0].endswith(".") and "TensorRT" in lines[0]
    assert not (tmp_path / "o").exists()  # refused before any work
    with pytest.raises(trt.TensorRTUnavailableError):
        trt.build_engine(tmp_path / "x.onnx", tmp_path / "x.engine")


def test_export_backbone_delegates_lazily(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("neon_ros.backbones.export")
    fake.export_vision_tower = lambda preset, out_dir, trt=False, fp16=False: calls.append(
        (preset, out_dir, trt, fp16)) or out_dir / "vision.onnx"
    monkeypatch.setitem(sys.modules, "neon_ros.backbones.export", fake)
    assert cli.main(["export", "--backbone", "cpu_default", "--out", str(tmp_path)]) == 0
    assert calls == [("cpu_default", tmp_path, False, False)]
    assert cli.main(["export", "--backbone", "cpu_default", "--out", str(tmp_path), "--fp16"]) == 2


def test_bench_head_prints_latency_params_and_floor(exported, capsys):
    args = argparse.Namespace(checkpoint=exported[2], iters=20, warmup=2, matmul_seconds=0.05)
    assert bench.run(args) == 0
    text = capsys.readouterr().out
    assert "M parameters" in text and "MFLOP per step" in text and "GFLOP/s" in text
    for case in ("torch eager", "onnxruntime", "HeadRuntime.predict"):
        assert case in text
    assert "goal onnxruntime p99 <= 1 ms" in text
