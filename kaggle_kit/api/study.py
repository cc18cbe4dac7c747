"""`kk.experiment` and `kk.runs`: plans of many runs, and every run folder at a glance as a DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..core.errors import KitError

# what every run's row holds (`runs` with no run still has its columns, so a filter on them works)
RUN_COLUMNS = ("run_dir", "competition", "arch", "recipe", "epochs", "val_metric", "kaggle_public", "settings")


def gpu_ids(gpus: str | list | None) -> list[str] | None:
    """`"0,1"` (or `[0, 1]`) -> `["0", "1"]`; None -> None."""
    if gpus is None:
        return None
    found = [str(g).strip() for g in (gpus.split(",") if isinstance(gpus, str) else gpus) if str(g).strip()]
    if not found:
        raise KitError(f"--gpus {gpus!r}: give GPU ids separated by commas, e.g. --gpus 0,1")
    return found


def experiment(
    plan: str | Path,
    data_dir: Path | str | None = None,
    out: Path | str | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
    submit: bool = False,
    gpus: str | list | None = None,
    set: dict[str, Any] | list[str] | None = None,  # noqa: A002 - named as the `--set` flag
    track: list[str] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    ray: str | None = None,
):
    """Run every cell x seed of a plan as normal run folders (finished runs skipped), then write the report.
    `set`: recipe settings for every run, a dict or `--set`'s KEY=VALUE texts. `ray`: a Ray cluster's address (or
    "auto"): each cell x seed (or fold) a Ray task. Returns the ExperimentResult."""
    from ..study.experiment import run_experiment
    from ..study.plan_runs import parse_set

    overrides = dict(set) if isinstance(set, dict) else parse_set(set)
    return run_experiment(
        str(plan),
        data_dir,
        out,
        epochs=epochs,
        seeds=seeds,
        submit=submit,
        gpus=gpu_ids(gpus),
        overrides=overrides,
        on_event=on_event,
        track=track,
        ray=ray,
    )


def runs(competition: str | None = None, root: list | Path | str | None = None, ledger: Path | str | None = None):
    """Every run folder under `root` (default runs/ and experiments/) as a DataFrame: run_dir, competition, arch,
    epochs, best validation metric, Kaggle score, settings. Damaged folders are left out with a warning."""
    import warnings

    import pandas as pd

    def damaged(path: Path, why: str) -> None:
        warnings.warn(f"skipped {path}: {why}", stacklevel=3)

    found = list_runs(competition, root, ledger, damaged)
    return pd.DataFrame(found) if found else pd.DataFrame(columns=RUN_COLUMNS)


def list_runs(competition, root, ledger, on_damaged) -> list[dict[str, Any]]:
    """The run summaries `runs` shows, from the roots searched (the same defaults as `kaggle-kit runs`)."""
    from ..submissions.ledger import Ledger
    from ..submissions.provenance import list_runs as summaries

    roots = searched_roots(root)
    return summaries(roots, competition, ledger=Ledger(ledger) if ledger else None, on_damaged=on_damaged)


def searched_roots(root) -> list[Path]:
    from ..submissions.provenance import DEFAULT_RUN_ROOTS

    if root is None or root == []:
        return list(DEFAULT_RUN_ROOTS)
    return [Path(r) for r in ([root] if isinstance(root, (str, Path)) else root)]
