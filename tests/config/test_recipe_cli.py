"""Recipe -> `kaggle-kit train` flags -> Recipe gives back every field: the one mapping, both ways."""

import dataclasses
from typing import get_args, get_type_hints

import pytest

from kaggle_kit.config.flags import SKIPPED, Unsayable, parse_recipe_argv, recipe_to_argv
from kaggle_kit.config.recipe import Recipe

HINTS = get_type_hints(Recipe)


def _other_value(name: str, default):
    """A value of the field's type that is not its default."""
    hint = HINTS[name]
    kinds = [k for k in get_args(hint) if k is not type(None)] or [hint]
    kind = kinds[0]
    if kind is bool:
        return not default if default is not None else True
    if kind is int:
        return (default or 0) + 7
    if kind is float:
        return (default or 0.0) + 0.375
    return f"{default or 'x'}-other"


def _cases():
    for field in dataclasses.fields(Recipe):
        if field.name in SKIPPED:
            continue
        yield field.name, _other_value(field.name, field.default)
        nullable = type(None) in get_args(HINTS[field.name])
        if nullable and bool not in get_args(HINTS[field.name]) and field.default is not None:
            yield field.name, None


@pytest.mark.parametrize("name,value", list(_cases()))
def test_every_field_goes_to_flags_and_back(name, value):
    argv = recipe_to_argv({name: value})
    assert getattr(Recipe().replace(**parse_recipe_argv(argv)), name) == value, argv


def test_all_fields_at_once_and_the_flag_forms():
    changed = {}
    for name, value in _cases():
        changed.setdefault(name, value)
    assert Recipe().replace(**parse_recipe_argv(recipe_to_argv(changed))) == Recipe().replace(**changed)
    assert recipe_to_argv({"freeze": True, "amp": False}) == ["--freeze", "--no-amp"]
    assert recipe_to_argv({"unfreeze_after": None, "lr": 0.1, "batch_size": 64}) == [
        "--unfreeze-after",
        "none",
        "--lr",
        "0.1",
        "--batch-size",
        "64",
    ]
    assert Recipe(ema=0.999).replace(**parse_recipe_argv(["--ema", "none"])).ema is None


def test_a_none_no_flag_can_say_names_its_field():
    with pytest.raises(Unsayable) as raised:
        recipe_to_argv({"gpu_data": None})
    assert raised.value.field == "gpu_data"
