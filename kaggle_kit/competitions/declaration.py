"""A competition as data: the `Competition` dataclass, read from and written to its TOML declaration.

Every competition-specific fact is one field of `Competition`; shared code reads the facts and never asks which
competition it is running. A declaration is one TOML file (the built-ins: competitions/<name>/competition.toml,
plans beside it in plans/). Each field has exactly one TOML key, placed by `PLACES`, so a new field is one line
there; `load` checks every key and value against the field's type and says what is wrong in one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from ..config.recipe import AugmentSpec, Recipe, apply_overrides
from ..core.errors import KitError
from .metrics import METRICS, Metric, are_grades
from .target_metrics import target_metric_by_name

MeanStd = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class Competition:
    name: str  # short name, also the folder under competitions/
    slug: str  # Kaggle's slug
    title: str
    aliases: tuple[str, ...]
    label_file: str  # e.g. trainLabels.csv
    label_column: str  # e.g. label / breed
    sample_file: str  # e.g. sampleSubmission.csv
    # int ids sort numerically; hex ids are file stems; text: any string, in the sample's order
    id_kind: Literal["int", "hex", "text"]
    image_ext: str  # ".png" / ".jpg"
    metric: Metric
    # one label string, one column per class, or one probability column for `positive_class`
    submission_kind: Literal["label", "probabilities", "binary"]
    # labels: the classes found in the training labels (numeric names sort numerically)
    class_source: Literal["declared", "sample_columns", "labels"]
    recipes: dict[str, Recipe]
    default_recipe: str
    augmentations: dict[str, AugmentSpec]
    # the class names; for class_source "sample_columns" only for generating samples and checks,
    # since real runs read the classes from the sample submission itself
    declared_classes: tuple[str, ...] = ()
    images_packed: bool = False  # the current download packs each image folder in an inner archive
    id_column: str = "id"
    train_dir: str = "train"
    test_dir: str = "test"
    # the CSV listing the test images by id_column where the sample does not (a code competition's few rows)
    test_file: str = ""
    # archives that may stand in for a folder or file inside the download: name -> what it holds
    nested_archives: dict[str, str] = field(default_factory=dict)
    native_size: int | None = None  # fixed image size (CIFAR: 32); None for photos of any size
    # per-channel (mean, std) of the competition's images, for recipes that normalise by the data
    # (`normalize="dataset"`, e.g. a model trained from scratch as the study's CIFAR-10 runs were)
    dataset_mean_std: MeanStd | None = None
    # what a fine-tuning recipe (pretrained=True) changes when run without pretrained weights: name -> settings
    from_scratch: dict[str, dict[str, Any]] = field(default_factory=dict)
    package_dir: Path | None = None  # the declaration's own folder (plans/ lives there); None for a lone <name>.toml
    # Kaggle takes a notebook (rerun offline on the hidden test set) instead of a CSV; `push` also asks Kaggle's
    # competition listing (isKernelsSubmissionsOnly), so an undeclared code competition is still recognised
    code_competition: bool = False
    # csv: a CSV keyed by id; folders: one folder per class; filename: the label is the file-name prefix (cat.1.jpg);
    # onehot: a CSV keyed by id with one 0/1 column per class, exactly one 1 a row (Plant Pathology 2020)
    label_source: Literal["csv", "folders", "filename", "onehot"] = "csv"
    id_has_extension: bool = False  # ids in the CSVs carry the extension
    positive_class: str | None = None  # which class a "binary" submission reports
    # the column naming each image's group (a driver, a patient): validation never shares a group with training
    group_column: str | None = None
    group_file: str = ""  # the CSV holding group_column when it is not the labels CSV (State Farm's driver list)
    # what each image is asked for (competitions/targets.py): one label (today's path), a label set, a value, a grade
    target: Literal["label", "multilabel", "regression", "ordinal", "topk"] = "label"
    value_range: tuple[float, float] | None = None  # a regression target's declared range, clipped to at predict
    top_k: int = 5  # a top-k target: the classes ranked per image (MAP@k)
    new_class: str | None = None  # a top-k target's class for images of no training class (new_whale)
    # tabular columns beside the images (data/tabular.py): read from the labels CSV for training and from
    # `test_table` at predict time, fed to the model's tabular branch (models/tabular.py)
    features: tuple[str, ...] = ()
    test_table: str = "test.csv"
    # code competitions: the hidden test set's size and the notebook's time limit (Code Requirements page), for
    # `package`'s runtime estimate; None: the local test set's size, and Kaggle's usual 9 h
    hidden_test_images: int | None = None
    time_limit_hours: float | None = None
    source: str = "built-in"  # where the declaration was found: built-in, or the file's path

    @property
    def labels_in_csv(self) -> bool:
        """The training labels are rows of a CSV keyed by id (a label column or one-hot class columns)."""
        return self.label_source in ("csv", "onehot")

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/competitions/{self.slug}"

    @property
    def rules_url(self) -> str:
        return f"{self.url}/rules"

    @property
    def archive_name(self) -> str:
        return f"{self.slug}.zip"

    @property
    def plans_dir(self) -> Path | None:
        return self.package_dir / "plans" if self.package_dir else None

    def recipe(self, name: str | None = None) -> Recipe:
        name = name or self.default_recipe
        if name not in self.recipes:
            raise KitError(
                f"unknown recipe '{name}' for {self.name}{did_you_mean(name, self.recipes)}: "
                f"choose one of {', '.join(self.recipes)}"
            )
        return self.recipes[name]

    def augmentation(self, name: str) -> AugmentSpec:
        if name not in self.augmentations:
            # init declares none and modern only: say where another (README's `policy`) would be declared
            declare = "" if self.source == "built-in" else f", or declare [augmentations.{name}] in {self.source}"
            raise KitError(
                f"unknown augmentation '{name}' for {self.name}{did_you_mean(name, self.augmentations)}: "
                f"choose one of {', '.join(self.augmentations)}{declare}"
            )
        return self.augmentations[name]

    def metric_misfit(self, metric: Metric, classes=None) -> str | None:
        """Why `metric` cannot score this competition's submissions (None: it can). `classes`: the class names, when
        known beyond the declared ones. An ordinal metric (QWK) needs ordered grades: integer class names, or a
        declaration that scores by it and lists its classes itself (class_source "declared": its author wrote the
        order down)."""
        if metric.uses_temperature and self.submission_kind == "label":
            # one-hot rows clipped at 1e-15 give ~34.5 per wrong label: a number, but of no submission Kaggle scores
            return f"{metric.label} scores probabilities, but {self.name} submissions hold one label per row"
        names = list(classes if classes is not None else self.declared_classes)
        ordered = are_grades(names) or (self.metric.ordinal and self.class_source == "declared")
        if metric.ordinal and names and not ordered:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            return f"{metric.label} scores ordered grades, but the classes of {self.name} are names ({shown})"
        return None

    def fitting_metrics(self, classes=None) -> list[str]:
        """The `--metric` names that can score this competition's submissions."""
        return [m.key for m in METRICS.values() if self.metric_misfit(m, classes) is None]


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


# field -> its TOML key, "section.key" ("key" alone is the top level). A table-valued field (recipes,
# augmentations, from_scratch, normalize, nested_archives) is one key holding the whole table.
PLACES = {
    "name": "name",
    "slug": "slug",
    "title": "title",
    "aliases": "aliases",
    "metric": "metric",
    "target": "target",
    "default_recipe": "default_recipe",
    "native_size": "native_size",
    "code_competition": "code_competition",
    "hidden_test_images": "runtime.hidden_test_images",
    "time_limit_hours": "runtime.time_limit_hours",
    "train_dir": "files.train_dir",
    "test_dir": "files.test_dir",
    "image_ext": "files.image_ext",
    "label_file": "files.label_file",
    "sample_file": "files.sample_file",
    "test_file": "files.test_file",
    "images_packed": "files.images_packed",
    "nested_archives": "files.nested_archives",
    "label_source": "labels.source",
    "id_column": "labels.id_column",
    "label_column": "labels.label_column",
    "id_kind": "labels.id_kind",
    "id_has_extension": "labels.id_has_extension",
    "class_source": "labels.class_source",
    "declared_classes": "labels.classes",
    "group_column": "labels.group_column",
    "group_file": "labels.group_file",
    "value_range": "labels.value_range",
    "new_class": "labels.new_class",
    "features": "features",
    "test_table": "files.test_table",
    "top_k": "submission.k",
    "submission_kind": "submission.kind",
    "positive_class": "submission.positive_class",
    "dataset_mean_std": "normalize",
    "augmentations": "augmentations",
    "recipes": "recipes",
    "from_scratch": "from_scratch",
}
# fields that say where the file was found, never written in it
LOCATED = ("package_dir", "source")
DECLARATION_FILE = "competition.toml"


# ------------------------------------------------------------------------------------------------ reading


def load(path: Path | str, source: str | None = None) -> Competition:
    """The declaration at `path`; a `<name>/competition.toml` keeps its folder as `package_dir` (its plans/)."""
    path = Path(path)
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise KitError(f"{path}: not valid TOML ({error}): fix the file's syntax") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KitError(f"{path}: cannot be read ({error})") from None
    package_dir = path.parent if path.name == DECLARATION_FILE else None
    return from_tree(tree, path, package_dir=package_dir, source=source or str(path))


# labels in folders or file names have no labels CSV: a declaration of them need not name one
NO_LABEL_FILE = {"label_file": "", "label_column": "label"}


def from_tree(tree: dict[str, Any], path: Path | str, **located: Any) -> Competition:
    """A Competition from parsed TOML; `path` names the file in errors, `located` fills LOCATED fields. Every
    problem is found before one error names them all (a hand-written file is fixed in one pass, not one per run)."""
    problems: list[str] = []
    _reject_unknown_keys(tree, path, problems)
    hints = get_type_hints(Competition)
    values = {}
    for name, place in PLACES.items():
        value = _lookup(tree, place)
        if value is None:
            continue
        try:
            values[name] = (
                _mean_std(value, path) if name == "dataset_mean_std" else _convert(value, hints[name], path, place)
            )
        except KitError as error:
            problems.append(_without_path(error, path))
    if values.get("label_source") in ("folders", "filename"):
        values = {**NO_LABEL_FILE, **values}
    required = [f.name for f in dataclasses.fields(Competition) if _is_required(f) and f.name not in values]
    if required:
        keys = ", ".join(f"'{PLACES[name]}'" for name in required)
        many = len(required) > 1
        problems.append(f"missing key{'s' if many else ''} {keys}: every declaration gives {'them' if many else 'it'}")
    if not problems:
        comp = Competition(**values, **located)
        try:
            _check_references(comp, path)
        except KitError as error:
            problems.append(_without_path(error, path))
    if len(problems) == 1:
        raise KitError(f"{path}: {problems[0]}")
    if problems:
        raise KitError(f"{path}: {len(problems)} problems: " + "; ".join(problems))
    return comp


def _without_path(error: KitError, path) -> str:
    return str(error).removeprefix(f"{path}: ")


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _lookup(tree: dict[str, Any], place: str) -> Any:
    for part in place.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _reject_unknown_keys(tree: dict[str, Any], path, problems: list[str], prefix: str = "") -> None:
    places = set(PLACES.values())
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if dotted in places:
            continue
        if any(p.startswith(f"{dotted}.") for p in places):
            if not isinstance(value, dict):
                problems.append(_without_path(_bad(path, dotted, value, f"a table ([{dotted}])"), path))
                continue
            _reject_unknown_keys(value, path, problems, f"{dotted}.")
            continue
        hint = did_you_mean(dotted, places)
        here = sorted({p.removeprefix(prefix).split(".")[0] for p in places if p.startswith(prefix)})
        where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
        problems.append(f"unknown key '{dotted}'{hint}: remove it; {where} takes {', '.join(here)}")


def _bad(path, place: str, value: Any, expected: str) -> KitError:
    return KitError(f"{path}: {place} = {value!r} is not {expected}: give {expected}")


def _convert(value: Any, hint: Any, path, place: str) -> Any:
    """`value` as TOML parsed it, checked against the field's type `hint` and turned into it."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        if value not in args:
            raise _bad(path, place, value, f"one of {', '.join(map(str, args))}")
        return value
    if origin in (Union, UnionType):  # X | None: TOML has no null, so None is an absent key
        return _convert(value, next(a for a in args if a is not type(None)), path, place)
    if hint is Metric:
        try:
            return target_metric_by_name(str(value))
        except KitError as error:
            raise KitError(f"{path}: {place}: {error}") from None
    if hint in (Recipe, AugmentSpec):
        return _dataclass(hint, value, path, place)
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise _bad(path, place, value, "a list" if args[-1] is Ellipsis else f"a list of {len(args)} values")
        kinds = [args[0]] * len(value) if args[-1] is Ellipsis else args
        return tuple(_convert(v, k, path, f"{place}[{i}]") for i, (v, k) in enumerate(zip(value, kinds)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad(path, place, value, "a table")
        return {k: _convert(v, args[1], path, f"{place}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise _bad(
            path, place, value, {bool: "true or false", int: "a whole number", float: "a number"}.get(hint, "a string")
        )
    return value


def _dataclass(cls: type, table: Any, path, place: str) -> Any:
    """A Recipe or AugmentSpec from its table: unknown settings name the table; a recipe's name is its table's."""
    if not isinstance(table, dict):
        raise _bad(path, place, table, "a table")
    if cls is Recipe and "name" in table:
        raise KitError(f"{path}: {place}.name: a recipe is named by its table ([{place}]): remove the key")
    try:
        base = Recipe(name=place.rpartition(".")[2]) if cls is Recipe else cls()
        value = apply_overrides(base, table)
        return value.validate() if cls is Recipe else value
    except KitError as error:
        raise KitError(f"{path}: [{place}] {error}") from None


def _mean_std(table: Any, path) -> MeanStd:
    if not isinstance(table, dict) or set(table) != {"mean", "std"}:
        raise KitError(f"{path}: [normalize] holds exactly mean and std: give mean = [r, g, b] and std = [r, g, b]")
    three = tuple[float, float, float]
    return (
        _convert(table["mean"], three, path, "normalize.mean"),
        _convert(table["std"], three, path, "normalize.std"),
    )


def _check_references(comp: Competition, path) -> None:
    """Names that point inside the declaration: the default recipe, each recipe's aug, from_scratch's recipes."""
    if comp.default_recipe not in comp.recipes:
        hint = did_you_mean(comp.default_recipe, comp.recipes)
        choices = ", ".join(comp.recipes) or "none declared"
        raise KitError(
            f"{path}: default_recipe = {comp.default_recipe!r} is not a recipe{hint}: "
            f"name one of [recipes.*] ({choices})"
        )
    for name, recipe in comp.recipes.items():
        _check_aug(comp, path, f"recipes.{name}.aug", recipe.aug)
    for name, settings in comp.from_scratch.items():
        if name not in comp.recipes:
            raise KitError(
                f"{path}: [from_scratch.{name}] is not a recipe{did_you_mean(name, comp.recipes)}: "
                f"name one of {', '.join(comp.recipes)}"
            )
        try:
            changed = apply_overrides(comp.recipes[name], settings)
        except KitError as error:
            raise KitError(f"{path}: [from_scratch.{name}] {error}") from None
        _check_aug(comp, path, f"from_scratch.{name}.aug", changed.aug)
    if comp.target != "label":
        from .targets import target_of

        target_of(comp).check_metric(comp.metric, path)
    if comp.submission_kind == "binary" and comp.positive_class is None:
        raise KitError(f"{path}: submission.kind = 'binary' needs submission.positive_class: name the class reported")


def _check_aug(comp: Competition, path, place: str, aug: str) -> None:
    if aug not in comp.augmentations:
        raise KitError(
            f"{path}: {place} = {aug!r} is no augmentation{did_you_mean(aug, comp.augmentations)}: declare "
            f"[augmentations.{aug}] or use one of {', '.join(comp.augmentations) or 'none declared'}"
        )


# ------------------------------------------------------------------------------------------------ writing
# No library the project already depends on writes TOML (tomllib only reads), and the schema is fixed and small:
# strings, numbers, booleans, lists of those, and tables of them. A few lines write exactly that.


def dump(comp: Competition) -> str:
    """The declaration's TOML text: `load` of it gives `comp` back (LOCATED fields aside). Recipes and
    augmentations list only what differs from the dataclass defaults; absent optional values are left out."""
    tree: dict[str, Any] = {}
    for name, place in PLACES.items():
        value = _plain(getattr(comp, name))
        if name == "dataset_mean_std" and value is not None:
            value = {"mean": value[0], "std": value[1]}
        today = (("target", "label"), ("top_k", 5), ("features", []), ("test_table", "test.csv"), ("test_file", ""))
        if value is None or value == {} or (name, value) in today:  # today's files
            continue
        *sections, key = place.split(".")
        table = tree
        for section in sections:
            table = table.setdefault(section, {})
        table[key] = value
    return _write_table(tree, [])


def _plain(value: Any) -> Any:
    """A field's value as TOML data: a Metric by its key, a dataclass by its settings that differ from default."""
    if isinstance(value, Metric):
        return value.key
    if isinstance(value, (Recipe, AugmentSpec)):
        default = type(value)()
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "name" and getattr(value, f.name) != getattr(default, f.name)
        }
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _write_table(table: dict[str, Any], header: list[str]) -> str:
    scalars = [f"{_key(k)} = {_scalar(v)}" for k, v in table.items() if not isinstance(v, dict)]
    text = ""
    if scalars or not table:
        text = (f"[{'.'.join(map(_key, header))}]\n" if header else "") + "".join(line + "\n" for line in scalars)
    for key, value in table.items():
        if isinstance(value, dict):
            text += ("\n" if text else "") + _write_table(value, [*header, key])
    return text


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # shortest text that reads back as the same float; TOML takes Python's exponent form
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are a subset of TOML basic strings'
    if isinstance(value, list):
        one_line = "[" + ", ".join(_scalar(v) for v in value) + "]"
        return one_line if len(one_line) <= 100 else "[\n" + "".join(f"    {_scalar(v)},\n" for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
