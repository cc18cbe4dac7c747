"""Per-fit variations of the loop, each a small class; `loop.fit` lists the ones it runs, in order."""

from .base import Hook

__all__ = ["Hook"]
