"""The whole loop on generated data: sample download -> train -> predict -> validate -> local score.

What `kaggle-kit demo` runs on a fresh machine: every stage is the real one (the sample is a Kaggle
download in the exact layout), only smaller; the sample's hidden answers stand in for the leaderboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..competitions.bootstrap import Interval
from ..competitions.registry import Competition, resolve
from ..core import progress
from ..data.labels import read_csv

# a short run: batch, learning rate and warmup are left to the recipe fitted to the data (resolve.py), as a
# user's first run gets them
DEMO_SETTINGS = {"epochs": 4}


@dataclass
class DemoResult:
    competition: Competition
    data_dir: Path
    run_dir: Path
    submission: Path
    best_val_metric: float | None
    test_score: float
    seconds: float
    validation: Interval | None = None  # best_val_metric with its 95% interval and n
    test_images: int | None = None  # the hidden answers test_score was measured on


def run_demo(competition: str = "cifar10", out_dir: Path | str = "demo", **overrides: Any) -> DemoResult:
    import time

    from ..competitions.samples import write_sample
    from ..inference.predict import predict_run
    from ..records.run_folder import best_interval
    from ..submissions.files import score
    from ..training import train

    started = time.perf_counter()
    comp = resolve(competition)
    out_dir = Path(out_dir)
    data_dir = out_dir / "data" / comp.slug
    if not (data_dir / comp.archive_name).is_file():
        progress.say(f"demo 1/4: writing a small generated {comp.slug} download to {data_dir}")
        write_sample(comp, data_dir)
    else:
        progress.say(f"demo 1/4: reusing the generated download in {data_dir}")
    settings = {**DEMO_SETTINGS, **{k: v for k, v in overrides.items() if v is not None}}
    progress.say(f"demo 2/4: training {settings['epochs']} epochs (one line per epoch)")
    result = train(comp, data_dir, runs_root=out_dir / "runs", **settings)
    progress.say(f"demo 3/4: predicting the test images with {result.run_dir}")
    prediction = predict_run(
        result.run_dir, data_dir, out=out_dir / "submissions" / comp.name / f"{result.run_dir.name}.csv"
    )
    progress.say("demo 4/4: scoring the submission against the sample's hidden answers")
    test_score = score(prediction.path, data_dir / "answers.csv", comp)
    answers = len(read_csv(data_dir / "answers.csv", "answers"))
    return DemoResult(
        comp,
        data_dir,
        result.run_dir,
        prediction.path,
        result.best_metric,
        test_score,
        time.perf_counter() - started,
        best_interval(result.history, result.best_epoch),
        answers,
    )
