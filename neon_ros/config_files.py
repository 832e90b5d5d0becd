"""Where the package's config/ folder is, for every reader of it (backbone presets, soup recipes,
the voice vocabulary): the source tree's, a ROS 2 install's share folder (colcon / ament), or
sys.prefix/share/neon_ros (a pip install with setup.py's data files)."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "neon_ros"


def config_dirs(*sub: str) -> list[Path]:
    """config/<sub...> in each place it can be, first match wins (no duplicates)."""
    roots = [Path(__file__).resolve().parents[1] / "config"]
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(PACKAGE)) / "config")
    except Exception:  # ament is optional, and raises when the package is not installed with it
        pass
    roots.append(Path(sys.prefix) / "share" / PACKAGE / "config")
    out: list[Path] = []
    for d in (r.joinpath(*sub) for r in roots):
        if d not in out:
            out.append(d)
    return out


def config_file(*parts: str) -> Path:
    """The first config/<parts...> that exists (FileNotFoundError naming every place looked at)."""
    *sub, name = parts
    candidates = [d / name for d in config_dirs(*sub)]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{'/'.join(parts)} not found in config/ (looked at "
                            f"{', '.join(map(str, candidates))})")
