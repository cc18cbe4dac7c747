"""What `kk.train` returns: a `Run` (one run folder) or a `FoldGroup` (the K runs of `folds=K`), and `Submission`,
what `predict` returns. Each reads its folder when asked, so an object made from an old folder is as good as one
fresh from training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Submission:
    """A written, validated submission: the CSV as a DataFrame, its path, and what wrote it (PredictResult or
    GroupPrediction, with rows, temperature, warnings)."""

    frame: Any  # pandas.DataFrame
    path: Path
    details: Any

    def __iter__(self):
        """`frame, path = run.predict()`: the DataFrame and its path, as a pair."""
        return iter((self.frame, self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Submission({str(self.path)!r}, rows={len(self.frame)})"


class Run:
    """A run folder made by `train`: `Run("runs/cifar10/...")` opens one by its path."""

    def __init__(self, path: Path | str):
        from ..records.run_folder import RunDir

        self.folder = Path(path)
        if not (self.folder / "config.json").is_file():
            from ..core.errors import KitError

            raise KitError(f"{self.folder} is not a run folder (no config.json): give a folder made by train")
        self._run = RunDir(self.folder)

    @property
    def name(self) -> str:
        return self._run.name

    @property
    def config(self) -> dict[str, Any]:
        """config.json as stored: the resolved recipe, the data's fingerprint, calibration, versions."""
        return self._run.config()

    @property
    def recipe(self):
        return self._run.read_config().recipe

    @property
    def competition(self):
        from ..competitions.registry import resolve

        return resolve(self._run.read_config().competition)

    @property
    def history(self):
        """history.csv as a DataFrame: one row per finished epoch (counted from 1), losses, metric, seconds."""
        return self._run.history()

    @property
    def best_score(self) -> float | None:
        """The best epoch's validation figure by the competition's metric (None without a validation split)."""
        history = self.history
        if "val_metric" not in history or not len(history):
            return None
        return self.competition.metric.best(history["val_metric"].tolist())

    @property
    def calibration(self) -> dict[str, Any] | None:
        """What `predict` applies to best.pt: the TTA choice and temperature measured after training."""
        return self._run.read_config().calibration_of("best")

    def predict(self, quiet: bool = False, **options: Any) -> Submission:
        """`kk.predict(run, ...)`: the submission DataFrame and its path. `quiet`: no progress lines."""
        from .console import progress_shown

        with progress_shown(quiet):
            return write_submission(self.folder, **options)

    def __fspath__(self) -> str:
        return str(self.folder)

    @property
    def best_interval(self):
        """The best epoch's validation figure with its 95% bootstrap interval and n (None: no validation split, or a
        run made before intervals were)."""
        from ..records.run_folder import best_row_interval

        return best_row_interval(self.history, self.competition.metric)

    def __repr__(self) -> str:
        score, interval = self.best_score, self.best_interval
        figure = interval if interval is not None else (None if score is None else f"{score:.4f}")
        shown = "" if figure is None else f", best {self.competition.metric.label} {figure}"
        return f"Run({str(self.folder)!r}{shown})"


class FoldGroup:
    """A fold group made by `train(folds=K)`: its folds are `Run`s, its figure the out-of-fold CV score."""

    def __init__(self, path: Path | str):
        from ..core.errors import KitError
        from ..records.group_folder import FoldGroup as GroupFolder
        from ..records.group_folder import is_group

        self.folder = Path(path)
        if not is_group(self.folder):
            raise KitError(f"{self.folder} is not a fold group (no folds.json): give a folder made by train(folds=K)")
        self._group = GroupFolder(self.folder)

    @property
    def k(self) -> int:
        return self._group.k

    @property
    def folds(self) -> list[Run]:
        """The folds that have started (a config.json), in order."""
        paths = (self._group.fold_dir(f) for f in range(1, self.k + 1))
        return [Run(path) for path in paths if (path / "config.json").is_file()]

    @property
    def cv(self) -> dict[str, Any] | None:
        """The CV summary (OOF score, per-fold figures); None until every fold has finished."""
        return self._group.cv()

    @property
    def best_score(self) -> float | None:
        cv = self.cv
        return None if cv is None else cv.get("oof_metric")

    def predict(self, quiet: bool = False, **options: Any) -> Submission:
        """`kk.predict(group, ...)`: the folds' averaged submission, its DataFrame and path. `quiet`: no progress
        lines."""
        from .console import progress_shown

        with progress_shown(quiet):
            return write_submission(self.folder, **options)

    def __fspath__(self) -> str:
        return str(self.folder)

    @property
    def best_interval(self):
        """The OOF figure with its 95% bootstrap interval and n (every training image; None until every fold has
        finished)."""
        from ..competitions.bootstrap import Interval

        cv = self.cv or {}
        return Interval.from_dict(cv.get("oof_interval") or (cv.get("oof_fit") or {}).get("interval"))

    def __repr__(self) -> str:
        interval = self.best_interval
        shown = "" if interval is None else f", OOF {interval}"
        return f"FoldGroup({str(self.folder)!r}, k={self.k}{shown})"


def open_result(path: Path | str | Run | FoldGroup) -> Run | FoldGroup:
    """A run folder or fold group, by its path (or as given)."""
    from ..records.group_folder import is_group

    if isinstance(path, (Run, FoldGroup)):
        return path
    return FoldGroup(path) if is_group(path) else Run(path)


def write_submission(
    path: Path,
    data_dir: Path | str | None = None,
    checkpoint: str = "best",
    tta: bool | None = None,
    out: Path | str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    engine: str = "torch",
    precision: str | None = None,
    devices: str | list[str] | None = None,
) -> Submission:
    """`predict` of a run folder or fold group (what `kk.predict`, `Run.predict` and `kaggle-kit predict` call);
    `engine` torch, onnx or auto and `precision` as docs/inference.md says."""
    import pandas as pd

    from ..core.errors import KitError
    from ..records.ensemble_record import is_ensemble
    from ..records.group_folder import is_group

    if is_ensemble(path):  # the CSV `ensemble` wrote (or its record): every member predicted again and blended
        result = _predict_ensemble(Path(path), data_dir, checkpoint, tta, out, device, engine, devices)
    elif is_group(path):
        from ..workflows.cross_validation import predict_group

        if checkpoint != "best" or tta is not None:
            raise KitError(
                f"{path} is a fold group: each fold submits its best.pt with its own TTA choice; drop "
                f"--checkpoint and --tta"
            )
        if devices is not None:
            raise KitError(f"{path} is a fold group: --devices splits one run's prediction; drop it or predict a fold")
        result = predict_group(path, data_dir, out, device=device, batch_size=batch_size, engine=engine)
    else:
        from ..inference.predict import predict_run

        result = predict_run(
            path,
            data_dir,
            checkpoint,
            tta,
            out,
            device=device,
            batch_size=batch_size,
            engine=engine,
            precision=precision,
            devices=devices,
        )
    return Submission(pd.read_csv(result.path), Path(result.path), result)


def _predict_ensemble(path: Path, data_dir, checkpoint, tta, out, device, engine, devices):
    from ..core.errors import KitError
    from ..workflows.ensemble_predict import predict_ensemble

    if checkpoint != "best" or tta is not None or engine != "torch" or devices is not None:
        raise KitError(
            f"{path} is an ensemble: each member predicts with its best.pt, TTA choice and torch, as `ensemble` "
            "did; drop --checkpoint, --tta, --engine and --devices"
        )
    csv = path.with_suffix("") if path.suffix.lower() == ".json" else path  # blend.csv.ensemble.json -> blend.csv
    default = csv.with_name(csv.name.removesuffix(".ensemble").removesuffix(".csv") + ".predicted.csv")
    return predict_ensemble(path, Path(out) if out else default, data_dir, device=device)
