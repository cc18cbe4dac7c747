"""Finding competition declarations, and the one a user means by what they type.

Declarations (TOML, see `declaration`) are found in order: the built-ins (competitions/<name>/competition.toml),
then the user's `$XDG_CONFIG_HOME/kaggle-kit/competitions/` (default ~/.config/...), then `./competitions/` of the
current folder. Each folder holds `<name>.toml` files or `<name>/competition.toml` folders (with plans/); a later
declaration of the same name wins, with a note. A declaration that does not load is skipped with a note, and is
the error when it is the one asked for.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..core.errors import KitError
from .declaration import DECLARATION_FILE, Competition, did_you_mean, load

__all__ = ["Competition", "all_competitions", "broken_declarations", "declaration_folders", "rediscover", "resolve"]


def _built_in_folder() -> Path:
    import competitions

    return Path(competitions.__file__).parent


def declaration_folders() -> list[tuple[str, Path]]:
    """(source label, folder) in the order they are read; a later folder overrides an earlier one."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [
        ("built-in", _built_in_folder()),
        ("user", config / "kaggle-kit" / "competitions"),
        ("local", Path.cwd() / "competitions"),
    ]


def declaration_files(folder: Path) -> list[Path]:
    """`<name>.toml` and `<name>/competition.toml` in `folder`, by name."""
    if not folder.is_dir():
        return []
    return sorted([*folder.glob("*.toml"), *folder.glob(f"*/{DECLARATION_FILE}")], key=lambda p: str(p))


@dataclass(frozen=True)
class _Found:
    competitions: dict[str, Competition]
    broken: dict[str, KitError]  # file stem (or folder name) -> why it does not load


def all_competitions() -> dict[str, Competition]:
    """Every declaration that loads, by short name, the later folder's where names repeat."""
    return _discover(_folder_key()).competitions


def broken_declarations() -> dict[str, KitError]:
    """Declarations that do not load, by the name their file gives (stem, or folder for competition.toml) and by
    the name, slug and aliases they state."""
    return _discover(_folder_key()).broken


def rediscover() -> None:
    """Forget the declarations found so far, so that one written since (by `init`) is found."""
    _discover.cache_clear()


def _folder_key() -> tuple[tuple[str, str], ...]:
    # the folders resolved to text, so a changed cwd or XDG_CONFIG_HOME discovers again (and notes again, once)
    seen, key = set(), []
    for label, folder in declaration_folders():
        real = str(folder.resolve()) if folder.is_dir() else str(folder)
        if real not in seen:  # ./competitions of the source tree is the built-in folder itself
            seen.add(real)
            key.append((label, real))
    return tuple(key)


@cache
def _discover(folders: tuple[tuple[str, str], ...]) -> _Found:
    found: dict[str, Competition] = {}
    files: dict[str, Path] = {}  # name -> the file that declared it, for the override note
    broken: dict[str, KitError] = {}
    for label, folder in folders:
        for path in declaration_files(Path(folder)):
            stem = path.parent.name if path.name == DECLARATION_FILE else path.stem
            try:
                comp = load(path, source="built-in" if label == "built-in" else str(path))
            except KitError as error:
                for key in (stem, *_declared_names(path)):
                    broken[key] = error
                _note(f"skipped {path}: {error}")
                continue
            if comp.name in found:
                earlier = found[comp.name].source
                kind = f" ({earlier})" if earlier != str(files[comp.name]) else ""
                _note(f"{path} declares {comp.name}, overriding {files[comp.name]}{kind}")
            found[comp.name], files[comp.name] = comp, path
            broken.pop(stem, None)
    return _Found(found, broken)


def _declared_names(path: Path) -> list[str]:
    """The name, slug and aliases a declaration that does not load states, so that asking for it by any of them
    (not only by its file name) gives the reason it does not load."""
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    names = [tree.get("name"), tree.get("slug"), *(tree.get("aliases") or [])]
    return [name for name in names if isinstance(name, str)]


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def _normalise(text: str) -> str:
    text = text.strip()
    match = re.search(r"kaggle\.com/(?:c|competitions)/([^/?#\s]+)", text)
    if match:
        text = match.group(1)
    return text.lower().replace("_", "-").strip("/")


def resolve(name: str) -> Competition:
    """Find a competition by short name, slug, alias or pasted URL; a near miss gets "did you mean"."""
    wanted = _normalise(name)
    names = {}
    for comp in all_competitions().values():
        for key in (comp.name, comp.slug, *comp.aliases):
            names[_normalise(key)] = comp
    if wanted in names:
        return names[wanted]
    broken = {_normalise(stem): error for stem, error in broken_declarations().items()}
    if wanted in broken:
        raise broken[wanted]
    hint = did_you_mean(wanted, names)
    known = ", ".join(sorted(all_competitions()))
    raise KitError(f"unknown competition '{name}'{hint}: known competitions are {known}")


LISTING_COLUMNS = ("name", "slug", "source", "metric", "layout", "recipes")


def listing() -> list[dict[str, str]]:
    """One row per declaration for `kaggle-kit competitions`: where it came from, what it is scored by (with the
    direction), how its data is laid out (labels, submission, ids) and its recipes (the default first)."""
    rows = []
    for comp in sorted(all_competitions().values(), key=lambda c: c.name):
        arrow = "higher" if comp.metric.higher_is_better else "lower"
        others = [name for name in comp.recipes if name != comp.default_recipe]
        rows.append(
            {
                "name": comp.name,
                "slug": comp.slug,
                "source": comp.source,
                "metric": f"{comp.metric.key} ({arrow} is better)",
                "layout": f"labels {comp.label_source}, submit {comp.submission_kind}, ids {comp.id_kind}",
                "recipes": ", ".join([f"{comp.default_recipe} (default)", *others]),
            }
        )
    return rows
