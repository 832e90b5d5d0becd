"""Shared parts of the Hugging Face (transformers) adapters.

- ``FramesVideoProcessor``: transformers' video processors need torchvision, whose
  registry wheels are CUDA builds that do not import beside this CPU torch (DESIGN.md
  section 6). This class is a ``VideoProcessorMixin`` the model's own processor accepts:
  every frame goes through the model's own PIL/NumPy image processor (its ``resize`` =
  the model's smart-resize to a multiple of patch x merge, ``rescale``, ``normalize``),
  and frames are then grouped into temporal patches in exactly the layout of
  ``Qwen2VLVideoProcessor.patchify`` / ``Qwen3VLVideoProcessor.patchify`` (tests check
  it against the image processor on a static clip). The resize is per frame (Qwen2-VL
  video semantics, with the ``size`` budget the processor passes, else the image
  processor's); Qwen3-VL's video processor budgets pixels over the whole clip instead.
  Preset frame sizes are multiples of patch x merge and inside both budgets, so no resize
  happens for them either way.
- ``tiny_tokenizer``: a real byte-level BPE tokenizer trained in-process with the
  ``tokenizers`` library (tests and benchmarks; no download).
- ``HFBackbone``: dtype / device / quantisation, freezing, mask-aware pooling of one layer.
- ``ChatVideoBackbone``: the Qwen chat-format video models (Qwen2.5-Omni thinker, Qwen3-VL):
  construction, prompt, encoding and generation through the model's own processor.
"""

from __future__ import annotations

import abc
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from neon_ros.backbones.base import Backbone, BackboneConfig, check_clip, freeze, masked_mean, torch_dtype
from neon_ros.backbones.registry import weights_path

TINY_CORPUS = (
    "pick up the red cup and place it on the table. wave with the left hand. walk forward two steps. "
    "turn left, turn right, stop. open the drawer. the robot sees a person, a box, a ball and a door. "
    "I see the red cup. Reaching for it now. hold still. look at me. hand me the bottle please."
)
# The special tokens of Qwen's chat format; each adapter adds its media tokens.
QWEN_CHAT_TOKENS = {
    "pad_token": "<|endoftext|>",
    "eos_token": "<|im_end|>",
    "im_start_token": "<|im_start|>",
}


def tiny_tokenizer(special: dict[str, str], vocab_size: int = 320, model_max_length: int = 4096) -> Any:
    """A byte-level BPE tokenizer (trained in-process) with named special tokens.

    ``special`` maps attribute names (``image_token``, ``eos_token``, ...) to token strings;
    each becomes an attribute of the tokenizer, as in the real checkpoints' tokenizer configs.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokens = list(dict.fromkeys(special.values()))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TINY_CORPUS] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **special)


def processor_with_frames_video(processor_cls: type) -> type:
    """The model's processor class, accepting a FramesVideoProcessor as its video processor.

    (Its constructor checks the video processor against ``transformers.VideoProcessorMixin``,
    which transformers only exports when torchvision is installed.)
    """
    from transformers.video_processing_utils import VideoProcessorMixin

    def check_argument_for_proper_class(self: Any, argument_name: str, argument: Any) -> Any:
        if argument_name == "video_processor" and isinstance(argument, VideoProcessorMixin):
            return type(argument)
        return processor_cls.check_argument_for_proper_class(self, argument_name, argument)

    return type(processor_cls.__name__, (processor_cls,), {"check_argument_for_proper_class": check_argument_for_proper_class})


def make_video_processor(image_processor: Any, video_config: dict[str, Any] | None = None) -> Any:
    """A FramesVideoProcessor (VideoProcessorMixin) on the model's image processor (module docstring).

    ``video_config``: the checkpoint's video_preprocessor_config.json (patch_size,
    temporal_patch_size, merge_size, image_mean, image_std); defaults to the image
    processor's values. The resize budget is the ``size`` the processor passes per call,
    else the image processor's ``size`` (per-frame semantics).
    """
    from transformers.feature_extraction_utils import BatchFeature
    from transformers.image_utils import SizeDict
    from transformers.video_processing_utils import VideoProcessorMixin
    from transformers.video_utils import VideoMetadata

    cfg = dict(video_config or {})

    class FramesVideoProcessor(VideoProcessorMixin):
        model_input_names = ["pixel_values_videos", "video_grid_thw"]

        def __init__(self) -> None:  # deliberately not calling VideoProcessorMixin.__init__ kwargs parsing
            self.image_processor = image_processor
            self.patch_size = int(cfg.get("patch_size", image_processor.patch_size))
            self.temporal_patch_size = int(cfg.get("temporal_patch_size", image_processor.temporal_patch_size))
            self.merge_size = int(cfg.get("merge_size", image_processor.merge_size))
            self.image_mean = cfg.get("image_mean", image_processor.image_mean)
            self.image_std = cfg.get("image_std", image_processor.image_std)
            self.size = SizeDict(**dict(image_processor.size))
            self.rescale_factor = float(cfg.get("rescale_factor", image_processor.rescale_factor))

        def to_dict(self) -> dict[str, Any]:
            return {"patch_size": self.patch_size, "temporal_patch_size": self.temporal_patch_size,
                    "merge_size": self.merge_size}

        def frames_to_chw(self, video: np.ndarray, size: Any = None) -> np.ndarray:
            """(T, H, W, 3) uint8 -> (T, 3, H', W') float32 through the image processor's own steps."""
            ip = self.image_processor
            size = SizeDict(**dict(size)) if size is not None else self.size
            out = []
            for frame in video:
                img = np.moveaxis(np.asarray(frame), -1, 0)
                img = ip.resize(img, size=size, resample=ip.resample, factor=self.patch_size * self.merge_size)
                img = ip.rescale(img.astype(np.float32), self.rescale_factor)
                img = ip.normalize(img, self.image_mean, self.image_std)
                out.append(np.asarray(img, dtype=np.float32))
            return np.stack(out)

        def patchify(self, frames: np.ndarray) -> tuple[np.ndarray, list[int]]:
            """(T, C, H, W) -> (grid_t*grid_h*grid_w, C*tps*p*p), same order as transformers' patchify."""
            tps, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
            t, c, h, w = frames.shape
            if pad := -t % tps:
                frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
                t += pad
            gt, gh, gw = t // tps, h // p, w // p
            x = frames.reshape(gt, tps, c, gh // m, m, p, gw // m, m, p)
            x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
            return np.ascontiguousarray(x.reshape(gt * gh * gw, c * tps * p * p)), [gt, gh, gw]

        def __call__(
            self, videos: Any, fps: float | None = None, size: Any = None, return_tensors: Any = None, **kwargs: Any
        ):
            import torch

            videos = [videos] if isinstance(videos, np.ndarray) and videos.ndim == 4 else list(videos)
            patches, grids, metas = [], [], []
            for video in videos:
                flat, grid = self.patchify(self.frames_to_chw(np.asarray(video), size))
                patches.append(flat)
                grids.append(grid)
                metas.append(
                    VideoMetadata(total_num_frames=len(video), fps=fps or 2.0, frames_indices=list(range(len(video))))
                )
            data = {
                "pixel_values_videos": torch.from_numpy(np.concatenate(patches)),
                "video_grid_thw": torch.tensor(grids, dtype=torch.long),
                "video_metadata": metas,
            }
            return BatchFeature(data=data)

        def get_num_of_video_patches(self, num_frames: int, height: int, width: int, videos_kwargs=None) -> int:
            gt = -(-num_frames // self.temporal_patch_size)
            return gt * (height // self.patch_size) * (width // self.patch_size)

    return FramesVideoProcessor()


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


class HFBackbone(Backbone):
    """Base of the transformers adapters: placement, freezing, pooling of hidden layer ``layer``."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        import torch

        self._torch = torch
        self._dtype = torch_dtype(config.dtype)
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"backbone preset {config.name!r} asks for device {config.device!r} but this torch has no CUDA; "
                "pass device='cpu' (and dtype='float32') to run it on the CPU"
            )

    def place(self, model: Any) -> Any:
        """dtype, device, optional dynamic int8 quantisation, then frozen (eval, no grad)."""
        torch = self._torch
        model = model.to(dtype=self._dtype, device=self.config.device)
        if self.config.quantization == "int8_dynamic":  # int8 weights, float activations (CPU kernels)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao deprecation notice; the kernels still ship in 2.13
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return freeze(model)

    def pool_layer(self, hidden_states: Any, attention_mask: Any, who: str) -> Any:
        """Mask-aware mean of hidden layer ``config.layer`` -> (B, D) float32."""
        n = len(hidden_states)
        if not -n <= self.config.layer < n:
            raise ValueError(f"backbone {self.config.name}: layer {self.config.layer} out of range for {who} ({n} states)")
        return masked_mean(hidden_states[self.config.layer].float(), attention_mask.bool())

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        torch = self._torch
        out = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.config.device)
                if value.is_floating_point():
                    value = value.to(self._dtype)
            out[key] = value
        return out

    def check_width(self, hidden: int) -> None:
        if hidden != self.config.width:
            raise ValueError(
                f"backbone {self.config.name}: the model's hidden size is {hidden}, the preset declares {self.config.width}"
            )


class ChatVideoBackbone(HFBackbone):
    """A video-language model in Qwen's chat format, driven through its own processor.

    Subclasses set ``SPECIAL_TOKENS`` and ``DEFAULT_SYSTEM_PROMPT`` and implement ``_load``
    (a weights folder) and ``_build_tiny``, each returning (model, processor), and
    ``user_turn`` (the media placeholders and the instruction).
    """

    SPECIAL_TOKENS: dict[str, str]
    DEFAULT_SYSTEM_PROMPT: str

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        if config.tiny:
            model, self.processor = self._build_tiny()
            self.config.width = int(model.config.text_config.hidden_size)
        else:
            model, self.processor = self._load(weights_path(config))
        self.model = self.place(model)
        self.check_width(int(self.model.config.text_config.hidden_size))
        self._system = str(config.options.get("system_prompt", self.DEFAULT_SYSTEM_PROMPT))

    @abc.abstractmethod
    def _load(self, path: Path) -> tuple[Any, Any]:
        """(model, processor) from a Hugging Face weights folder."""

    @abc.abstractmethod
    def _build_tiny(self) -> tuple[Any, Any]:
        """(model, processor) of a tiny random config of the architecture."""

    @abc.abstractmethod
    def user_turn(self, text: str, with_audio: bool) -> str:
        """The user's message: the model's video (and audio) placeholders, then ``text``."""

    def build_prompt(self, text: str, with_audio: bool) -> str:
        """Qwen's chat format: the system prompt, the user's turn, then the assistant's turn opens."""
        return (
            f"<|im_start|>system\n{self._system}<|im_end|>\n"
            f"<|im_start|>user\n{self.user_turn(text, with_audio)}<|im_end|>\n<|im_start|>assistant\n"
        )

    def tiny_chat_tokenizer(self) -> tuple[Any, dict[str, int]]:
        """A tiny tokenizer with ``SPECIAL_TOKENS`` and their ids by attribute name."""
        tok = tiny_tokenizer(self.SPECIAL_TOKENS)
        return tok, {name: tok.convert_tokens_to_ids(t) for name, t in self.SPECIAL_TOKENS.items()}

    def tiny_model(self, model_cls: type, cfg: Any, ids: dict[str, int]) -> Any:
        """A random ``model_cls(cfg)`` (seed: option ``tiny_seed``) that generates until the chat's end token."""
        self._torch.manual_seed(int(self.config.options.get("tiny_seed", 0)))
        model = model_cls(cfg)
        model.generation_config.eos_token_id = ids["eos_token"]
        model.generation_config.pad_token_id = ids["pad_token"]
        return model

    def torch_modules(self) -> list[Any]:
        return [self.model]

    def vision_tower(self) -> Any:
        return self.model.model.visual

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write a Hugging Face folder (weights, config, image processor, feature extractor, tokenizer)."""
        out = Path(out_dir)
        self.model.save_pretrained(out)
        for part in ("image_processor", "feature_extractor", "tokenizer"):
            if getattr(self.processor, part, None) is not None:
                getattr(self.processor, part).save_pretrained(out)
        return out

    def inputs(self, frames: np.ndarray, text: str, audio: np.ndarray | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "text": [self.build_prompt(text, audio is not None)],
            "videos": [frames],
            "return_tensors": "pt",
            "videos_kwargs": {"fps": self.fps},
        }
        if audio is not None:
            kwargs["audio"] = [audio]
        batch = dict(self.processor(**kwargs))
        batch.pop("video_metadata", None)
        return self.to_device(batch)

    def _encode(self, frames: np.ndarray, instruction: str, audio: np.ndarray | None) -> np.ndarray:
        batch = self.inputs(frames, instruction, audio)
        with self._torch.inference_mode():
            out = self.model(**batch, output_hidden_states=True, use_cache=False)
        return self.pool_layer(out.hidden_states, batch["attention_mask"], type(self.model).__name__)[0].cpu().numpy()

    def generate_text(self, frames: np.ndarray, prompt: str, max_new_tokens: int | None = None) -> str:
        clip = check_clip(frames, self.frame_size, f"backbone {self.config.name}")
        batch = self.inputs(clip, prompt, None)
        n = int(max_new_tokens or self.config.options.get("max_new_tokens", 32))
        with self._torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=n, do_sample=False)
        return self.processor.tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True).strip()
