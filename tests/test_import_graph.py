"""The package's modules import each other without a cycle (function-level imports included).

A cycle hides a layering mistake (docs/ARCHITECTURE.md: a module imports only modules above it) and
tends to be papered over with imports inside functions; this reads every module's imports with `ast`,
so those count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kaggle_kit

PACKAGE = "kaggle_kit"
ROOT = Path(kaggle_kit.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module `name` refers to: itself, or the longest known prefix (a name imported from it)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from . import x` and `from .pkg import mod` name modules; `from .mod import name` names the module
            named = [f"{prefix}.{alias.name}" for alias in node.names]
            targets = named if all(name in modules for name in named) else [*named, prefix]
        for target in targets:
            if target == PACKAGE or not target.startswith(PACKAGE + "."):
                continue
            resolved = _resolve(target, modules)
            # a package's own submodules are not its imports when it names them with `from .x import`
            if resolved and resolved != module:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # `from .sub import x` also runs every package __init__ above sub: not an edge of the module's own making
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    graph = import_graph()
    assert "kaggle_kit.core.errors" in graph["kaggle_kit.config.recipe"]  # from .errors import KitError
    assert "kaggle_kit.training" in graph["kaggle_kit.api.training"]  # from .. import training, in a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# The pipeline's stages, upstream first: a sub-package imports only the ones before it (docs/ARCHITECTURE.md).
STAGES = [
    "core",
    "config",
    "competitions",
    "records",
    "data",
    "models",
    "training",
    "submissions",
    "inference",
    "kaggle",
    "workflows",
    "study",
    "api",
    "cli",
]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a stage to a later one, as 'importer -> imported'."""
    found = []
    for module, imported in sorted(graph.items()):
        stage = _stage(module)
        for target in sorted(imported):
            other = _stage(target)
            if stage and other and STAGES.index(other) > STAGES.index(stage):
                found.append(f"{module} -> {target}")
    return found


def test_every_module_lives_in_a_stage():
    loose = [name for name in import_graph() if name.count(".") == 1 and _stage(name) is None]
    assert sorted(loose) == ["kaggle_kit.__main__"], loose


def test_no_stage_imports_a_later_one():
    assert upward_imports({"kaggle_kit.data.cache": {"kaggle_kit.training.loop"}}) == [
        "kaggle_kit.data.cache -> kaggle_kit.training.loop"
    ]
    assert upward_imports(import_graph()) == []
