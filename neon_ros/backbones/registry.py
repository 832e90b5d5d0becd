"""Backbone presets (config/backbones/*.yaml) and the registry of adapter classes.

A preset names an ``architecture``; ``ARCHITECTURES`` maps that key to the module and
class of its adapter (imported only when used, so cpu_default never imports the big
architectures). ``load_backbone(preset, **overrides)`` is the one entry point: a node or
training config holds one line, ``preset: NAME``, and swapping it swaps the backbone.

Presets are found, in order, in: $NEON_BACKBONE_PRESETS (a folder), the source tree's
config/backbones, and the installed share/neon_ros/config/backbones. A preset may also be
given as a path to a YAML file.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from neon_ros.backbones.base import Backbone, BackboneConfig, MissingWeightsError
from neon_ros.config_files import config_dirs

# architecture key -> "module:Class" (lazy import).
ARCHITECTURES: dict[str, str] = {
    "cpu_default": "neon_ros.backbones.cpu_default:CpuDefaultBackbone",
    "qwen2_5_omni": "neon_ros.backbones.qwen_omni:QwenOmniBackbone",
    "qwen3_vl": "neon_ros.backbones.qwen3_vl:Qwen3VLBackbone",
    "tribe_v2": "neon_ros.backbones.tribe:TribeBackbone",
}

PRESETS_ENV = "NEON_BACKBONE_PRESETS"
MODELS_ENV = "NEON_MODELS"


def register_architecture(key: str, target: str) -> None:
    """Add an adapter: ``target`` is "package.module:ClassName" (a Backbone subclass)."""
    if ":" not in target:
        raise ValueError(f"architecture target must be 'module:Class', got {target!r}")
    ARCHITECTURES[key] = target


def preset_dirs() -> list[Path]:
    """Folders searched for <preset>.yaml, first match wins."""
    dirs: list[Path] = []
    if os.environ.get(PRESETS_ENV):
        dirs.append(Path(os.environ[PRESETS_ENV]).expanduser())
    dirs.extend(config_dirs("backbones"))
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def list_presets() -> list[str]:
    """Names of every preset found (sorted)."""
    names: set[str] = set()
    for d in preset_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def preset_path(preset: str) -> Path:
    if preset.endswith((".yaml", ".yml")) or os.sep in preset:
        path = Path(preset).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone preset file {path} does not exist")
        return path
    for d in preset_dirs():
        candidate = d / f"{preset}.yaml"
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"unknown backbone preset {preset!r}; known presets: {', '.join(list_presets()) or '(none found)'} "
        f"(searched {', '.join(str(d) for d in preset_dirs())})"
    )


def load_config(preset: str, **overrides: Any) -> BackboneConfig:
    """Read a preset YAML and apply overrides (any BackboneConfig field)."""
    import yaml

    path = preset_path(preset)
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"backbone preset {path}: expected a mapping at top level")
    data.setdefault("name", path.stem)
    options = dict(data.get("options") or {})
    options.update(overrides.pop("options", None) or {})
    data["options"] = options
    if overrides.get("tiny"):  # tiny random models are for CPU tests/benchmarks unless told otherwise
        data["device"] = "cpu"
        data["dtype"] = "float32"
    data.update({k: v for k, v in overrides.items() if v is not None})
    return BackboneConfig.from_dict(data)


def expected_latency(backbone_id: str) -> float | None:
    """The ``expected_latency_s`` declared by the preset a backbone id (``name[-tiny].L<layer>``,
    as heads and /neon/features carry it) comes from; None: no such preset, or none declared."""
    name = backbone_id.split(".")[0].removesuffix("-tiny")
    try:
        latency = load_config(name).expected_latency_s
    except (ValueError, FileNotFoundError):
        return None
    return latency or None


def adapter_class(architecture: str) -> type[Backbone]:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown backbone architecture {architecture!r}; registered: {sorted(ARCHITECTURES)}")
    module_name, cls_name = ARCHITECTURES[architecture].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Backbone)):
        raise TypeError(f"{ARCHITECTURES[architecture]} is not a Backbone subclass")
    return cls


def load_backbone(preset: str, **overrides: Any) -> Backbone:
    """Build a frozen backbone from a preset name (or YAML path).

    Overrides are BackboneConfig fields, e.g. ``tiny=True`` (tests), ``weights_dir=...``,
    ``layer=-4``, ``dtype="bfloat16"``, ``device="cuda"``, ``options={...}``.
    """
    config = load_config(preset, **overrides)
    # Neon never downloads weights at run time (Hugging Face libraries honour these).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return adapter_class(config.architecture)(config)


def models_root() -> Path | None:
    value = os.environ.get(MODELS_ENV)
    return Path(value).expanduser() if value else None


def weights_path(config: BackboneConfig, folder: str | None = None) -> Path:
    """The local Hugging Face-layout directory of a preset (or of one of its components).

    Never downloads: a missing directory raises MissingWeightsError naming the preset,
    the path looked in and how to provide the weights.
    """
    folder = folder if folder is not None else config.model
    if config.weights_dir:
        base = Path(config.weights_dir).expanduser()
        path = base / folder if (folder and config.components) else base
    elif models_root() is not None:
        path = models_root() / folder  # type: ignore[operator]
    else:
        path = None
    if path is None or not path.is_dir() or not any(path.iterdir()):
        where = str(path) if path is not None else f"${MODELS_ENV}/{folder} (${MODELS_ENV} is not set)"
        raise MissingWeightsError(
            f"backbone preset {config.name!r}: no weights in {where}. Neon never downloads weights at run time: "
            f"put the Hugging Face-layout folder {folder!r} (config.json + *.safetensors + processor files) there, "
            f"e.g. `huggingface-cli download {config.sources.get(folder, '<hub repo>')} --local-dir {where}` on a "
            f"machine with internet, then set "
            f"${MODELS_ENV} to its parent folder or `weights_dir:` in config/backbones/{config.name}.yaml "
            f"(or pass weights_dir=... to load_backbone)."
        )
    return path
