"""A user's hook by its `module:Class` name (`--hook`, and a resume re-creating the hooks its config.json records).

Resume runs with the hooks the run started with: config.json names each user hook, and a resume creates it again
from that name (with no arguments) unless the caller passes an instance of that class, then restores its state
from last.pt. A hook passed to resume that the run did not start with is refused, as any other changed setting.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...core.errors import KitError
from ..state import hook_name
from .base import Hook


def load_hook(spec: str, label: str | None = None) -> Hook:
    """`package.module:Class` -> a new `Class()`; a one-line `KitError` starting with `label` (default
    `--hook SPEC`) when it cannot be made."""
    label = label or f"--hook {spec}"
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise KitError(f"{label}: give a hook as module:Class, e.g. my_hooks:CountBatches")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # not found, or the module itself fails on import
        raise KitError(
            f"{label}: cannot import {module_name} ({_first_line(error)}); make it importable "
            f"(install it, or add its folder to PYTHONPATH)"
        ) from None
    cls: Any = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and issubclass(cls, Hook)):
        raise KitError(f"{label}: {module_name} has no Hook subclass {class_name} (kaggle_kit.training.Hook)")
    try:
        return cls()
    except TypeError as error:
        raise KitError(
            f"{label}: {class_name}() cannot be made without arguments ({_first_line(error)}); "
            f"pass an instance from Python instead"
        ) from None


def hooks_for_resume(recorded: list[str], given: list[Hook], config_path: str) -> list[Hook]:
    """The hooks a resumed run continues with: for each name in config.json, the given instance of that class, or
    one made from the name; and the caller's unrecorded hooks (`recorded = False`, e.g. tune's pruning, which reports
    to a live trial), which were never a setting of the run: a retried tune trial resumes with its own."""
    unused = [hook for hook in given if getattr(hook, "recorded", True)]
    live = [hook for hook in given if not getattr(hook, "recorded", True)]
    hooks = []
    for name in recorded:
        match = next((hook for hook in unused if hook_name(hook) == name), None)
        if match is not None:
            unused.remove(match)
            hooks.append(match)
        else:
            hooks.append(load_hook(name, f"hook {name} (recorded in {config_path})"))
    if unused:
        said = ", ".join(recorded) or "none"
        raise KitError(
            f"hook {hook_name(unused[0])} was not part of this run ({config_path} records: {said}); a resume runs "
            f"with the hooks the run started with: train a new run to add one"
        )
    return hooks + live


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
