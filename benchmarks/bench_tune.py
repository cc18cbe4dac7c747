"""What `kaggle-kit tune` costs beyond the training it runs.

Both sides on one generated CIFAR-10 sample in this process:
  baseline   N runs trained by `kaggle_kit.training.train` directly (lr 0.05, test_resnet, 32 px, CPU)
  kit        N trials of `tune` with the same settings (a space with the one choice lr = 0.05, the median
             pruner's hook active, the journal-file storage): the training, plus sampling, storage and records
  optuna     the storage's own cost: an objective that only draws one parameter, M trials, per trial
             (journal file; and PostgreSQL with --postgres URL, e.g. "$(bash scripts/start-postgres.sh)")

    .venv/bin/python benchmarks/bench_tune.py [--trials 3] [--empty 200] [--postgres URL] [--json OUT]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import cifar_download, print_machine, table, write_json

TRAIN = dict(
    arch="test_resnet", img_size=32, batch_size=32, workers=0, device="cpu", aug="none", epochs=1, tta="off", seed=1
)


def baseline(data: Path, out: Path, n: int) -> float:
    from kaggle_kit import training

    training.train("cifar10", data, out=out / "warm-up", lr=0.05, **TRAIN)  # the decoded cache, built once, untimed
    start = time.perf_counter()
    for i in range(n):
        training.train("cifar10", data, out=out / f"run-{i}", lr=0.05, **TRAIN)
    return (time.perf_counter() - start) / n


def through_tune(data: Path, root: Path, n: int) -> float:
    from kaggle_kit.study import tune

    root.mkdir(parents=True, exist_ok=True)
    space = root / "one.toml"
    space.write_text('pruner = "median"\n[params.lr]\ndistribution = "categorical"\nchoices = [0.05]\n')
    start = time.perf_counter()
    plan = tune.plan_study("cifar10", space, data_dir=data, root=root, **TRAIN)
    tune.run_study(plan, trials=n)
    return (time.perf_counter() - start) / n


def empty_trials(storage, m: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=f"empty-{time.time_ns()}")
    start = time.perf_counter()
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-3, 1.0, log=True), n_trials=m)
    return (time.perf_counter() - start) / m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--empty", type=int, default=200)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = print_machine("tune overhead")
    from kaggle_kit.study.tune_storage import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = cifar_download(work / "data", n_train=90, n_test=30)
        plain = baseline(data, work / "plain", args.trials)
        kit = through_tune(data, work / "runs", args.trials)
        rows = [
            {"side": "baseline: training.train", "per trial s": f"{plain:.2f}", "ratio": "1.00"},
            {"side": "kit: tune trial (journal file)", "per trial s": f"{kit:.2f}", "ratio": f"{kit / plain:.2f}"},
        ]
        journal = empty_trials(open_storage(None, work / "empty"), args.empty)
        rows.append({"side": "optuna alone: journal file", "per trial s": f"{journal:.4f}", "ratio": ""})
        if args.postgres:
            rdb = empty_trials(open_storage(args.postgres, work / "pg", heartbeat_s=60), args.empty)
            rows.append({"side": "optuna alone: PostgreSQL (heartbeat on)", "per trial s": f"{rdb:.4f}", "ratio": ""})
    print(table(rows, ["side", "per trial s", "ratio"]))
    write_json(args.json, {"machine": info, "rows": rows})


if __name__ == "__main__":
    main()
