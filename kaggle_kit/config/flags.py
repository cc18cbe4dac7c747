"""The Recipe <-> command line mapping, both ways, in one place.

`kaggle-kit train` takes every Recipe field (but its name, which `--recipe` gives) as a flag: `--lr 0.05`,
`--batch-size 64`, `--freeze/--no-freeze` for booleans, and `none` to clear a field that may be None
(`--unfreeze-after none`). `recipe_parameters` makes those flags for typer; `recipe_to_argv` writes the flags
that set given values (what `experiment --gpus` hands each `kaggle-kit train` process); `parse_recipe_argv`
reads such flags back through the very same parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Optional, get_type_hints

from ..core.errors import KitError
from .recipe import FIELD_HELP, Recipe

SKIPPED = {"name"}  # the recipe's name comes from --recipe
PANEL = "Recipe overrides"


class Unsayable(ValueError):
    """A value no flag can give (a boolean field's None); `field` names the Recipe field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def flag(name: str) -> str:
    """The command-line flag of Recipe field `name`: `batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")


def _is_bool(name: str) -> bool:
    return "bool" in str(get_type_hints(Recipe)[name])


def recipe_parameters() -> list[inspect.Parameter]:
    """One keyword-only typer parameter per Recipe field (default None: not given)."""
    import typer

    hints = get_type_hints(Recipe)
    params = []
    for field in dataclasses.fields(Recipe):
        if field.name in SKIPPED:
            continue
        option = flag(field.name)
        hint = hints[field.name]
        text = str(hint)
        if "bool" in text:
            decls = [f"{option}/--no-{option[2:]}"]
            kind = Optional[bool]
        else:
            decls = [option]
            kind = (
                Optional[int]
                if "int" in text and "float" not in text
                else Optional[float]
                if "float" in text
                else Optional[str]
            )
        help_text, metavar = FIELD_HELP.get(field.name, field.name), None
        if "None" in text and kind in (Optional[int], Optional[float]):
            # a nullable number takes text, so `none` can clear what the recipe sets; Recipe.replace checks the type
            metavar = ("INTEGER" if kind is Optional[int] else "FLOAT") + "|none"
            kind, help_text = Optional[str], f"{help_text} (none: unset)"
        option = typer.Option(None, *decls, help=help_text, metavar=metavar, rich_help_panel=PANEL)
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    return params


def with_recipe_flags(func):
    """`func(..., **overrides)` with its `**overrides` replaced by one typer option per Recipe field."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = signature.replace(parameters=params + recipe_parameters())
    return func


def recipe_to_argv(overrides: dict[str, Any]) -> list[str]:
    """The `kaggle-kit train` flags that set `overrides` (Recipe field -> value), in the order given.

    A boolean is `--flag` / `--no-flag`, None is `none` (for a boolean that may be None, which no flag can say,
    `Unsayable`, a ValueError naming the field), a float is written exactly (repr)."""
    argv: list[str] = []
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key in SKIPPED:
            raise ValueError(f"{key} is not a flag: the recipe's name comes from --recipe")
        if isinstance(value, bool):
            argv.append(flag(key) if value else f"--no-{flag(key)[2:]}")
        elif value is None:
            if _is_bool(key):
                raise Unsayable(key, f"{key}=none cannot be given as a flag (only {flag(key)} or --no-{flag(key)[2:]})")
            argv += [flag(key), "none"]
        else:
            argv += [flag(key), repr(value) if isinstance(value, float) else str(value)]
    return argv


def parse_recipe_argv(argv: list[str]) -> dict[str, Any]:
    """Recipe flags back to {field: value} for the fields given, through the parameters `train` uses;
    values as `Recipe.replace` takes them (`none` comes back as the text, which it reads as None)."""
    import click
    import typer

    found: dict[str, Any] = {}

    def capture(**overrides) -> None:
        found.update({k: v for k, v in overrides.items() if v is not None})

    app = typer.Typer()
    app.command()(with_recipe_flags(capture))
    try:
        typer.main.get_command(app).main(list(argv), standalone_mode=False)
    except click.ClickException as error:
        raise KitError(f"{' '.join(argv)}: {error.format_message()}") from None
    return found
