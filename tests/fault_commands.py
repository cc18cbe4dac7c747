"""The registry of commands that write a file a user keeps, as the fault sweep runs them (tests/fault_sweep.py).

Every command starts from `Base`: the tiny CIFAR download and runs trained once (1 epoch, 24 px, test_resnet),
so a command that reads a run (predict, resume, ensemble, score, package, submit) reuses them instead of
training. A new command that writes joins the sweep here: how its working folder starts, its arguments, which
files must come out equal to an undisturbed run's after a fault, and which must exist.

Commands left out, and why: `score` of a CSV and the read-only commands write nothing (`score RUN
--recalibrate` writes the run's calibration and is here); `push` runs the packaged notebook in a fresh
interpreter on the fake Kaggle (tens of seconds a moment): the full sweep only (`FULL_ONLY`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fault_sweep import Command, run_kit

from kaggle_kit.core import faults

TRAIN_FLAGS = [
    *("--arch", "test_resnet", "--img-size", "24", "--batch-size", "32", "--workers", "0"),
    *("--device", "cpu", "--aug", "none", "--seed", "3", "--tta", "off"),
]
EPOCH = ["--epochs", "1", "--no-analyze"]
INTERRUPTED_AT = 8  # the first write of `train --epochs 2`'s second epoch (after epoch 1's last.pt and history)
PLAN = """competition = "cifar10"
title = "faults"
recipe = "paper"
seeds = 1

[overrides]
arch = "test_resnet"
img_size = 24
batch_size = 32
workers = 0
device = "cpu"
epochs = 1
aug = "none"
tta = "off"

[grid]
schedule = ["constant"]
"""
SPACE = """seed = 0
[params.lr]
distribution = "categorical"
choices = [0.05, 0.1]
"""
FULL_ONLY = ("package", "push")


@dataclass
class Base:
    """What every command's working folder is made from; made once per sweep (`make_base`)."""

    root: Path
    data: Path  # the tiny CIFAR download, unpacked by the first training
    run: Path  # `train` 1 epoch
    other: Path  # the same, another learning rate: a second ensemble member over the same split
    interrupted: Path  # `train --epochs 2` that crashed as epoch 2 began: what `train --resume` continues
    servers: list = field(default_factory=list)
    seen: dict = field(default_factory=dict)  # a working folder -> how many submissions the fake Kaggle had then

    def copy(self, work: Path, *names: str) -> None:
        for name in names:
            source = getattr(self, name)
            target = work / ("run" if name == "interrupted" else name)
            shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(".*.partial"))

    def kaggle(self):
        """The fake Kaggle (tests/kaggle_server.py) the sweep's submits go to, started once."""
        if not self.servers:
            from kaggle_server import KaggleServer

            self.servers.append(KaggleServer("cifar10", self.data, score_delay=0.2, daily_limit=10**6).start())
        return self.servers[0]

    def kaggle_env(self) -> dict:
        from kaggle_server import DEFAULT_KEY, DEFAULT_USERNAME

        return {
            "HOME": str(self.root / "home"),
            "KAGGLE_CONFIG_DIR": str(self.root / "kaggle-config"),
            "KAGGLE_USERNAME": DEFAULT_USERNAME,
            "KAGGLE_KEY": DEFAULT_KEY,
            "KAGGLE_KIT_API_ENDPOINT": self.kaggle().url,
            "KAGGLE_KIT_HTTP_TIMEOUT": "10",
            "KAGGLE_KIT_RETRY_BUDGET": "4",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def make_base(root: Path, download: Path) -> Base:
    """Copy the download and train the shared runs (each through the zygote: seconds, not a fresh import)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(download, root / "data", ignore=shutil.ignore_patterns(".kaggle-kit"))
    base = Base(root, root / "data", root / "run", root / "other", root / "interrupted")
    trained = {
        "run": [*EPOCH],
        "other": [*EPOCH, "--lr", "0.05"],
        "interrupted": ["--epochs", "2", "--no-analyze"],
    }
    for name, extra in trained.items():
        env = {faults.CRASH_ENV: f"{INTERRUPTED_AT}:partial"} if name == "interrupted" else {}
        proc = run_kit(root, ["train", "cifar10", "--data-dir", "data", "--out", name, *TRAIN_FLAGS, *extra], env)
        expected = faults.CRASH_EXIT if name == "interrupted" else 0
        assert proc.returncode == expected, f"training the shared run {name}: {proc.stderr[-2000:]}"
    predicted = run_kit(root, ["predict", "run", "--data-dir", "data", "--device", "cpu"], {})
    assert predicted.returncode == 0, predicted.stderr
    shutil.copy(root / "submissions" / "cifar10" / "run.csv", root / "run.csv")
    return base


def one_submission_per_upload(base: Base) -> Callable[[Path], str]:
    """After a submit and its rerun: the ledger records every submission Kaggle made since the folder was prepared,
    each once, and one of them scored."""

    def check(work: Path) -> str:
        from kaggle_kit.submissions.ledger import COMPLETE, Ledger

        records = Ledger(work / "submissions" / "ledger.jsonl").records()
        refs = sorted(r.kaggle_ref for r in records if r.kaggle_ref is not None)
        made = sorted(s.ref for s in base.kaggle().submissions[base.seen[work] :])
        if refs != made:
            return f"the ledger holds submissions {refs}, Kaggle made {made}"
        return "" if any(r.status == COMPLETE for r in records) else "no submission recorded as scored"

    return check


def study_intact(work: Path) -> str:
    """After a tune and its rerun: the study loads from its journal, no trial is left running or waiting, one is
    complete, and each complete trial's folder (a retried trial runs in its first try's) says so in trial.json."""
    import json

    import optuna

    from kaggle_kit.study.tune_storage import open_storage
    from kaggle_kit.study.tune_trial import TRIAL_FILE, trial_folder

    folder = work / "runs" / "cifar10" / "tune-space"
    study = optuna.load_study(study_name="space", storage=open_storage(None, folder))
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    if "RUNNING" in states or "WAITING" in states or states.count("COMPLETE") != 1:
        return f"the study's trials are {states}: one complete, none running or waiting, was expected"
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = trial_folder(folder, trial) / TRIAL_FILE
        if not record.is_file() or json.loads(record.read_text()).get("state") != "complete":
            return f"trial {trial.number} is complete in the study, but {record} does not say so"
    return ""


def _again_or_resume(folder: str, first: list[str]) -> Callable[[Path], list[str]]:
    """What a user is told after a fault in training: resume the folder when it has its config, else start again."""

    def rerun(work: Path) -> list[str]:
        if (work / folder / "config.json").is_file() or (work / folder / "folds.json").is_file():
            return ["train", "--resume", folder, "--no-analyze"]
        return first

    return rerun


def registry(base: Base) -> dict[str, Command]:
    """Every command that writes a kept file, by name."""

    def prepare(*names: str, text: dict | None = None):
        def make(work: Path) -> None:
            base.copy(work, "data", *names)
            for name, content in (text or {}).items():
                (work / name).write_text(content)

        return make

    def to_kaggle(work: Path) -> None:
        base.copy(work, "data", "run")
        shutil.copy(base.root / "run.csv", work / "run.csv")
        base.seen[work] = len(base.kaggle().submissions)

    train = ["train", "cifar10", "--data-dir", "data", "--out", "run", *TRAIN_FLAGS, "--epochs", "2", "--no-analyze"]
    folds = ["train", "cifar10", "--data-dir", "data", "--folds", "2", "--out", "group", *TRAIN_FLAGS, *EPOCH]
    tune = ["tune", "cifar10", "--data-dir", "data", "--space", "space.toml", "--trials", "1", "--epochs", "1"]
    commands = [
        Command("train", prepare(), train, ("run/val_predictions.npz",), _again_or_resume("run", train)),
        Command(
            "resume",
            prepare("interrupted"),
            ["train", "--resume", "run", "--no-analyze"],
            ("run/val_predictions.npz", "run/best.pt"),
        ),
        Command(
            "train --folds",
            prepare(),
            folds,
            ("group/oof_predictions.npz", "group/fold-*/val_predictions.npz"),
            _again_or_resume("group", folds),
        ),
        Command(
            "predict",
            prepare("run"),
            ["predict", "run", "--data-dir", "data", "--device", "cpu"],
            ("submissions/cifar10/*.csv",),
        ),
        Command(
            "ensemble",
            prepare("run", "other"),
            ["ensemble", "run", "other", "--out", "blend.csv", "--device", "cpu"],
            ("blend.csv",),
            present=("blend.csv.ensemble.json",),
        ),
        Command(
            "score --recalibrate",
            prepare("run"),
            ["score", "run", "--recalibrate", "--device", "cpu"],
            ("run/val_predictions.npz",),
            present=("run/config.json",),
        ),
        Command(
            "init",
            prepare(),
            ["init", "cifar-10", "--data-dir", "data", "--metric", "accuracy", "--name", "faulty", "--out", "c.toml"],
            ("c.toml",),
        ),
        Command(
            "experiment",
            prepare(text={"plan.toml": PLAN}),
            ["experiment", "plan.toml", "--data-dir", "data", "--out", "exp"],
            ("exp/**/val_predictions.npz",),
            present=("exp/report.md", "exp/results.csv", "exp/**/analysis/analysis.md"),
        ),
        Command(
            "tune",
            prepare(text={"space.toml": SPACE}),
            [*tune, *TRAIN_FLAGS],
            ("runs/**/val_predictions.npz",),
            present=("runs/**/study.json", "runs/**/trial.json"),
            env={"KAGGLE_KIT_RUNS_DIR": "runs"},
            check=study_intact,
        ),
        Command(
            "submit",
            to_kaggle,
            ["submit", "run.csv", "--competition", "cifar10", "--run", "run", "--data-dir", "data", "-m", "faults"],
            (),
            env=base.kaggle_env,
            check=one_submission_per_upload(base),
        ),
        Command(
            "package",
            prepare("run"),
            ["package", "run", "--owner", "kk-test-user", "--no-deps-wheels", "--out", "pkg"],
            ("pkg/dataset/weights.safetensors", "pkg/dataset/config.json", "pkg/notebook/*"),
        ),
    ]
    return {command.name: command for command in commands}
