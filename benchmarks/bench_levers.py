"""A lever on vs off at equal epochs, scored on a generated sample's hidden test split (issue 17, part 6).

    .venv/bin/python benchmarks/bench_levers.py cifar10 --n-train 1000 --n-test 1000 --seeds 0 1 \
        --common "--recipe fast --epochs 12" --variant off "" --variant mixup "--mixup-alpha 0.2 --mix-off-epoch 10"

Runs exactly what a user runs: `kaggle-kit sample COMP DIR --n-train N --n-test M` (answers.csv beside the zip),
then per variant and seed `kaggle-kit train COMP --data-dir DIR ...`, `kaggle-kit predict RUN --out F` and the
hidden-test score of F against answers.csv (`kaggle-kit score F --answers A` prints the same number). Prints a
markdown table (mean over seeds and each seed's score) and writes it, with every command, to --json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from common import REPO, machine

KIT = [sys.executable, "-m", "kaggle_kit"]


def run(args: list[str], log: list[str], finished_ok: bool = False) -> str:
    log.append(shlex.join(["kaggle-kit", *args]))
    done = subprocess.run([*KIT, *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0 and not (finished_ok and "nothing to resume" in done.stderr):
        raise SystemExit(f"{log[-1]} failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("competition")
    parser.add_argument("--n-train", type=int, required=True)
    parser.add_argument("--n-test", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--common", default="", help="train flags every variant shares")
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "FLAGS"), required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kaggle-kit-levers"))
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.records.run_folder import RunDir
    from kaggle_kit.submissions.files import score

    comp, log = resolve(opts.competition), []
    data = opts.work / "data"
    if not (data / "answers.csv").is_file():
        run(["sample", comp.name, str(data), "--n-train", str(opts.n_train), "--n-test", str(opts.n_test)], log)
    rows = []
    for name, flags in opts.variant:
        scores, seconds = [], []
        for seed in opts.seeds:
            out, csv = opts.work / "runs" / f"{name}-seed{seed}", opts.work / "subs" / f"{name}-seed{seed}.csv"
            extra = [*shlex.split(opts.common), *shlex.split(flags), "--seed", str(seed)]
            if (out / "config.json").is_file():  # an earlier invocation's run: finished, or continued exactly
                run(["train", "--resume", str(out)], log, finished_ok=True)
            else:
                run(["train", comp.name, "--data-dir", str(data), "--out", str(out), *extra], log)
            seconds.append(sum(RunDir(out).history()["seconds"]))  # the epochs' own time, resumed or not
            run(["predict", str(out), "--out", str(csv)], log)
            scores.append(score(csv, data / "answers.csv", comp))
        rows.append({"variant": name, "flags": flags, "scores": scores, "train_s": seconds})
        print(f"{name}: {comp.metric.name} {sum(scores) / len(scores):.4f} {scores}", flush=True)
    table = [
        f"| variant | flags | hidden-test {comp.metric.name} (mean) | per seed {opts.seeds} | train s (mean) |",
        "| --- | --- | --- | --- | --- |",
    ] + [
        f"| {r['variant']} | `{r['flags'] or '-'}` | {sum(r['scores']) / len(r['scores']):.4f} | "
        f"{', '.join(f'{s:.4f}' for s in r['scores'])} | {sum(r['train_s']) / len(r['train_s']):.0f} |"
        for r in rows
    ]
    print("\n".join(table))
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"machine": machine(), "commands": log, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
