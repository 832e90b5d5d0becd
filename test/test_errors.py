"""Every exception class neon_ros defines derives from NeonError; "unavailable" ones from UnavailableError."""

import ast
import importlib

import pytest
from support import REPO

from neon_ros.errors import NeonError, UnavailableError

UNAVAILABLE = {
    "neon_ros.backbones.base.MissingWeightsError",
    "neon_ros.runtime.trt.TensorRTUnavailableError",
    "neon_ros.unitree.SdkMissingError",
    "neon_ros.voice.asr.AsrUnavailableError",
    "neon_ros.voice.tts.TtsUnavailableError",
    "neon_ros.voice.audio.AudioDeviceError",
}


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _looks_like_exception(name: str) -> bool:
    return name.endswith(("Error", "Exception", "Warning"))


def exception_classes() -> list[str]:
    """Dotted names of the classes in neon_ros/ named, or based on a class named, like an exception."""
    found = []
    for path in sorted((REPO / "neon_ros").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and (
                    _looks_like_exception(node.name) or any(_looks_like_exception(_base_name(b)) for b in node.bases)):
                found.append(f"{module}.{node.name}")
    return found


def _load(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_scan_finds_the_known_errors():
    found = set(exception_classes())
    assert UNAVAILABLE <= found
    assert len(found) >= 19, sorted(found)
    assert "neon_ros.errors.NeonError" in found


@pytest.mark.parametrize("dotted", exception_classes())
def test_every_error_is_a_neon_error(dotted):
    cls = _load(dotted)
    assert issubclass(cls, NeonError), f"{dotted} does not derive from neon_ros.errors.NeonError"
    assert issubclass(cls, UnavailableError) == (dotted in UNAVAILABLE or cls is UnavailableError), (
        f"{dotted}: UnavailableError is for missing weights, optional packages and hardware only")
