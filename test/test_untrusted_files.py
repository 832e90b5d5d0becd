"""Files the stack loads are checked before they are trusted: a planted train_state.pt cannot run code on
resume (weights_only), and head weights that differ from the sha256 their checkpoint recorded are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_loop import config, make_data

from neon_ros.policy.actions import NormStats
from neon_ros.policy.model import ActionHead, HeadConfig
from neon_ros.policy.train import ResumeStateError, train
from neon_ros.runtime import checkpoint

CFG = HeadConfig(d_model=32, layers=1, feature_dim=16)


class OpensAFile:
    """Unpickling this object calls open(path, "w"): code run by loading the file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_resume_refuses_a_state_file_that_runs_code(tmp_path):
    data, run = make_data(tmp_path / "data"), tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "code_ran"
    torch.save({"step": 2, "model": {}, "payload": OpensAFile(marker)}, run / "train_state.pt")
    with pytest.raises(ResumeStateError, match=r"train_state\.pt.*(io\.open|builtins\.open).*delete it"):
        train(config(data, run, 4), resume=True)
    assert not marker.exists(), "loading the resume state ran code"


def test_resume_state_holds_only_what_weights_only_loads(tmp_path):
    data, run = make_data(tmp_path / "data"), tmp_path / "run"
    train(config(data, run, 2))
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["step"] == 2 and isinstance(state["torch_rng"], torch.Tensor)


def stats() -> NormStats:
    rng = np.random.default_rng(0)
    out = NormStats()
    out.update("proprio", rng.normal(size=(8, CFG.proprio_dim)), "g1")
    for key, shape in CFG.output_shapes().items():
        out.update(key, rng.normal(size=(8, *shape)), "g1")
    return out


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    return checkpoint.save(tmp_path / "ckpt", ActionHead(CFG), backbone_id="cpu_default", stats=stats(), step=3)


def test_checkpoint_records_and_checks_the_weights_hash(saved):
    meta = json.loads(saved.read_text())
    assert len(meta["weights_sha256"]) == 64
    assert checkpoint.load(saved).weights_sha256 == meta["weights_sha256"]


def test_flipped_byte_in_the_weights_is_refused(saved):
    weights = saved.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's values: still a well-formed safetensors file
    weights.write_bytes(bytes(data))
    recorded = json.loads(saved.read_text())["weights_sha256"]
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(saved)
    message = str(err.value)
    assert str(weights) in message and recorded in message, message
    assert hashlib.sha256(bytes(data)).hexdigest() in message, message


def test_checkpoint_without_a_hash_loads_with_a_warning(saved):
    meta = json.loads(saved.read_text())
    del meta["weights_sha256"]
    saved.write_text(json.dumps(meta))
    with pytest.warns(checkpoint.UnverifiedCheckpointWarning, match="records no weights_sha256"):
        ck = checkpoint.load(saved)
    assert ck.step == 3 and len(ck.weights_sha256) == 64
