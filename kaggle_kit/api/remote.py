"""`kk.download`, `kk.submit`, `kk.package`, `kk.push`: Kaggle through its official client, as the commands of
the same names; each returns the library's result object (what the command prints from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import KitError


def download(competition: str, data_dir: Path | str | None = None, force: bool = False):
    """Download the competition's data bundle once, verify it and unpack it: a DownloadResult."""
    from ..kaggle.api import download as fetch

    return fetch(competition, data_dir, force=force)


def submit(
    file: Path | str | Any,
    competition: str | None = None,
    message: str | None = None,
    wait: bool = True,
    timeout: float = 1800.0,
    data_dir: Path | str | None = None,
    run: Path | str | None = None,
):
    """Check a submission, upload it, wait for the score (`wait`) and record it in the ledger."""
    from ..kaggle.api import submit as send

    path = Path(getattr(file, "path", file))
    run_dir = Path(getattr(run, "folder", run)) if run is not None else None
    return send(path, competition, message, wait=wait, timeout=timeout, data_dir=data_dir, run_dir=run_dir)


def one_run(paths: list[Path | str]) -> Path:
    """The single run folder among `paths` (run folders, or group folders holding one): what `package` takes
    besides a fold group."""
    paths = [Path(getattr(p, "folder", p)) for p in paths]
    found = [p for p in paths if (p / "config.json").is_file()]
    for group in (p for p in paths if not (p / "config.json").is_file()):
        found += sorted(c.parent for c in Path(group).glob("*/config.json"))
    if len(found) != 1:
        raise KitError(
            f"{' '.join(map(str, paths))}: {len(found)} run folders found; package takes exactly one run "
            "(a folder with config.json, or a group folder holding one) or one fold group (with folds.json)"
        )
    return found[0]


def package(
    run: Path | str | Any,
    out: Path | str | None = None,
    owner: str | None = None,
    deps_wheels: bool = True,
    rehearse: bool = False,
    data_dir: Path | str | None = None,
    engine: str = "torch",
):
    """A run or a fold group as a Kaggle dataset and an offline notebook (a code competition's submission): the
    Package, and with `rehearse` the Rehearsal of the notebook run here offline, compared with `predict` of the
    same run or group (None without). `engine` "onnx": the notebook predicts through ONNX Runtime
    (docs/inference.md)."""
    from ..kaggle.package import package as make
    from ..kaggle.rehearse import rehearse as run_rehearsal
    from ..records.ensemble_record import is_ensemble
    from ..records.group_folder import is_group
    from ..workflows.ensemble_predict import predict_ensemble
    from .results import write_submission

    runs = run if isinstance(run, (list, tuple)) else [run]
    single = Path(getattr(runs[0], "folder", runs[0]))
    whole = len(runs) == 1 and (is_group(single) or is_ensemble(single))
    made = make(single if whole else one_run(runs), out, owner, dependency_wheels=deps_wheels, engine=engine)
    if not rehearse:
        return made, None

    def predicted(folder: Path, data: Path | None, csv: Path) -> Path:  # what `kaggle-kit predict` writes
        if made.kind == "ensemble":
            return predict_ensemble(folder, csv, data, device="cpu").path
        return write_submission(folder, data, out=csv, device="cpu").path

    return made, run_rehearsal(made.folder, data_dir, expected=predicted)


def runtime_estimate(
    run: Path | str | Any,
    data_dir: Path | str | None = None,
    test_images: int | None = None,
    engine: str = "torch",
    device: str = "auto",
    devices: str | list[str] | None = None,
    batch_size: int | None = None,
):
    """How long predicting the hidden test set takes: the run's exact inference measured here, split across the
    devices predict would use (default: every visible GPU), against the competition's time limit
    (`RuntimeEstimate.lines()` says it, with a warning within 2x of the limit)."""
    from ..inference.estimate import estimate_runtime
    from ..records.ensemble_record import is_ensemble, read_ensemble_record
    from ..records.group_folder import is_group

    runs = run if isinstance(run, (list, tuple)) else [run]
    folder = Path(getattr(runs[0], "folder", runs[0]))
    if len(runs) == 1 and is_ensemble(folder):  # every member, every fold of a member group, predicts it
        members = [fold for m in read_ensemble_record(folder).members for fold in _runs_of(m.folder)]
    elif len(runs) == 1 and is_group(folder):  # every fold predicts the hidden test set
        members = _runs_of(folder)
    else:
        members = [one_run(runs)]
    return estimate_runtime(
        members, data_dir, test_images=test_images, engine=engine, device=device, devices=devices, batch_size=batch_size
    )


def _runs_of(folder: Path) -> list[Path]:
    """A fold group's fold folders, or the run folder itself."""
    from ..records.group_folder import FoldGroup, is_group

    if not is_group(folder):
        return [folder]
    group = FoldGroup(folder)
    return [group.fold_dir(fold) for fold in range(1, group.k + 1)]


def push(folder: Path | str, message: str | None = None, timeout: float = 9 * 3600.0, score_timeout: float = 1800.0):
    """Upload a packaged run's dataset, run its notebook on Kaggle, submit its output and wait for the score."""
    from ..kaggle.api.push import push as send

    return send(Path(getattr(folder, "folder", folder)), message, notebook_timeout=timeout, score_timeout=score_timeout)
