"""`kaggle-kit package`: a trained run (or fold group) as a Kaggle dataset folder and an offline notebook folder.

    OUT/package.json            what was packaged: competition, run, dataset and notebook ids, files' hashes
    OUT/dataset/                 uploaded as a Kaggle dataset (flat: the client skips sub-folders)
        dataset-metadata.json    title, id owner/<slug>-data, CC0 licence
        weights.safetensors      the checkpoint's model weights (plain tensors: nothing executable)
        config.json, split.json  the run's settings, calibration (TTA choice, temperatures) and split
        tabular.json             the run's tabular encoding, where the competition declares features
        kaggle_kit-*.whl         kaggle-kit itself, built from the installed source with no index
        albumentations-*.whl ... the pure-python dependencies Kaggle's image may carry in another version
    OUT/notebook/
        kernel-metadata.json     internet off, the dataset and the competition as sources, GPU when the recipe wants it
        predict.py               the notebook script (`notebook.script`)

A fold group (`train --folds K`, `group_package`) ships every fold the same way with a `fold-I.` prefix on its
files (fold-1.weights.safetensors, fold-1.config.json, ...) beside the group's folds.json, cv.json and
oof_predictions.npz (its OOF temperature, or cv.json's fitted thresholds / cut points); the notebook rebuilds the
group folder and predicts it as `kaggle-kit predict GROUP` does.

Why these dependency wheels: kaggle-kit pins albumentations 2.0.8 (its transforms' defaults changed between
releases, and predict must crop and normalise as training did), and albumentations pins albucore; both are
pure-python wheels. Everything else predict imports (torch, timm, numpy, pandas, opencv, py7zr) is on Kaggle's
image. They are fetched with `pip download` at package time (pip's cache serves them offline), never at notebook
run time; `--no-deps-wheels` leaves them out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..competitions.registry import Competition, resolve
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.ensemble_record import is_ensemble
from ..records.group_folder import is_group
from ..records.run_config import CONFIG, RunConfig
from ..records.run_folder import RunDir
from ..submissions.provenance import file_sha256
from .ensemble_package import checked_ensemble
from .group_package import Source, checked_group

DEPENDENCY_WHEELS = ("albumentations", "albucore")
DECLARATION = "competition.toml"  # a competition declared by `init`, which the notebook puts where kaggle-kit looks
DATASET_META, KERNEL_META, MANIFEST = "dataset-metadata.json", "kernel-metadata.json", "package.json"
SCRIPT = "predict.py"
WEIGHTS = "weights.safetensors"
SOURCE = Path(__file__).resolve().parents[2]  # the tree holding kaggle_kit/ and pyproject.toml


@dataclass
class Package:
    folder: Path
    competition: Competition = field(repr=False)  # its whole declaration would bury the rest in a notebook
    run: str
    dataset_id: str
    notebook_id: str
    files: dict[str, str] = field(repr=False)  # dataset file name -> sha256
    kind: str = "run"  # or "group": a fold group's every fold


def slug_for(*parts: str, limit: int = 50) -> str:
    """Kaggle's slug rules: lower-case letters, digits and dashes, 6 to 50 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    return (slug[:limit].rstrip("-") or "kaggle-kit-run").ljust(6, "0")


def package(
    run_dir: Path | str,
    out: Path | str | None = None,
    owner: str | None = None,
    dependency_wheels: bool = True,
    engine: str = "torch",
) -> Package:
    """Write the dataset and notebook folders for `run_dir` (a run folder or a fold group) into `out` (default
    packages/<competition>/<run>). `engine` "onnx": the dataset also holds the checked ONNX export and the
    onnxruntime wheel, and the notebook predicts through ONNX Runtime."""
    if engine not in ("torch", "onnx"):
        raise KitError(f"package --engine {engine}: use torch or onnx")
    source = _checked_source(Path(run_dir), engine)
    comp = resolve(source.config.competition)
    owner = owner or _kaggle_username()
    folder = Path(out) if out else Path("packages") / comp.name / source.name
    base = slug_for("kk", comp.name, source.name, limit=44)
    dataset_id, notebook_id = f"{owner}/{base}-data", f"{owner}/{base}"
    staging = Path(tempfile.mkdtemp(prefix=".package-", dir=_parent(folder)))
    try:
        files = _write_dataset(staging / "dataset", source, dataset_id, dependency_wheels, engine)
        _write_notebook(staging / "notebook", comp, source, dataset_id, notebook_id, engine)
        manifest = {
            "competition": comp.name,
            "run": source.name,
            "run_dir": str(source.path.resolve()),
            "kind": source.kind,
            "folds": source.folds,
            "dataset": dataset_id,
            "notebook": notebook_id,
            "engine": engine,
            "files": files,
        }
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=2))
        _replace(folder, staging)  # nothing half-written under OUT: the whole folder appears at once
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Package(folder, comp, source.name, dataset_id, notebook_id, files, source.kind)


def _checked_source(path: Path, engine: str) -> Source:
    if is_ensemble(path):
        return checked_ensemble(path, engine)
    return checked_group(path, engine) if is_group(path) else _checked_run(RunDir(path), engine)


def _checked_run(run: RunDir, engine: str) -> Source:
    config = _checked_config(run)
    if engine == "onnx" and run.file("tabular.json").is_file():  # the export feeds images alone (engines.py)
        raise KitError(
            f"package --engine onnx: {run.path}'s model reads tabular columns beside the images, which its ONNX "
            "export does not take: package it with --engine torch"
        )
    return Source(run.path, run.name, "run", config, [(run, "")], [])


def _parent(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder.parent


def read_package(folder: Path | str) -> dict:
    """package.json of a folder `package` wrote, checked for what push and rehearse need."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        raise KitError(
            f"{folder / MANIFEST} is missing or unreadable: pass a folder written by `kaggle-kit package`"
        ) from None
    missing = [k for k in ("competition", "run", "dataset", "notebook", "files") if k not in manifest]
    if missing or not (folder / "dataset").is_dir() or not (folder / "notebook" / KERNEL_META).is_file():
        raise KitError(
            f"{folder} is not a complete kaggle-kit package ({', '.join(missing) or 'folders missing'}): "
            "run `kaggle-kit package RUN --out " + str(folder) + "` again"
        )
    return manifest


def _replace(folder: Path, staging: Path) -> None:
    if folder.exists() and not (folder / MANIFEST).is_file():
        raise KitError(f"--out {folder} exists and is not a kaggle-kit package: choose a new folder")
    if folder.exists():
        shutil.rmtree(folder)
    staging.chmod(0o755)  # mkdtemp makes it private; the package is an ordinary folder
    staging.rename(folder)


def _checked_config(run: RunDir) -> RunConfig:
    if not (run.path / CONFIG).is_file():
        raise KitError(f"{run.path} is not a run folder (no {CONFIG}): pass a folder made by `kaggle-kit train`")
    config = run.read_config()
    if not run.has_checkpoint("best"):
        raise KitError(f"{run.file('best.pt')} not found: package a finished run, or train it to the end first")
    return config


def _kaggle_username() -> str:
    from .api.credentials import credential_source

    username = credential_source().username
    if not username:
        raise KitError(
            "the Kaggle user name is unknown (it names the dataset and notebook): pass --owner USER, "
            "or set KAGGLE_USERNAME"
        )
    return username


def _write_dataset(folder: Path, source: Source, dataset_id: str, dependency_wheels: bool, engine: str) -> dict:
    folder.mkdir(parents=True)
    comp = resolve(source.config.competition)
    if comp.source != "built-in":  # `init` declared it: Kaggle's kaggle-kit must read it too
        shutil.copy2(comp.source, folder / DECLARATION)
    for run, prefix in source.members:
        _write_member(folder, run, prefix, engine)
    for path in source.extra_files:
        shutil.copy2(path, folder / path.name)
    for name, path in source.named_files.items():
        shutil.copy2(path, folder / name)
    for name, text in source.written.items():
        atomic_write_text(folder / name, text)
    _build_wheel(folder)
    if dependency_wheels:
        _download_dependency_wheels(folder)
    metadata = {"title": dataset_id.split("/")[1], "id": dataset_id, "licenses": [{"name": "CC0-1.0"}]}
    atomic_write_text(folder / DATASET_META, json.dumps(metadata, indent=2))
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.name != DATASET_META}


def _write_member(folder: Path, run: RunDir, prefix: str, engine: str) -> None:
    """One run's weights, settings and post-hoc fits, each file named `prefix` + its name in the run folder."""
    from ..inference.calibration import calibrate_run, current_calibration
    from ..inference.loading import load_run

    loaded = load_run(run.path, "best", device="cpu")
    if loaded.competition.target != "label":  # label sets, values, grades: views and fit in config's target_fit
        _fit_target(run)
    elif current_calibration(loaded) is None:  # the notebook must not need the training data to calibrate
        calibrate_run(run.path, device="cpu")
    _write_weights(folder / (prefix + WEIGHTS), run)
    # config.json after the fits above, which it records; tabular.json: the encoding predict applies to test.csv
    for name in ("config.json", "split.json", "tabular.json"):
        if run.file(name).is_file():
            shutil.copy2(run.file(name), folder / (prefix + name))
    if engine == "onnx":
        _write_onnx(folder, loaded)


def _fit_target(run: RunDir) -> None:
    from ..inference.target_predict import fit_target_run

    if not run.config().get("target_fit"):
        fit_target_run(run.path, device="cpu")


def _write_onnx(folder: Path, loaded) -> None:
    """The run's checked ONNX export (named as the run folder caches it, so the notebook never exports) and the
    onnxruntime wheel: a notebook without its engine's wheel would fail offline, hours into a Kaggle queue."""
    from ..inference.engines import INSTALL_HINT, export_onnx

    path = export_onnx(loaded)
    shutil.copy2(path, folder / path.name)
    try:
        pin = f"onnxruntime=={version('onnxruntime')}"
    except PackageNotFoundError:
        raise KitError(
            f"package --engine onnx ships onnxruntime's wheel, and it is not installed here: {INSTALL_HINT}"
        ) from None
    _pip(
        ["download", "--no-deps", "--only-binary=:all:", "-d", str(folder), pin],
        f"fetching the wheel of {pin} for --engine onnx (needs pip's cache or the package index)",
    )
    if not any(folder.glob("onnxruntime-*.whl")):
        raise KitError(f"pip left no onnxruntime wheel in {folder}: --engine onnx cannot run offline without it")


def _write_weights(path: Path, run: RunDir) -> None:
    from safetensors.torch import save_file

    state = run.load_checkpoint("best")
    tensors = {name: tensor.detach().contiguous().clone() for name, tensor in state["model"].items()}
    epoch = state.get("epoch")
    save_file(tensors, str(path), metadata={"epoch": "" if epoch is None else str(int(epoch))})


def _build_wheel(folder: Path) -> None:
    """kaggle-kit's own wheel from a copy of its source (the build leaves nothing in the working tree)."""
    with tempfile.TemporaryDirectory(prefix="kaggle-kit-wheel-") as scratch:
        tree = Path(scratch) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in ("kaggle_kit", "competitions"):
            shutil.copytree(SOURCE / name, tree / name, ignore=ignore)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(SOURCE / name, tree / name)
        _pip(
            ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(folder), str(tree)],
            "building kaggle-kit's wheel",
        )


def _download_dependency_wheels(folder: Path) -> None:
    pins = []
    for name in DEPENDENCY_WHEELS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            raise KitError(
                f"{name} is not installed here, so its wheel cannot be packaged: pip install {name}, "
                "or pass --no-deps-wheels"
            ) from None
    _pip(
        ["download", "--no-deps", "--only-binary=:all:", "-d", str(folder), *pins],
        f"fetching the wheels of {', '.join(pins)} (needs pip's cache or the package index; or pass --no-deps-wheels)",
    )


def _pip(args: list[str], what: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise KitError(f"pip failed {what}: {said[-1][:200] if said else f'exit code {done.returncode}'}")


def _write_notebook(
    folder: Path, comp: Competition, source: Source, dataset_id: str, notebook_id: str, engine: str
) -> None:
    from .notebook import script

    folder.mkdir(parents=True)
    device = str(source.config.recipe.device or "auto")
    metadata = {
        "id": notebook_id,
        "title": notebook_id.split("/")[1],
        "code_file": SCRIPT,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": device != "cpu",
        "enable_internet": False,
        "dataset_sources": [dataset_id],
        "competition_sources": [comp.slug],
        "kernel_sources": [],
        "model_sources": [],
    }
    atomic_write_text(folder / KERNEL_META, json.dumps(metadata, indent=2))
    group_files = [path.name for path in source.extra_files]
    text = script(comp, dataset_id.split("/")[1], source.name, engine, source.folds, group_files, source.ensemble)
    atomic_write_text(folder / SCRIPT, text)
