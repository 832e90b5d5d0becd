"""The e-stop latch on disk: it survives the bridge process (a crash, kill -9, a restart).

The bridge writes the latch file when an e-stop is asserted and removes it only when an
explicit enable resets the latch; a bridge that starts reads it before it can enable, so
neither autostart nor anything else powers the robot up after a restart until someone
resets the latch on purpose (``/g1_bridge/enable`` with data: true, once the e-stop level
is released). The file's presence is the latch; its JSON content (when, which process) is
for people.

Writes are atomic: a temporary file in the same directory, fsync, rename over the latch,
fsync of the directory. One latch per robot: the file name carries the Unitree DDS
interface and domain, so a simulation (``lo``, domain 1) and a robot (``eth0``, domain 0)
never share one. A latch that cannot be read (permissions, a broken file system) counts as
set: the bridge then refuses autostart rather than guessing.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/neon, else ~/.local/state/neon."""
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "neon"


def latch_path(state_dir: str | Path | None, network_interface: str, domain_id: int,
               owner: str = "g1_bridge") -> Path:
    """The latch file of ``owner`` (a bridge node: g1_bridge, body_bridge) for the robot on
    ``network_interface`` / Unitree DDS ``domain_id``."""
    root = Path(state_dir) if state_dir else default_state_dir()
    iface = re.sub(r"[^A-Za-z0-9_.-]", "_", network_interface or "auto")
    return root / f"{owner}_estop_{iface}_{int(domain_id)}.latch"


class EstopLatchFile:
    """Set, clear and read one latch file. Not thread-safe: the bridge serialises the calls."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def is_set(self) -> bool:
        """True if the file exists, or if whether it exists cannot be told."""
        try:
            self.path.lstat()
        except FileNotFoundError:
            return False
        except OSError:
            return True
        return True

    def set(self, reason: str = "estop") -> None:
        """Write the latch atomically (raises OSError if the state directory is not writable)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        text = json.dumps({"reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid()})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._sync_dir()

    def clear(self) -> None:
        """Remove the latch (nothing to do if it is not set)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
