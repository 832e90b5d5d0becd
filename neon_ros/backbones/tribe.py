"""TRIBE v2-style trimodal backbone (preset tribe_v2): V-JEPA2 + Wav2Vec-BERT 2.0 + Llama 3.2, fused.

Three frozen encoders, each pooled (mask-aware mean of hidden layer ``layer``):

- video: ``VJEPA2Model`` (encoder only, predictor skipped). Frames go through transformers'
  generic PIL image pipeline (``PilBackend``: shortest-edge resize, centre crop, rescale,
  normalise) configured exactly as ``VJEPA2VideoProcessor`` (or the checkpoint's
  video_preprocessor_config.json): that video processor needs torchvision, absent here.
- audio (16 kHz): ``Wav2Vec2BertModel`` with its ``SeamlessM4TFeatureExtractor``.
- text: ``LlamaModel`` with its tokenizer.

Fusion: each pooled vector is LayerNorm'd (no affine) and projected by a frozen linear map
into its own slice of the output, ``[video | audio | text]`` (``options.slices``, sum =
width). The maps are fixed orthogonal projections drawn from ``options.projection_seed``
unless ``<weights_dir or $NEON_MODELS>/tribe_fusion.safetensors`` provides trained ones
(keys ``video``, ``audio``, ``text``: (slice, hidden) matrices). A missing modality (no
audio, empty instruction) is a zero slice, which is exactly what ``modality_dropout``
produces at training time, so a head trained with it keeps acting when the camera is
occluded or the microphone is noisy. The slices (``modality_slices``) are recorded in the
feature cache; `neon-ros train` applies the dropout from there and gives the head a
trainable fusion over them that masks zero slices (``policy.model.ModalityFusion``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neon_ros.backbones.base import AUDIO_SAMPLE_RATE, BackboneConfig, freeze
from neon_ros.backbones.hf_common import HFBackbone, read_json, tiny_tokenizer
from neon_ros.backbones.registry import models_root, weights_path

MODALITIES = ("video", "audio", "text")
FUSION_FILE = "tribe_fusion.safetensors"
TINY = {"video": 32, "audio": 32, "text": 48}
TINY_MEL_BINS = 80  # SeamlessM4TFeatureExtractor stacks 2 frames of 80 mel bins -> 160 inputs


def fused_slices(config: BackboneConfig) -> dict[str, slice]:
    """Where each modality sits in the fused vector (from ``options.slices``)."""
    sizes = dict(config.options.get("slices") or {"video": 1024, "audio": 512, "text": 512})
    if set(sizes) != set(MODALITIES) or sum(int(v) for v in sizes.values()) != config.width:
        raise ValueError(f"backbone {config.name}: options.slices must give {MODALITIES} summing to width {config.width}")
    out, start = {}, 0
    for name in MODALITIES:
        out[name] = slice(start, start + int(sizes[name]))
        start += int(sizes[name])
    return out


def modality_dropout(features: Any, slices: dict[str, slice], probs: dict[str, float], generator: Any = None) -> Any:
    """Zero each modality's slice per sample with its probability (training-time augmentation).

    ``features``: (B, width) torch tensor or numpy array (returned as a new object of the
    same kind). ``slices``: modality -> slice (``fused_slices``, or the slices a feature cache
    records). ``generator``: torch.Generator / numpy Generator for reproducibility.
    Never drops every modality of a sample at once (the video slice, or else the first, is kept then).
    """
    names = list(slices)
    is_numpy = isinstance(features, np.ndarray)
    if is_numpy:
        rng = generator if generator is not None else np.random.default_rng()
        draws = {m: rng.random(features.shape[0]) < float(probs.get(m, 0.0)) for m in names}
        out = features.copy()
    else:
        import torch

        draws = {
            m: (torch.rand(features.shape[0], generator=generator) < float(probs.get(m, 0.0))).numpy()
            for m in names
        }
        out = features.clone()
    all_dropped = np.logical_and.reduce([draws[m] for m in names])
    kept = "video" if "video" in draws else names[0]
    draws[kept] = draws[kept] & ~all_dropped
    for m in names:
        rows = np.nonzero(draws[m])[0]
        if rows.size:
            out[rows, slices[m]] = 0
    return out


class TribeBackbone(HFBackbone):
    """Frozen V-JEPA2 + Wav2Vec-BERT 2.0 + Llama 3.2, fused to ``width`` with modality slices."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        import torch

        self.slices = fused_slices(config)
        self.dropout_probs = {m: float(v) for m, v in (config.options.get("modality_dropout") or {}).items()}
        if config.tiny:
            parts = self._build_tiny()
        else:
            parts = self._load()
        self.video_model, self.video_processor, self.audio_model, self.feature_extractor, self.text_model, self.tokenizer = parts
        self.video_model = self.place(self.video_model)
        self.audio_model = self.place(self.audio_model)
        self.text_model = self.place(self.text_model)
        hidden = {
            "video": int(self.video_model.config.hidden_size),
            "audio": int(self.audio_model.config.hidden_size),
            "text": int(self.text_model.config.hidden_size),
        }
        self.fusion = torch.nn.ModuleDict(
            {m: torch.nn.Linear(hidden[m], self.slices[m].stop - self.slices[m].start, bias=False) for m in MODALITIES}
        )
        self._init_fusion(hidden)
        self.fusion = freeze(self.fusion.to(device=config.device))

    # -- construction ----------------------------------------------------------
    def _component(self, modality: str) -> Path:
        folder = self.config.components.get(modality)
        if not folder:
            raise ValueError(f"backbone {self.config.name}: components.{modality} (a folder name) is required")
        return weights_path(self.config, folder)

    def _fusion_file(self) -> Path | None:
        base = Path(self.config.weights_dir).expanduser() if self.config.weights_dir else models_root()
        path = base / FUSION_FILE if base is not None else None
        return path if path is not None and path.is_file() else None

    def _init_fusion(self, hidden: dict[str, int]) -> None:
        import torch

        path = None if self.config.tiny else self._fusion_file()
        if path is not None:
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            for m in MODALITIES:
                self.fusion[m].weight.data.copy_(tensors[m])
            return
        gen = torch.Generator().manual_seed(int(self.config.options.get("projection_seed", 20251121)))
        for m in MODALITIES:
            out_dim, in_dim = self.fusion[m].weight.shape
            a = torch.randn(out_dim, in_dim, generator=gen)
            if out_dim >= in_dim:  # orthonormal columns, scaled so a LayerNorm'd input keeps unit variance
                w = torch.linalg.qr(a).Q * (out_dim / in_dim) ** 0.5
            else:  # orthonormal rows: unit variance already
                w = torch.linalg.qr(a.T).Q.T
            self.fusion[m].weight.data.copy_(w)

    @staticmethod
    def _frame_pipeline(video_cfg: dict[str, Any]) -> Any:
        from transformers.image_processing_backends import PilBackend
        from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

        crop = video_cfg.get("crop_size", 256)
        crop = int(crop["height"] if isinstance(crop, dict) else crop)
        return PilBackend(
            do_resize=True, size={"shortest_edge": int(crop * 256 / 224)}, resample=PILImageResampling.BILINEAR,
            do_center_crop=True, crop_size={"height": crop, "width": crop}, do_rescale=True, rescale_factor=1 / 255,
            do_normalize=True, image_mean=video_cfg.get("image_mean", IMAGENET_DEFAULT_MEAN),
            image_std=video_cfg.get("image_std", IMAGENET_DEFAULT_STD), do_convert_rgb=False,
        )

    def _load(self) -> tuple[Any, ...]:
        from transformers import (
            AutoTokenizer,
            LlamaModel,
            SeamlessM4TFeatureExtractor,
            VJEPA2Model,
            Wav2Vec2BertModel,
        )

        kw = {"local_files_only": True, "dtype": self._dtype}
        video_dir, audio_dir, text_dir = (self._component(m) for m in MODALITIES)
        return (
            VJEPA2Model.from_pretrained(video_dir, **kw),
            self._frame_pipeline(read_json(video_dir / "video_preprocessor_config.json")),
            Wav2Vec2BertModel.from_pretrained(audio_dir, **kw),
            SeamlessM4TFeatureExtractor.from_pretrained(audio_dir, local_files_only=True),
            LlamaModel.from_pretrained(text_dir, **kw),
            AutoTokenizer.from_pretrained(text_dir, local_files_only=True),
        )

    def _build_tiny(self) -> tuple[Any, ...]:
        import torch
        from transformers import (
            LlamaConfig,
            LlamaModel,
            SeamlessM4TFeatureExtractor,
            VJEPA2Config,
            VJEPA2Model,
            Wav2Vec2BertConfig,
            Wav2Vec2BertModel,
        )

        torch.manual_seed(int(self.config.options.get("tiny_seed", 0)))
        h, w = self.frame_size
        video = VJEPA2Model(
            VJEPA2Config(
                crop_size=min(h, w), frames_per_clip=self.num_frames, tubelet_size=2, patch_size=16,
                hidden_size=TINY["video"], num_attention_heads=4, num_hidden_layers=2, mlp_ratio=2.0,
                pred_hidden_size=16, pred_num_attention_heads=2, pred_num_hidden_layers=1, num_pooler_layers=1,
            )
        )
        audio = Wav2Vec2BertModel(
            Wav2Vec2BertConfig(
                hidden_size=TINY["audio"], num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                output_hidden_size=TINY["audio"], feature_projection_input_dim=2 * TINY_MEL_BINS,
                conv_depthwise_kernel_size=3, add_adapter=False,
            )
        )
        tok = tiny_tokenizer({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "<|pad|>"})
        text = LlamaModel(
            LlamaConfig(
                vocab_size=len(tok), hidden_size=TINY["text"], intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            )
        )
        features = SeamlessM4TFeatureExtractor(feature_size=TINY_MEL_BINS, sampling_rate=AUDIO_SAMPLE_RATE)
        return video, self._frame_pipeline({"crop_size": min(h, w)}), audio, features, text, tok

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write the three component folders (names from ``components``) + the fusion weights."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        for m, model, pre in (
            ("video", self.video_model, None),
            ("audio", self.audio_model, self.feature_extractor),
            ("text", self.text_model, self.tokenizer),
        ):
            folder = out / self.config.components[m]
            model.save_pretrained(folder)
            if pre is not None:
                pre.save_pretrained(folder)
        save_file({m: self.fusion[m].weight.detach().contiguous().cpu() for m in MODALITIES}, str(out / FUSION_FILE))
        return out

    @property
    def modality_slices(self) -> dict[str, tuple[int, int]]:
        return {m: (s.start, s.stop) for m, s in self.slices.items()}

    def torch_modules(self) -> list[Any]:
        return [self.video_model, self.audio_model, self.text_model, self.fusion]

    def vision_tower(self) -> Any:
        return self.video_model.encoder

    # -- encoding --------------------------------------------------------------
    def modality_dropout(self, features: Any, generator: Any = None, probs: dict[str, float] | None = None) -> Any:
        """Training-time modality dropout on (B, width) features (see module ``modality_dropout``)."""
        return modality_dropout(features, self.slices, probs if probs is not None else self.dropout_probs, generator)

    def video_pixels(self, frames: np.ndarray) -> Any:
        import torch

        out = self.video_processor.preprocess(list(frames), return_tensors="np")["pixel_values"]
        return torch.from_numpy(np.stack(out))[None]  # (1, T, C, H, W)

    def _pooled(self, modality: str, hidden_states: Any, mask: Any) -> Any:
        import torch

        pooled = self.pool_layer(hidden_states, mask, modality)
        normed = torch.nn.functional.layer_norm(pooled, pooled.shape[-1:])
        return self.fusion[modality](normed.to(self.fusion[modality].weight.dtype))

    def _encode(self, frames: np.ndarray, instruction: str, audio: np.ndarray | None) -> np.ndarray:
        import torch

        fused = torch.zeros(1, self.width, device=self.config.device)
        with torch.inference_mode():
            pixels = self.to_device({"p": self.video_pixels(frames)})["p"]
            out = self.video_model(pixel_values_videos=pixels, skip_predictor=True, output_hidden_states=True)
            mask = torch.ones(out.hidden_states[0].shape[:2], dtype=torch.bool, device=pixels.device)
            fused[:, self.slices["video"]] = self._pooled("video", out.hidden_states, mask)
            if audio is not None:
                feats = self.feature_extractor(
                    audio, sampling_rate=AUDIO_SAMPLE_RATE, return_attention_mask=True, return_tensors="pt"
                )
                feats = self.to_device(dict(feats))
                out = self.audio_model(**feats, output_hidden_states=True)
                fused[:, self.slices["audio"]] = self._pooled("audio", out.hidden_states, feats["attention_mask"])
            if instruction.strip():
                tok = self.to_device(dict(self.tokenizer([instruction], return_tensors="pt")))
                out = self.text_model(**tok, output_hidden_states=True)
                fused[:, self.slices["text"]] = self._pooled("text", out.hidden_states, tok["attention_mask"])
        return fused[0].float().cpu().numpy()
