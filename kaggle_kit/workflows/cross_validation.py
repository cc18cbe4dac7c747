"""Cross-validation: `train --folds K` trains K runs on a seeded stratified K-fold split of the training set, then
assembles their out-of-fold (OOF) predictions and a CV summary; `predict` and `score` on the group use them.

    plan_group   the split (grouped when the declaration names a group column), saved as folds.json; a rerun
                 checks the data, K, seed and recipe are the same ones
    train_folds  each fold a normal run folder (fold-I/), trained, or resumed from where it stopped, or skipped
                 when finished; every process of `--nproc` runs the same loop
    finish_group (rank 0) each finished fold calibrated; with all K, oof_predictions.npz and cv.json / cv.md
    predict_group  the folds' test logits averaged, with the temperature fitted on the OOF logits

The OOF logits are each fold's best.pt on its own held-out fold in the configuration its predict uses (TTA or
not). Test logits are averaged in logit space, as TTA views are (predict.py says why), so one temperature fitted
on the OOF logits - single models' logits, about the scale of the average where the folds agree - calibrates
the blend: for log loss that is the temperature the held-out images ask for, not K guesses.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.bootstrap import (
    Interval,
    bootstrap_interval,
    describe_figure,
    fold_lines,
    temperature_warning,
)
from ..competitions.metrics import calibrating_temperature, log_loss, softmax
from ..competitions.posthoc import TemperatureFit, cross_fit
from ..competitions.registry import Competition, resolve
from ..core import distributed
from ..core.atomic import is_leftover
from ..core.errors import KitError
from ..data.groups import image_groups
from ..data.split import check_fold_count, stratified_folds
from ..data.training_images import TrainingImages
from ..records.group_folder import FoldGroup, OutOfFold, is_group
from ..records.run_folder import DEFAULT_RUNS_DIR, HISTORY, RunDir, display_epoch, new_run_path, stopped_early


@dataclass
class GroupResult:
    group: FoldGroup
    trained: list[int] = field(default_factory=list)  # folds trained or resumed by this call
    skipped: list[int] = field(default_factory=list)  # already finished
    interrupted: int | None = None  # the fold a stop request ended


# --------------------------------------------------------------------------------------- the split


def parse_fold_list(text: str | None, k: int) -> list[int]:
    """`--fold 1,3` -> [1, 3]; None -> every fold."""
    if text is None:
        return list(range(1, k + 1))
    try:
        folds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise KitError(f"--fold {text}: give fold numbers separated by commas, e.g. --fold 1,3") from None
    bad = [f for f in folds if not 1 <= f <= k]
    if bad or not folds:
        raise KitError(f"--fold {text}: folds are numbered 1 to {k}")
    return folds


def check_folds(comp: Competition, layout, k: int) -> np.ndarray | None:
    """`k` folds can each hold out every class (or, grouped, a group) of this data; returns the images' groups."""
    groups = image_groups(layout)
    check_fold_count(layout.train_labels, k, layout.classes, groups)
    return groups


def plan_group(
    competition: str | Competition,
    data_dir: Path | str | None,
    recipe: str | None,
    out: Path | str | None,
    k: int,
    runs_root: Path | str = DEFAULT_RUNS_DIR,
    **overrides: Any,
) -> tuple[FoldGroup, Any]:
    """The group folder and its data layout; folds.json written, or checked against this command when it exists."""
    from ..data.layout import open_layout

    comp = resolve(competition) if isinstance(competition, str) else competition
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if overrides.get("full_train"):
        raise KitError("--folds holds out every fold in turn, so --full-train cannot apply: drop one of them")
    if "val_fraction" in overrides:  # each fold holds out 1/K: a fraction given would be silently ignored
        raise KitError(
            f"--folds {k} holds out 1/{k} of the training images in each fold, so --val-fraction cannot apply: "
            "drop one of them"
        )
    requested = comp.recipe(recipe).replace(**overrides).validate()
    layout = open_layout(comp, data_dir)
    group = FoldGroup(out or _new_group_path(Path(runs_root), comp, requested, k))
    plan = {
        "competition": comp.name,
        "folds": k,
        "seed": requested.seed,
        "group_column": comp.group_column,
        "fingerprint": layout.fingerprint(),
        "data_dir": str(layout.root.resolve()),
        "recipe": recipe,
        "overrides": overrides,
    }
    existed = is_group(group.path)
    # a write of folds.json killed before its rename leaves only its hidden temporary file: the folder is free
    occupied = not existed and group.path.exists() and any(not is_leftover(p) for p in group.path.iterdir())
    distributed.barrier()  # under --nproc every rank has looked before rank 0 writes folds.json
    if existed:
        _check_same_plan(group, plan)
        return group, layout
    if occupied:
        raise KitError(f"--out {group.path} already holds other files: choose a new folder for the fold group")
    if comp.target != "label":  # label sets, values, grades: folds stratified as the target needs
        from ..data.target_labels import target_folds

        folds = target_folds(layout.train_labels, k, requested.seed)
    else:
        groups = check_folds(comp, layout, k)
        folds = stratified_folds(layout.train_labels, k, requested.seed, groups)
    if distributed.is_main():
        group.write_plan({**plan, "ids": list(layout.train.ids), "fold": [int(f) + 1 for f in folds]})
    distributed.barrier()
    return group, layout


def _new_group_path(root: Path, comp: Competition, recipe, k: int) -> Path:
    path = new_run_path(root, comp.name, recipe.arch, recipe.name)
    return path.with_name(f"{path.name}-{k}fold")


def _check_same_plan(group: FoldGroup, plan: dict[str, Any]) -> None:
    stored = group.plan()
    old, new = stored.get("overrides") or {}, plan["overrides"]
    changed = sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
    if changed:
        name = changed[0]
        raise KitError(
            f"{group.path} was made with --{name.replace('_', '-')} {old.get(name, '(default)')}, not "
            f"{new.get(name, '(default)')}: resume it with `kaggle-kit train --resume {group.path}`, "
            f"or choose another --out"
        )
    for key in ("competition", "folds", "seed", "fingerprint", "recipe"):
        if stored.get(key) != plan[key]:
            if key == "fingerprint":
                raise KitError(
                    f"the data in {plan['data_dir']} differs from the data {group.path} was split from: "
                    f"pass the original --data-dir ({stored.get('data_dir')})"
                )
            said = key if key == "competition" else f"--{key}"  # as the user typed it
            raise KitError(
                f"{group.path} was made with {said} {stored.get(key)}, not {plan[key]}: resume it with "
                f"`kaggle-kit train --resume {group.path}`, or choose another --out"
            )


# --------------------------------------------------------------------------------------- training


def fold_state(run: RunDir) -> str:
    """One of "new" (nothing to resume), "partial" (resume from last.pt) or "finished": every epoch of the fold's
    own recipe ran, or early stopping ended it (patience epochs since the best, as the EarlyStopping hook counts)."""
    if not run.file("config.json").is_file() or not run.file(HISTORY).is_file():
        return "new"
    config, history = run.read_config(), run.history()
    if not run.has_checkpoint("last"):
        return "partial"
    if len(history) >= config.recipe.epochs:
        return "finished"
    values = [float(v) for v in history["val_metric"]]
    metric = resolve(config.competition).metric
    return "finished" if stopped_early(values, config.recipe.early_stop_patience, metric) else "partial"


def unfinished_folds(group: FoldGroup) -> list[int]:
    return [f for f in range(1, group.k + 1) if fold_state(RunDir(group.fold_dir(f))) != "finished"]


def train_folds(group: FoldGroup, only: list[int] | None = None, data_dir: Path | str | None = None) -> GroupResult:
    """Train (or resume) the chosen folds one after another; a stop request ends the group after saving."""
    from .. import training

    plan = group.plan()
    k = int(plan["folds"])
    comp = resolve(plan["competition"])
    overrides = {**plan["overrides"], "val_fraction": 1 / k}  # says the held-out share; the fold picks the images
    data_dir = data_dir or plan["data_dir"]
    result = GroupResult(group)
    for fold in only or range(1, k + 1):
        run = RunDir(group.fold_dir(fold))
        state = fold_state(run)
        if state == "finished":
            result.skipped.append(fold)
            continue
        if distributed.is_main():
            print(f"fold {fold}/{k}: {'resuming' if state == 'partial' else 'training'} {run.path}", file=sys.stderr)
        if state == "partial":
            trained = training.resume(run.path, data_dir)
        else:
            if run.path.exists() and distributed.is_main():
                _clear_unstarted(run)
            distributed.barrier()
            images = TrainingImages.fold(group.val_ids(fold))
            trained = training.train(comp, data_dir, plan["recipe"], out=run.path, images=images, **overrides)
        result.trained.append(fold)
        if trained.interrupted:
            result.interrupted = fold
            break
    return result


def train_folds_apart(
    group: FoldGroup,
    only: list[int] | None,
    data_dir: Path | str | None = None,
    gpus: list[str] | None = None,
    ray: str | None = None,
) -> GroupResult:
    """The chosen unfinished folds side by side, one `train --resume GROUP --fold I` process each, logged to
    GROUP/logs/fold-I.log: one per GPU at a time (`gpus`, launch.run_on_gpus), or each a task on the Ray cluster at
    address `ray` (core.ray_jobs: a fold whose process dies is retried, and resumes its last.pt). Each process
    writes its own fold folder only."""
    from ..core.launch import how_it_ended, run_on_gpus

    result = GroupResult(group)
    wanted = [f for f in only or range(1, group.k + 1)]
    result.skipped = [f for f in wanted if fold_state(RunDir(group.fold_dir(f))) == "finished"]
    todo = [f for f in wanted if f not in result.skipped]
    extra = ["--data-dir", str(data_dir)] if data_dir else []
    jobs = [["train", "--resume", str(group.path), "--fold", str(f), *extra] for f in todo]
    logs = [group.path / "logs" / f"fold-{f}.log" for f in todo]
    if ray:
        from ..core import ray_jobs

        cluster = ray_jobs.connect(ray)
        env = ray_jobs.job_env()
        codes = ray_jobs.run_on_ray(cluster, [ray_jobs.Job(argv, log, env=env) for argv, log in zip(jobs, logs)])
    else:
        codes = run_on_gpus(jobs, gpus or [], logs=logs)
    result.trained = todo
    failed = [(f, code, log) for f, code, log in zip(todo, codes, logs) if code != 0]
    if failed:
        fold, code, log = failed[0]
        if code == 130:
            result.interrupted = fold
            return result
        raise KitError(f"fold {fold} {how_it_ended(code, log)} (log: {log}); rerun to continue the other folds")
    return result


def _clear_unstarted(run: RunDir) -> None:
    """A fold folder killed before its first epoch finished (SIGKILL leaves no chance to remove it): start over."""
    import shutil

    shutil.rmtree(run.path)


# --------------------------------------------------------------------------------------- OOF and CV summary


def finish_group(group: FoldGroup, data_dir: Path | str | None = None, device: str = "auto") -> dict[str, Any] | None:
    """With every fold finished: the OOF predictions (each fold's best.pt on its held-out fold) and the CV summary.
    None while folds are missing."""
    from ..data.layout import open_layout
    from ..inference.held_out import held_out_groups
    from ..inference.predict import run_logits

    plan = group.plan()
    k, comp = int(plan["folds"]), resolve(plan["competition"])
    if unfinished_folds(group):
        return None
    if comp.target != "label":  # label sets, values, grades: OOF values and their fit (workflows/target_folds)
        from .target_folds import finish_target_group

        return finish_target_group(group, plan, comp, data_dir, device)
    position = {image_id: n for n, image_id in enumerate(plan["ids"])}
    n, classes = len(plan["ids"]), None
    labels, fold_of = np.full(n, -1, np.int64), np.zeros(n, np.int64)
    logits: np.ndarray | None = None
    per_fold = []
    groups = held_out_groups(comp, open_layout(comp, data_dir or plan["data_dir"]), list(plan["ids"]))
    for fold in range(1, k + 1):
        held = run_logits(group.fold_dir(fold), data_dir or plan["data_dir"], test=False, device=device)
        rows = np.array([position[i] for i in held.val_ids], dtype=np.int64)
        if logits is None:
            classes = held.classes
            logits = np.zeros((n, len(classes)), np.float32)
        logits[rows], labels[rows], fold_of[rows] = held.val_logits, held.val_labels, fold
        per_fold.append(_fold_row(fold, held, comp, None if groups is None else groups[rows]))
    assert logits is not None
    uncovered = np.flatnonzero(fold_of == 0)
    if len(uncovered):
        raise KitError(
            f"{group.path}: training id {plan['ids'][uncovered[0]]} was held out by no fold ({len(uncovered)} such): "
            f"the fold folders do not match folds.json - train the group again"
        )
    # the folds are the parts: each fold's temperature is fitted on the other folds' held-out logits
    crossed = cross_fit(TemperatureFit(), labels, logits, parts=fold_of)
    temperature = float(crossed.params)
    probs = softmax(logits, temperature)
    group.write_oof(OutOfFold(list(plan["ids"]), labels, logits, probs, fold_of, temperature))
    notes = [crossed.note, calibrating_temperature(logits, labels)[1], temperature_warning(temperature, n)]
    summary = {
        **_cv_summary(comp, labels, crossed.submitted, logits, temperature, per_fold),
        "oof_interval": bootstrap_interval(comp.metric, labels, crossed.submitted, groups).to_dict(),
        "groups": None if groups is None else int(len(np.unique(groups))),
        "cross_fitted": True,
        "temperature_note": "; ".join(note for note in notes if note) or None,
    }
    group.write_cv(summary, cv_table(summary, group.name))
    return summary


def _fold_row(fold: int, held, comp: Competition, groups=None) -> dict[str, Any]:
    probs = softmax(held.val_logits, held.temperature)  # the fold alone, as its own predict would submit
    figure = bootstrap_interval(comp.metric, held.val_labels, probs, groups)
    return {
        "fold": fold,
        "images": int(len(held.val_ids)),
        "metric": figure.value,
        "interval": figure.to_dict(),
        "log_loss": float(log_loss(held.val_labels, probs)),
        "tta": bool(held.tta),
        "temperature": float(held.temperature),
        "best_epoch": display_epoch((held.config.calibration_of("best") or {}).get("epoch") or 0),
    }


def _cv_summary(comp, labels, probs, logits, temperature, per_fold) -> dict[str, Any]:
    values = np.array([row["metric"] for row in per_fold])
    return {
        "competition": comp.name,
        "metric": comp.metric.name,
        "higher_is_better": comp.metric.higher_is_better,
        "folds": len(per_fold),
        "images": int(len(labels)),
        "oof_metric": float(comp.metric(labels, probs)),
        "oof_log_loss": float(log_loss(labels, probs)),
        "oof_log_loss_uncalibrated": float(log_loss(labels, softmax(logits))),
        "oof_accuracy": float((probs.argmax(1) == labels).mean()),
        "temperature": float(temperature),
        "fold_mean": float(values.mean()),
        "fold_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "per_fold": per_fold,
    }


def cv_table(summary: dict[str, Any], name: str) -> str:
    """cv.md: the per-fold rows, then mean +- std and the OOF score, each with the metric's direction."""
    metric = resolve(summary["competition"]).metric
    also_log_loss = metric.name != "log_loss"  # the calibration's own measure, where it is not the metric already
    lines = [
        f"# {name}: {summary['folds']}-fold cross-validation",
        "",
        f"| fold | images | {metric.label} | 95% interval |{' log loss |' if also_log_loss else ''} TTA "
        "| temperature |",
        f"|---:|---:|---:|:---:|{'---:|' if also_log_loss else ''}:---:|---:|",
    ]
    for row in summary["per_fold"]:
        tta = "on" if row["tta"] else "off"
        loss = f" {row['log_loss']:.4f} |" if also_log_loss else ""
        found = Interval.from_dict(row.get("interval"))
        interval = f"[{found.low:.3f}, {found.high:.3f}]" if found else "-"
        lines.append(
            f"| {row['fold']} | {row['images']} | {row['metric']:.4f} | {interval} |{loss} {tta} | "
            f"{row['temperature']:.3f} |"
        )
    lines += ["", *describe_cv(summary), ""]
    return "\n".join(lines)


def describe_cv(summary: dict[str, Any]) -> list[str]:
    if summary.get("target"):
        from .target_folds import describe

        return describe(summary)
    metric = resolve(summary["competition"]).metric
    folds = ", ".join(f"{row['metric']:.4f}" for row in summary["per_fold"])
    crossed = ", cross-fitted over the folds" if summary.get("cross_fitted") else ""
    return [
        f"OOF {describe_figure(metric, summary.get('oof_interval'), summary['oof_metric'])} ({summary['images']} "
        f"images, each predicted by the fold that held it out; temperature {summary['temperature']:.3f}{crossed})",
        f"per fold: mean {summary['fold_mean']:.4f}, std {summary['fold_std']:.4f} ({folds}) - {metric.direction}",
        *fold_lines(summary["per_fold"], metric),
        *([f"note: {summary['temperature_note']}"] if summary.get("temperature_note") else []),
    ]


def group_cv(group_dir: Path | str) -> dict[str, Any]:
    """The stored CV summary (`score GROUP`)."""
    group = FoldGroup(group_dir)
    group.plan()  # not a group: says so
    summary = group.cv()
    if summary is None:
        raise KitError(
            f"{group.path} has no cv.json: not every fold has finished - `kaggle-kit train --resume {group.path}`"
        )
    return summary


# --------------------------------------------------------------------------------------- predicting


@dataclass
class GroupLogits:
    """The group as one model: OOF held-out logits and the folds' averaged test logits, one temperature."""

    group: FoldGroup
    competition: Competition
    classes: list[str]
    oof: OutOfFold
    test_ids: list[str]
    test_logits: np.ndarray
    layout: Any
    warnings: list[str]
    test_bad_ids: list[str] = field(default_factory=list)

    def test_probabilities(self) -> np.ndarray:
        """What `predict GROUP` submits: the averaged test logits softmaxed at the OOF temperature."""
        return softmax(self.test_logits, self.oof.temperature)


def group_logits(
    group_dir: Path | str,
    data_dir: Path | str | None = None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    engine: str = "torch",
) -> GroupLogits:
    from ..inference.predict import run_logits

    group = FoldGroup(group_dir)
    plan = group.plan()
    oof = group.oof()
    comp = resolve(plan["competition"])
    total, ids, layout, classes, warnings = None, None, None, None, []
    for fold in range(1, int(plan["folds"]) + 1):
        member = run_logits(
            group.fold_dir(fold), data_dir, held_out=False, device=device, batch_size=batch_size, engine=engine
        )
        total = member.test_logits.astype(np.float64) if total is None else total + member.test_logits
        ids, layout, classes = member.test_ids, member.layout, member.classes
        warnings, bad_ids = member.warnings, member.test_bad_ids
    return GroupLogits(group, comp, classes, oof, ids, total / int(plan["folds"]), layout, warnings, bad_ids)


@dataclass
class GroupPrediction:
    path: Path
    rows: int
    competition: Competition
    temperature: float
    cv: dict[str, Any] | None
    sample_path: Path
    warnings: list[str]


def predict_group(
    group_dir: Path | str,
    data_dir: Path | str | None = None,
    out: Path | str | None = None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    engine: str = "torch",
) -> GroupPrediction:
    """The folds' averaged test logits, softmax at the OOF temperature, written as a validated submission."""
    from ..submissions.files import read_sample, write_checked_submission
    from ..submissions.provenance import record_written

    group = FoldGroup(group_dir)
    plan = group.plan()
    comp = resolve(plan["competition"])
    path = Path(out) if out else Path("submissions") / comp.name / f"{group.name}.csv"
    if path.is_dir():
        raise KitError(
            f"--out {path} is a folder: give the submission's file name, e.g. {path / (group.name + '.csv')}"
        )
    if comp.target != "label":  # label sets, values, grades: averaged values and the OOF fit
        from .target_folds import predict_target_group

        layout, cv = predict_target_group(group, plan, comp, data_dir, path, device, batch_size)
        record_written(path, group.path, comp.name, layout.root, layout.sample_path)
        return GroupPrediction(path, len(read_sample(layout.sample_path, comp)), comp, 1.0, cv, layout.sample_path, [])
    blended = group_logits(group.path, data_dir, device=device, batch_size=batch_size, engine=engine)
    layout = blended.layout
    sample = read_sample(layout.sample_path, comp)
    probs = blended.test_probabilities()
    path.parent.mkdir(parents=True, exist_ok=True)
    validation = write_checked_submission(
        path, comp, sample, layout.sample_path, blended.test_ids, probs, blended.classes
    )
    record_written(path, group.path, comp.name, layout.root, layout.sample_path)
    return GroupPrediction(
        path, validation.rows, comp, blended.oof.temperature, group.cv(), layout.sample_path, blended.warnings
    )
