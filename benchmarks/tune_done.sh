#!/usr/bin/env bash
# Issue 30's "Done when", run as a new user runs it (figures in benchmarks/RESULTS.md, "Issue 30 done-when"):
#   1. embedded  `tune dog_breed --space competitions/dog_breed/spaces/default.toml --trials 16` on a generated Dog
#                sample (64 px, no pretrained weights, 3 epochs a trial), `tune --report`, the best trial's
#                `train` command run again and its figure compared with the trial's
#   2. postgres  the same study by two worker processes against PostgreSQL (scripts/start-postgres.sh): the trials
#                counted by state with Optuna (16, none failed, none duplicated)
#   3. ray       `experiment PLAN` and `train --folds 2`, locally and with `--ray auto` on a `ray start` cluster:
#                the results and OOF logits compared bit for bit
#
#   bash benchmarks/tune_done.sh WORKDIR [embedded|postgres|ray|all]
#
# Environment: WORKERS (processes on the embedded study, default 1), TRIALS/IMG/EPOCHS (default 16, 64, 3: the
# issue's; smaller for a smoke run), ARCH (default: the recipe's), PG_IMG/PG_EPOCHS/PG_ARCH (the PostgreSQL study's
# cheaper settings, default 32 px, 2 epochs, test_resnet), KIT (default: this checkout's venv's kaggle-kit).
# The Ray part starts a head node with `ray start --head --num-cpus 2` when none is running and stops only the
# processes it started (never `ray stop`, which ends every Ray process of the machine).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mkdir -p "${1:?give a work folder}" && cd "$1" && pwd)"
PART="${2:-all}"
KIT="${KIT:-$REPO/.venv/bin/kaggle-kit}"
PY="$REPO/.venv/bin/python"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
SPACE="$REPO/competitions/dog_breed/spaces/default.toml"
CPU=(--device cpu --workers 0)
cd "$WORK"
[ -f data/dog-breed-identification.zip ] || "$KIT" sample dog_breed data
DOG=data/dog-breed-identification.zip

embedded() {
    local args=(tune dog_breed --space "$SPACE" --trials "${TRIALS:-16}" --data-dir "$DOG" --img-size "${IMG:-64}"
        --epochs "${EPOCHS:-3}" ${ARCH:+--arch "$ARCH"} --no-pretrained "${CPU[@]}")
    local pids=()
    for w in $(seq "${WORKERS:-1}"); do
        "$KIT" "${args[@]}" >"tune-$w.out" 2>"tune-$w.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    cat tune-1.out
    local study=runs/dog_breed/tune-default
    "$KIT" tune --report "$study"
    local best
    eval "best=($(<"$study/report/best_command.txt"))"  # shlex.join's quoting, read back as words
    "$KIT" "${best[@]:1}" --out best-again >best-again.out 2>best-again.err
    "$PY" - "$study" <<'EOF'
import collections, json, sys
from pathlib import Path
import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
import pandas as pd

study_dir = Path(sys.argv[1])
storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
study = optuna.load_study(study_name="default", storage=storage)
print("states:", dict(collections.Counter(t.state.name for t in study.trials)), "trials:", len(study.trials))
print("epochs trained:", sum(t.user_attrs.get("epochs") or 0 for t in study.trials))
best = study.best_trial
trial = pd.read_csv(study_dir / f"trial-{best.number:03d}" / "history.csv")["val_metric"].tolist()
again = pd.read_csv("best-again/history.csv")["val_metric"].tolist()
print(f"best trial {best.number}: {best.value!r}, per epoch {trial}")
print(f"its train command again: per epoch {again}, equal: {trial == again}")
for name in ("trials.csv", "trials.md", "best_command.txt", "history.png", "importances.png",
             "parallel_coordinates.png"):
    print("report:", name, (study_dir / "report" / name).stat().st_size, "bytes")
EOF
}

postgres() {
    KAGGLE_KIT_TUNE_STORAGE="$(bash "$REPO/scripts/start-postgres.sh")"
    export KAGGLE_KIT_TUNE_STORAGE  # read by `tune --storage`'s envvar: the password stays out of `ps`
    local study="done-$(date +%s)"
    local args=(tune dog_breed --space "$SPACE" --trials "${TRIALS:-16}" --study "$study" --data-dir "$DOG"
        --img-size "${PG_IMG:-32}" --epochs "${PG_EPOCHS:-2}" --arch "${PG_ARCH:-test_resnet}" --no-pretrained
        "${CPU[@]}")
    "$KIT" "${args[@]}" >pg-1.out 2>pg-1.err &
    local one=$!
    "$KIT" "${args[@]}" >pg-2.out 2>pg-2.err
    wait "$one"
    cat pg-1.out pg-2.out
    "$KIT" tune --report "runs/dog_breed/tune-$study"
    "$PY" - "$study" <<'EOF'
import collections, os, sys, warnings
import optuna

warnings.simplefilter("ignore")
study = optuna.load_study(study_name=sys.argv[1], storage=os.environ["KAGGLE_KIT_TUNE_STORAGE"])
print("states:", dict(collections.Counter(t.state.name for t in study.trials)), "trials:", len(study.trials))
print("numbers:", sorted(t.number for t in study.trials))
print("per worker:", dict(collections.Counter(t.user_attrs.get("worker") for t in study.trials)))
EOF
}

ray_part() {
    # a folder of its own: the kit refuses to unpack a second download into data/, which holds Dog's
    [ -f cifar/cifar-10.zip ] || "$KIT" sample cifar10 cifar --n-train 300 --n-test 50
    cat >cells.toml <<'EOF'
competition = "cifar10"
recipe = "paper"
seeds = 1

[overrides]
arch = "test_resnet"
img_size = 32
workers = 0
device = "cpu"
epochs = 2
tta = "off"

[grid]
schedule = ["constant", "cosine"]
EOF
    local before
    before=" $(pgrep -d ' ' -f '/ray/' || true) "
    if [ ! -f /tmp/ray/ray_current_cluster ]; then  # what `--ray auto` joins
        "$REPO/.venv/bin/ray" start --head --num-cpus 2 --include-dashboard=false >ray-start.log 2>&1
        for p in $(pgrep -f '/ray/' || true); do [[ "$before" == *" $p "* ]] || STARTED+=("$p"); done
    fi
    local folds=(cifar10 --data-dir cifar/cifar-10.zip --folds 2 --arch test_resnet --img-size 32 --epochs 2
        "${CPU[@]}" --tta off)
    "$KIT" experiment cells.toml --data-dir cifar/cifar-10.zip --out exp-local
    "$KIT" experiment cells.toml --data-dir cifar/cifar-10.zip --out exp-ray --ray auto
    "$KIT" train "${folds[@]}" --out folds-local
    "$KIT" train "${folds[@]}" --out folds-ray --ray auto
    "$PY" - <<'EOF'
import numpy as np, pandas as pd, torch
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.workflows.cross_validation import FoldGroup

a, b = pd.read_csv("exp-local/results.csv"), pd.read_csv("exp-ray/results.csv")
print("experiment val_metric local:", list(a["val_metric"]), "ray:", list(b["val_metric"]))
for cell in a["cell"]:
    x, y = (RunDir(f"{side}/{cell}/seed=0").load_checkpoint("last")["model"] for side in ("exp-local", "exp-ray"))
    print(cell, "weights bitwise equal:", all(torch.equal(x[k], y[k]) for k in x))
local, ray = FoldGroup("folds-local"), FoldGroup("folds-ray")
print("folds equal:", local.plan()["fold"] == ray.plan()["fold"],
      "OOF logits bitwise equal:", np.array_equal(local.oof().logits, ray.oof().logits),
      "OOF metric:", local.cv()["oof_metric"], ray.cv()["oof_metric"])
EOF
}

STARTED=()  # the Ray processes this script started: stopped at its end, whatever failed
stop_ray() {
    [ "${#STARTED[@]}" = 0 ] && return
    for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 20
    for p in "${STARTED[@]}"; do kill -9 "$p" 2>/dev/null || true; done  # gcs_server may outlive SIGTERM
    rm -f /tmp/ray/ray_current_cluster  # else every later `ray.init()` on this machine joins the dead cluster
}
trap stop_ray EXIT

case "$PART" in
embedded) embedded ;;
postgres) postgres ;;
ray) ray_part ;;
all) embedded && postgres && ray_part ;;
*) echo "unknown part $PART: embedded, postgres, ray or all" >&2 && exit 2 ;;
esac
