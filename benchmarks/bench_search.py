"""Does `kaggle-kit tune` find better settings than the recipe, and does TPE with pruning beat random search?

All sides on one generated CIFAR-10 sample with a hidden test split (answers.csv, never seen by training or by
the search), every trial a real kit run (`study.tune_trial.objective`, the function `tune` runs):
  default    the recipe's own settings (test_resnet at 32 px, from scratch), one run
  tpe        `tune`: N trials of TPE (seeded) with the median pruner on a tiny space (lr, weight decay)
  random     N trials of Optuna's RandomSampler on the same space, no pruning
  ray        (--ray) the wall time of one trial through `tune --ray local` against the same trial locally
For each: the best trial by validation accuracy, its hidden-test accuracy (`predict`, then `score --answers`), the
epochs trained in all and the wall time.

    .venv/bin/python benchmarks/bench_search.py [--trials 8] [--epochs 3] [--ray] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import cifar_download, print_machine, table, write_json

TRAIN = dict(arch="test_resnet", batch_size=32, workers=0, device="cpu", aug="none", tta="off", seed=1)
SPACE = """seed = {seed}
pruner = "{pruner}"
startup_trials = 2
[params.lr]
distribution = "log-uniform"
low = 0.003
high = 3.0
[params.weight_decay]
distribution = "log-uniform"
low = 0.00001
high = 0.01
"""


def hidden_accuracy(run: Path, data: Path, out: Path) -> float:
    import kaggle_kit as kk

    kk.predict(run, out=out, data_dir=data)
    return float(kk.score(out, answers=data / "answers.csv", competition="cifar10"))


def search(sampler: str, data: Path, root: Path, trials: int, train: dict) -> dict:
    """`trials` kit trials under `sampler` ("tpe": tune's own, median pruning; "random": no pruning)."""
    import optuna

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.core.errors import KitError
    from kaggle_kit.study import tune
    from kaggle_kit.study.tune_trial import objective

    root.mkdir(parents=True, exist_ok=True)
    space = root / f"{sampler}.toml"
    space.write_text(SPACE.format(seed=0, pruner="median" if sampler == "tpe" else "none"))
    plan = tune.plan_study("cifar10", space, data_dir=data, root=root, **train)
    start = time.perf_counter()
    if sampler == "tpe":
        tune.run_study(plan, trials=trials)
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction=plan.direction, sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(objective(plan, resolve("cifar10"), None), n_trials=trials, catch=(KitError,))
    seconds = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in sorted(plan.path.glob("trial-*/trial.json"))]
    done = [r for r in records if r["state"] == "complete"]
    best = max(done, key=lambda r: r["value"])
    run = plan.path / f"trial-{best['trial']:03d}"
    return {
        "side": f"{sampler}: {trials} trials" + (", median pruning" if sampler == "tpe" else ""),
        "best val acc": round(best["value"], 4),
        "hidden test acc": round(hidden_accuracy(run, data, root / "best.csv"), 4),
        "epochs": sum(r["epochs"] for r in records),
        "pruned": sum(r["state"] == "pruned" for r in records),
        "wall s": round(seconds, 1),
        "best params": ", ".join(f"{k}={v:.3g}" for k, v in best["params"].items()),
    }


def default_recipe(data: Path, root: Path, train: dict) -> dict:
    from kaggle_kit import training

    start = time.perf_counter()
    result = training.train("cifar10", data, out=root / "default", **train)
    seconds = time.perf_counter() - start
    return {
        "side": "default recipe: 1 run",
        "best val acc": round(result.best_metric, 4),
        "hidden test acc": round(hidden_accuracy(root / "default", data, root / "default.csv"), 4),
        "epochs": result.epochs_run,
        "pruned": 0,
        "wall s": round(seconds, 1),
        "best params": "the recipe's",
    }


def ray_overhead(data: Path, root: Path, train: dict) -> list[dict]:
    """One trial locally, then the same trial (another study) as a Ray task on a local cluster; Ray's start apart."""
    from kaggle_kit.core import ray_jobs
    from kaggle_kit.study import tune

    root.mkdir(parents=True, exist_ok=True)
    space = root / "one.toml"
    space.write_text('pruner = "none"\n[params.lr]\ndistribution = "categorical"\nchoices = [0.05]\n')
    rows = []
    for side in ("local", "ray"):
        plan = tune.plan_study("cifar10", space, study=side, data_dir=data, root=root, **train)
        if side == "ray":
            start = time.perf_counter()
            ray_jobs.connect("local")
            rows.append({"side": "Ray: start a local cluster", "wall s": round(time.perf_counter() - start, 1)})
        start = time.perf_counter()
        tune.run_study(plan, trials=1, ray="local" if side == "ray" else None)
        rows.append({"side": f"one trial, {side}", "wall s": round(time.perf_counter() - start, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=200)
    parser.add_argument("--ray", action="store_true", help="also time one trial through Ray against locally")
    parser.add_argument("--ray-only", action="store_true", help="only the Ray side (--ray implied)")
    parser.add_argument("--quick", action="store_true", help="2 trials of 1 epoch at 24 px on 60 images")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.train_images = 2, 1, 60
    train = {**TRAIN, "epochs": args.epochs, "img_size": 24 if args.quick else 32}
    info = print_machine("tune: TPE + pruning vs random search vs the default recipe")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = cifar_download(work / "data", n_train=args.train_images, n_test=30 if args.quick else 100)
        rows = []
        if not args.ray_only:
            rows = [default_recipe(data, work / "default", train)]
            rows += [search(sampler, data, work / sampler, args.trials, train) for sampler in ("tpe", "random")]
            columns = ["side", "best val acc", "hidden test acc", "epochs", "pruned", "wall s", "best params"]
            print(table(rows, columns), flush=True)
            write_json(args.json, {"machine": info, "settings": vars(args), "rows": rows})
        overhead = ray_overhead(data, work / "ray", train) if args.ray or args.ray_only else []
    if overhead:
        print(table(overhead, ["side", "wall s"]))
    write_json(args.json, {"machine": info, "settings": vars(args), "rows": rows, "ray": overhead})


if __name__ == "__main__":
    main()
