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

from neon_ros.backbones.hf_common import (
    QWEN_CHAT_TOKENS,
    ChatVideoBackbone,
    make_video_processor,
    processor_with_frames_video,
    read_json,
)

TINY_HIDDEN = 32
IMAGE_MEAN_STD = [0.5, 0.5, 0.5]  # Qwen3-VL's processors normalise to [-1, 1]


class Qwen3VLBackbone(ChatVideoBackbone):
    """Frozen Qwen3-VL (Cosmos-Reason2) -> pooled hidden states of one layer."""

    SPECIAL_TOKENS = {
        **QWEN_CHAT_TOKENS,
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_start_token": "<|vision_start|>",
        "vision_end_token": "<|vision_end|>",
    }
    DEFAULT_SYSTEM_PROMPT = "You are the eyes of a humanoid robot."

    def user_turn(self, text: str, with_audio: bool) -> str:
        return f"<|video_pad|>{text}"

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
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        tok, ids = self.tiny_chat_tokenizer()
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
        model = self.tiny_model(Qwen3VLForConditionalGeneration, cfg, ids)
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=IMAGE_MEAN_STD, image_std=IMAGE_MEAN_STD
        )
        return model, self._processor(image_processor, tok, {})
