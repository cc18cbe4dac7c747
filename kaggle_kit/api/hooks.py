"""`kk.Hook`, the base of a user's own training hooks (docs/hooks.md), and hooks named by `module:Class` text."""

from __future__ import annotations

from ..training.hooks.base import Hook

__all__ = ["Hook", "hook_objects"]


def hook_objects(hooks) -> list:
    """The hooks as objects: given ones as they are, `module:Class` text (what `--hook` gives, and what `nproc`
    workers receive) made by the training stage's loader, which says in one line what is wrong with a name."""
    if not any(isinstance(hook, str) for hook in hooks):
        return list(hooks)
    from ..training.hooks.loading import load_hook

    return [load_hook(hook) if isinstance(hook, str) else hook for hook in hooks]
