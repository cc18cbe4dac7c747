"""Experiment tracking: a run's recipe, its epochs, its pictures and its Kaggle scores in MLflow or TensorBoard.

    train --track mlflow        the resolved recipe as parameters, every epoch's history row as metrics (step =
                                epoch), the run folder's pictures and analysis as artefacts, and later the Kaggle
                                scores `submit` records for the run; store: $MLFLOW_TRACKING_URI, else the SQLite
                                file <runs root>/mlflow.db (`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`)
    train --track tensorboard   event files in <run>/tensorboard (`tensorboard --logdir runs`)

Every tracker has one interface (start, log_epoch, log_artifacts, log_score, finish), so the trainer calls one
object, itself a training hook (`RunTracking`). `RunTracking` holds a run's trackers, each behind `_Guarded`:
a tracker that fails (a server that is down, a full disk) says so once and is dropped - training goes on.
A run inside an experiment folder is logged under the experiment's name, any other run under its competition's.
The run folder's `tracking.json` says where the run was logged, so a resumed run continues the same MLflow run
and a Kaggle score that arrives days later finds it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.run_config import CONFIG, RunConfig
from ..records.run_folder import HISTORY, display_epoch
from .hooks.base import WRITES, Hook

TRACKERS = ("mlflow", "tensorboard")
TRACKING_FILE = "tracking.json"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
TENSORBOARD_DIR = "tensorboard"
CONNECT_TIMEOUT_S = 5.0  # a tracking server that does not answer within this is treated as down
ARTIFACT_SUFFIXES = (".png", ".md", ".csv", ".json")  # pictures and tables; never checkpoints
PARAM_LIMIT = 6000  # characters MLflow keeps of a parameter's value


class Tracker(Protocol):
    def start(self, params: dict[str, Any]) -> None: ...
    def log_epoch(self, row: dict[str, Any]) -> None: ...
    def log_artifacts(self, folder: Path) -> None: ...
    def log_score(self, name: str, value: float, step: int = 0) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


def check_kinds(kinds: list[str] | None) -> list[str]:
    kinds = list(dict.fromkeys(kinds or []))
    for kind in kinds:
        if kind not in TRACKERS:
            raise KitError(f"--track {kind}: unknown tracker; use --track mlflow or --track tensorboard")
    return kinds


def experiment_name(run_dir: Path, competition: str) -> str:
    """The experiment folder's name for a run of an experiment (`<experiment>/<cell>/seed=<k>`), else the
    competition's: one MLflow experiment per plan, one for a competition's single runs. A `tune` trial
    (`tune-<study>/trial-NNN`, beside study.json) is logged under its study folder's name: one per study."""
    if (Path(run_dir).absolute().parent / "study.json").is_file():
        return Path(run_dir).absolute().parent.name
    folder = Path(run_dir).absolute().parent.parent
    return folder.name if (folder / "experiment.json").is_file() else competition


def default_tracking_uri() -> str:
    from ..records.run_folder import runs_root

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(runs_root() / MLFLOW_DB).resolve()}"


def recipe_params(config: RunConfig) -> dict[str, Any]:
    """What MLflow shows as the run's parameters: the resolved recipe, plus the competition and data path."""
    fields = ("competition", "metric", "data_path", "fingerprint", "git")
    params: dict[str, Any] = {k: getattr(config, k) for k in fields}
    params.update(config.recipe_dict or {})
    params.update({f"augment.{k}": v for k, v in (config.augment or {}).items()})
    return params


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    numbers = {}
    for key, value in row.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if key != "epoch" and number == number:  # NaN (no validation split) is not a point on a curve
            numbers[key] = number
    return numbers


def artifact_files(run_dir: Path) -> list[Path]:
    """The run folder's pictures and tables, and those of its analysis folder."""
    run_dir = Path(run_dir)
    found = [
        p
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.suffix in ARTIFACT_SUFFIXES and p.name != TRACKING_FILE
    ]
    analysis = run_dir / "analysis"
    if analysis.is_dir():
        found += [p for p in sorted(analysis.iterdir()) if p.is_file() and p.suffix in ARTIFACT_SUFFIXES]
    return found


def read_tracking(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / TRACKING_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def _record_tracking(run_dir: Path, kind: str, entry: dict[str, Any]) -> None:
    tracking = read_tracking(run_dir)
    tracking[kind] = entry
    atomic_write_text(Path(run_dir) / TRACKING_FILE, json.dumps(tracking, indent=2, sort_keys=True))


# --------------------------------------------------------------------------------------- MLflow


def _check_reachable(uri: str) -> None:
    """A server that refuses connections or does not answer fails here, in seconds: MLflow's own client would
    retry with back-off for minutes before saying so."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise KitError(f"tracking server {uri} is not reachable ({error.strerror or error})") from None


class MlflowTracker:
    """One MLflow run, through MLflow's client (no global state: experiments may track runs side by side)."""

    def __init__(self, run_dir: Path, experiment: str, uri: str | None = None, run_id: str | None = None, tags=None):
        self.run_dir, self.experiment = Path(run_dir), experiment
        self.tags = dict(tags or {})  # more MLflow tags for a new run (a tune trial's study, trial and params)
        self.uri = uri or default_tracking_uri()
        self.run_id = run_id
        self.client = None

    def _connect(self):
        if self.client is None:
            # a server that dies mid-run must not hold training up for minutes of retries
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
            _check_reachable(self.uri)
            import logging

            from mlflow.tracking import MlflowClient

            logging.getLogger("mlflow").setLevel(logging.WARNING)  # not "Creating initial MLflow database tables"

            if self.uri.startswith("sqlite:///"):
                Path(self.uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            self.client = MlflowClient(tracking_uri=self.uri)
        return self.client

    def _experiment_id(self) -> str:
        client = self._connect()
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        # a local store keeps its artefacts beside the database, not in ./mlruns of wherever training started
        location = None
        if self.uri.startswith("sqlite:///"):
            location = (Path(self.uri[len("sqlite:///") :]).parent / MLFLOW_ARTIFACTS / self.experiment).as_uri()
        return client.create_experiment(self.experiment, artifact_location=location)

    def start(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        client = self._connect()
        known = read_tracking(self.run_dir).get("mlflow", {})
        if known.get("tracking_uri") == self.uri and known.get("run_id"):  # a resumed run continues its MLflow run
            self.run_id = known["run_id"]
            client.update_run(self.run_id, status="RUNNING")
            return
        run = client.create_run(
            self._experiment_id(),
            run_name=_run_name(self.run_dir),
            tags={"run_dir": str(self.run_dir.resolve()), **self.tags},
        )
        self.run_id = run.info.run_id
        _record_tracking(
            self.run_dir, "mlflow", {"tracking_uri": self.uri, "run_id": self.run_id, "experiment": self.experiment}
        )
        items = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in params.items()]
        for first in range(0, len(items), 100):  # MLflow takes at most 100 parameters per call
            client.log_batch(self.run_id, params=items[first : first + 100])

    def log_epoch(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = int(row.get("epoch", 0))
        metrics = [Metric(key, value, now, step) for key, value in _numbers(row).items()]
        self._connect().log_batch(self.run_id, metrics=metrics)

    def log_artifacts(self, folder: Path) -> None:
        client = self._connect()
        for path in artifact_files(folder):
            client.log_artifact(self.run_id, str(path), "analysis" if path.parent.name == "analysis" else None)

    def log_score(self, name: str, value: float, step: int = 0) -> None:
        self._connect().log_metric(self.run_id, name, float(value), step=step)

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self._connect().set_terminated(self.run_id, status)


def _run_name(run_dir: Path) -> str:
    from ..records.run_folder import RunDir

    return RunDir(run_dir).name


# --------------------------------------------------------------------------------------- TensorBoard


class TensorBoardTracker:
    """Event files in <run>/tensorboard: scalars per epoch, the recipe as text, the pictures as images."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.writer = None

    def _writer(self):
        if self.writer is None:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR))
        return self.writer

    def start(self, params: dict[str, Any]) -> None:
        table = "\n".join(["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in params.items())])
        self._writer().add_text("recipe", table, 0)
        _record_tracking(self.run_dir, "tensorboard", {"logdir": TENSORBOARD_DIR})

    def log_epoch(self, row: dict[str, Any]) -> None:
        writer = self._writer()
        for key, value in _numbers(row).items():
            writer.add_scalar(key, value, int(row.get("epoch", 0)))
        writer.flush()

    def log_artifacts(self, folder: Path) -> None:
        import numpy as np
        from PIL import Image

        writer = self._writer()
        for path in artifact_files(folder):
            if path.suffix == ".png":
                with Image.open(path) as image:
                    tag = f"analysis/{path.stem}" if path.parent.name == "analysis" else path.stem
                    writer.add_image(tag, np.asarray(image.convert("RGB")), 0, dataformats="HWC")
        writer.flush()

    def log_score(self, name: str, value: float, step: int = 0) -> None:
        self._writer().add_scalar(name, float(value), step)
        self._writer().flush()

    def finish(self, status: str = "FINISHED") -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# --------------------------------------------------------------------------------------- a run's trackers


class _Guarded:
    """A tracker whose first failure prints one warning and switches it off: tracking never stops training."""

    def __init__(self, kind: str, tracker: Tracker, where: str):
        self.kind, self.tracker, self.where = kind, tracker, where
        self.failed = False

    def call(self, method: str, *args) -> None:
        if self.failed:
            return
        try:
            getattr(self.tracker, method)(*args)
        except Exception as error:  # any failure of a tracking tool: an import, a server, a disk
            self.failed = True
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(
                f"warning: {self.kind} tracking to {self.where} stopped ({reason[:200]}); training goes on without it",
                file=sys.stderr,
                flush=True,
            )


def _tracker(kind: str, run_dir: Path, competition: str, tags: dict[str, str]) -> _Guarded:
    if kind == "mlflow":
        tracker = MlflowTracker(run_dir, experiment_name(run_dir, competition), tags=tags)
        return _Guarded(kind, tracker, tracker.uri)
    return _Guarded(kind, TensorBoardTracker(run_dir), str(Path(run_dir) / TENSORBOARD_DIR))


class RunTracking(Hook):
    """The trackers of one run, given to the trainer: `attach(run_dir)` before training, then a hook that logs
    every epoch's row (`log_epoch`), `finish` when the run's folder is complete (calibrated, analysed). They start
    at the first epoch, when config.json holds the resolved recipe."""

    order = WRITES  # after history.csv is written

    def __init__(
        self,
        kinds: list[str],
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        tags: dict[str, str] | None = None,
    ):
        self.kinds = check_kinds(kinds)
        self.on_epoch = on_epoch  # one more listener, e.g. an experiment's whole-plan progress
        self.tags = dict(tags or {})  # MLflow tags of the run (a tune trial's study, trial and params)
        self.run_dir: Path | None = None
        self.trackers: list[_Guarded] = []

    def attach(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)

    def after_epoch(self, state, outcome) -> None:
        self.log_epoch(outcome.row)

    def _started(self) -> list[_Guarded]:
        if not self.trackers and self.kinds and self.run_dir is not None and (self.run_dir / CONFIG).is_file():
            config = RunConfig.read(self.run_dir)
            self.trackers = [_tracker(kind, self.run_dir, config.competition, self.tags) for kind in self.kinds]
            for tracker in self.trackers:
                tracker.call("start", recipe_params(config))
        return self.trackers

    def log_epoch(self, row: dict[str, Any]) -> None:
        """`row` is the trainer's, its epoch counted from 0; the trackers get it counted from 1, as history.csv
        and every message count it, so a step in MLflow or TensorBoard is the epoch a person reads."""
        if "epoch" in row:
            row = {**row, "epoch": display_epoch(row["epoch"])}
        for tracker in self._started():
            tracker.call("log_epoch", row)
        if self.on_epoch:
            self.on_epoch(row)

    def finish(self, status: str = "FINISHED") -> None:
        """Log the folder's pictures (unless the run failed) and close every tracker."""
        for tracker in self._started():
            if status == "FINISHED" and (self.run_dir / HISTORY).is_file():
                tracker.call("log_artifacts", self.run_dir)
            tracker.call("finish", status)


def log_kaggle_score(
    run_dir: str | Path | None, public: float | None, private: float | None = None, step: int = 0
) -> None:
    """A Kaggle score recorded for a run's submission, into the trackers that run was logged to."""
    if not run_dir or not Path(run_dir).is_dir():
        return
    known = read_tracking(Path(run_dir))
    guarded = []
    entry = known.get("mlflow") or {}
    if entry.get("tracking_uri") and entry.get("run_id"):
        tracker = MlflowTracker(Path(run_dir), entry.get("experiment", ""), entry["tracking_uri"], entry["run_id"])
        guarded.append(_Guarded("mlflow", tracker, entry["tracking_uri"]))
    if "tensorboard" in known:
        guarded.append(_Guarded("tensorboard", TensorBoardTracker(Path(run_dir)), str(Path(run_dir) / TENSORBOARD_DIR)))
    for tracker in guarded:
        for name, value in (("kaggle_public_score", public), ("kaggle_private_score", private)):
            if value is not None:
                tracker.call("log_score", name, value, step)
        if tracker.kind == "tensorboard":  # closes its event file; the MLflow run keeps its own end time
            tracker.call("finish", "FINISHED")
