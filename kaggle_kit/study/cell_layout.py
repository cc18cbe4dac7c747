"""Where each cell of a plan sits in the report's tables and pictures: rows by the plan's first axes, columns
by its last, and the mark of the best cell."""

from __future__ import annotations

from typing import Any

from .plan import Cell, Plan, format_value

WINNER_MARK = "★"


def row_combos(plan: Plan) -> list[dict[str, Any]]:
    import itertools

    axes = {a.name: a.values for a in plan.axes}
    return [dict(zip(plan.table_rows, combo)) for combo in itertools.product(*(axes[a] for a in plan.table_rows))]


def cell_at(plan: Plan, row: dict[str, Any], column_value: Any = None) -> str:
    values = dict(row)
    if plan.table_columns:
        values[plan.table_columns] = column_value
    return Cell({axis: values[axis] for axis in plan.axis_names}).name


def row_label(plan: Plan, row: dict[str, Any]) -> str:
    return ", ".join(plan.label(axis, value) for axis, value in row.items()) or "all"


def group_label(plan: Plan, values: dict[str, Any]) -> str:
    """A panel title: display names where the plan gives them, else axis=value (a bare "none" says little)."""
    return ", ".join(plan.label(a, v) if a in plan.labels else f"{a}={format_value(v)}" for a, v in values.items())


def columns_of(plan: Plan) -> list[Any]:
    if not plan.table_columns:
        return [None]
    return list(next(a.values for a in plan.axes if a.name == plan.table_columns))
