"""The package's exception roots: every error neon_ros raises derives from ``NeonError``.

Each concrete error also keeps the builtin base its callers catch (``ValueError``,
``RuntimeError``, ...), so ``except ValueError`` still sees a bad message.
"""

from __future__ import annotations


class NeonError(Exception):
    """Base of every exception defined in neon_ros."""


class UnavailableError(NeonError):
    """Something this run needs is not here: weights, an optional dependency or hardware."""
