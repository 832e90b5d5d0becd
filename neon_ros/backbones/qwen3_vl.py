"""Cosmos-Reason2 adapter (presets cosmos_reason2_2b / _8b): the Qwen3-VL architecture, video + text.

Inputs are assembled by the model's own ``Qwen3VLProcessor`` (per-temporal-patch
timestamps from ``fps``, video token expansion) with the model's image processor behind
a ``FramesVideoProcessor`` (no torchvision here; the checkpoint's
video_preprocessor_config.json supplies mean/std/patching). Prompt (Qwen chat format;
the processor expands ``<|video_pad|>`` into ``<t seconds><|vision_start|>...<|vision_end|>``
per temporal patch, as Qwen3-VL's chat template + processor do)::

    <|im_start|>system\\n{system_prompt}<|im_end|>\\n<|im_start|>user\\n
    <|video_pad|>{instruction}<|im_end|>\\n<|im_start|>assistant\\n

Features: mask-aware mean over all prompt tokens of language-model hidden layer ``layer``.
Audio is not part of this architecture (ignored). Options: ``system_prompt``, ``max_new_tokens``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neon_ros.backbones.base import BackboneConfig
from neon_ros.backbones.hf_common import (
    ChatVideoBackbone,
    make_video_processor,
    processor_with_frames_video,
    read_json,
    tiny_tokenizer,
)
from neon_ros.backbones.registry import weights_path

SPECIAL_TOKENS = {
    "pad_token": "<|endoftext|>",
    "eos_token": "<|im_end|>",
    "im_start_token": "<|im_start|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}
TINY_HIDDEN = 32
IMAGE_MEAN_STD = [0.5, 0.5, 0.5]  # Qwen3-VL's processors normalise to [-1, 1]


class Qwen3VLBackbone(ChatVideoBackbone):
    """Frozen Qwen3-VL (Cosmos-Reason2) -> pooled hidden states of one layer."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        if config.tiny:
            model, self.processor = self._build_tiny()
            self.config.width = int(model.config.text_config.hidden_size)
        else:
            model, self.processor = self._load(weights_path(config))
        self.model = self.place(model)
        self.check_width(int(self.model.config.text_config.hidden_size))
        self._system = str(config.options.get("system_prompt", "You are the eyes of a humanoid robot."))

    def build_prompt(self, text: str, with_audio: bool) -> str:
        return (
            f"<|im_start|>system\n{self._system}<|im_end|>\n<|im_start|>user\n"
            f"<|video_pad|>{text}<|im_end|>\n<|im_start|>assistant\n"
        )

    def _processor(self, image_processor: Any, tokenizer: Any, video_cfg: dict) -> Any:
        from transformers import Qwen3VLProcessor

        video = make_video_processor(image_processor, video_cfg)
        return processor_with_frames_video(Qwen3VLProcessor)(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=video
        )

    def _load(self, path: Path) -> tuple[Any, Any]:
        from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        model = Qwen3VLForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype=self._dtype)
        processor = self._processor(
            Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True),
            AutoTokenizer.from_pretrained(path, local_files_only=True),
            read_json(path / "video_preprocessor_config.json"),
        )
        return model, processor

    def _build_tiny(self) -> tuple[Any, Any]:
        import torch
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        tok = tiny_tokenizer(SPECIAL_TOKENS)
        ids = {name: tok.convert_tokens_to_ids(t) for name, t in SPECIAL_TOKENS.items()}
        cfg = Qwen3VLConfig(
            vision_config={
                "depth": 2, "hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_heads": 4, "patch_size": 16,
                "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": TINY_HIDDEN,
                "num_position_embeddings": 256, "deepstack_visual_indexes": [0, 1],
            },
            text_config={
                "vocab_size": len(tok), "hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 3,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 4096,
                "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [1, 1, 2],
                                    "mrope_interleaved": True},
                "pad_token_id": ids["pad_token"],
            },
            image_token_id=ids["image_token"], video_token_id=ids["video_token"],
            vision_start_token_id=ids["vision_start_token"], vision_end_token_id=ids["vision_end_token"],
        )
        torch.manual_seed(int(self.config.options.get("tiny_seed", 0)))
        model = Qwen3VLForConditionalGeneration(cfg)
        model.generation_config.eos_token_id = ids["eos_token"]
        model.generation_config.pad_token_id = ids["pad_token"]
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=IMAGE_MEAN_STD, image_std=IMAGE_MEAN_STD
        )
        return model, self._processor(image_processor, tok, {})
