"""Qwen2.5-Omni thinker adapter (presets qwen2_5_omni_3b / qwen2_5_omni_7b): video + audio + text.

Inputs are assembled by the model's own ``Qwen2_5OmniProcessor`` (token expansion for
video and audio, TMRoPE timing from ``fps``) with the model's image processor behind a
``FramesVideoProcessor`` (no torchvision here) and its ``WhisperFeatureExtractor`` for the
16 kHz audio. Prompt (Qwen's chat format)::

    <|im_start|>system\\n{system_prompt}<|im_end|>\\n<|im_start|>user\\n
    <|vision_bos|><|VIDEO|><|vision_eos|>[<|audio_bos|><|AUDIO|><|audio_eos|>]{instruction}<|im_end|>\\n
    <|im_start|>assistant\\n

Features: mask-aware mean over all prompt tokens of thinker hidden layer ``layer``.

Weights: a full Qwen2.5-Omni folder (config ``qwen2_5_omni``: loaded with the talker
disabled, only the thinker is kept) or a thinker-only folder (``qwen2_5_omni_thinker``).
Options: ``system_prompt``, ``max_new_tokens``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neon_ros.backbones.base import AUDIO_SAMPLE_RATE
from neon_ros.backbones.hf_common import (
    QWEN_CHAT_TOKENS,
    ChatVideoBackbone,
    make_video_processor,
    processor_with_frames_video,
    read_json,
)

TINY_MEL_BINS = 32
TINY_HIDDEN = 32


class QwenOmniBackbone(ChatVideoBackbone):
    """Frozen Qwen2.5-Omni thinker -> pooled hidden states of one layer."""

    SPECIAL_TOKENS = {
        **QWEN_CHAT_TOKENS,
        "image_token": "<|IMAGE|>",
        "video_token": "<|VIDEO|>",
        "audio_token": "<|AUDIO|>",
        "vision_bos_token": "<|vision_bos|>",
        "vision_eos_token": "<|vision_eos|>",
        "audio_bos_token": "<|audio_bos|>",
        "audio_eos_token": "<|audio_eos|>",
    }
    DEFAULT_SYSTEM_PROMPT = "You are the eyes and ears of a humanoid robot."

    def user_turn(self, text: str, with_audio: bool) -> str:
        audio = "<|audio_bos|><|AUDIO|><|audio_eos|>" if with_audio else ""
        return f"<|vision_bos|><|VIDEO|><|vision_eos|>{audio}{text}"

    # -- construction ----------------------------------------------------------
    def _processor(self, image_processor: Any, feature_extractor: Any, tokenizer: Any, video_cfg: dict) -> Any:
        from transformers import Qwen2_5OmniProcessor

        video = make_video_processor(image_processor, video_cfg)
        return processor_with_frames_video(Qwen2_5OmniProcessor)(
            image_processor=image_processor, video_processor=video, feature_extractor=feature_extractor, tokenizer=tokenizer
        )

    def _load(self, path: Path) -> tuple[Any, Any]:
        from transformers import (
            AutoTokenizer,
            Qwen2_5OmniConfig,
            Qwen2_5OmniForConditionalGeneration,
            Qwen2_5OmniThinkerForConditionalGeneration,
            WhisperFeatureExtractor,
        )
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        kw = {"local_files_only": True, "dtype": self._dtype}
        model_type = read_json(path / "config.json").get("model_type")
        if model_type == "qwen2_5_omni":
            cfg = Qwen2_5OmniConfig.from_pretrained(path, local_files_only=True)
            cfg.enable_audio_output = False  # thinker only: no talker / token2wav in memory
            thinker = Qwen2_5OmniForConditionalGeneration.from_pretrained(path, config=cfg, **kw).thinker
        else:
            thinker = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path, **kw)
        processor = self._processor(
            Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True),
            WhisperFeatureExtractor.from_pretrained(path, local_files_only=True),
            AutoTokenizer.from_pretrained(path, local_files_only=True),
            read_json(path / "video_preprocessor_config.json"),
        )
        return thinker, processor

    def _build_tiny(self) -> tuple[Any, Any]:
        from transformers import (
            Qwen2_5OmniThinkerConfig,
            Qwen2_5OmniThinkerForConditionalGeneration,
            WhisperFeatureExtractor,
        )
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        tok, ids = self.tiny_chat_tokenizer()
        cfg = Qwen2_5OmniThinkerConfig(
            audio_config={
                "d_model": TINY_HIDDEN, "encoder_attention_heads": 4, "encoder_ffn_dim": 64, "encoder_layers": 2,
                "num_mel_bins": TINY_MEL_BINS, "max_source_positions": 1500, "n_window": 100,
                "output_dim": TINY_HIDDEN,
            },
            vision_config={
                "depth": 2, "hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_heads": 4,
                "out_hidden_size": TINY_HIDDEN, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                "window_size": 112, "fullatt_block_indexes": [1],
            },
            text_config={
                "vocab_size": len(tok), "hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 3,
                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
            },
            audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
            video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
            audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
            vision_end_token_id=ids["vision_eos_token"], user_token_id=ids["im_start_token"],
        )
        thinker = self.tiny_model(Qwen2_5OmniThinkerForConditionalGeneration, cfg, ids)
        processor = self._processor(
            Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2),
            WhisperFeatureExtractor(feature_size=TINY_MEL_BINS, sampling_rate=AUDIO_SAMPLE_RATE),
            tok,
            {},
        )
        return thinker, processor

    def vision_tower(self) -> Any:
        return self.model.model.visual if hasattr(self.model, "model") else self.model.visual
