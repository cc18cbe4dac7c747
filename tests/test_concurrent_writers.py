"""Two processes writing one thing at once: one ledger, one cache, one run folder. No record lost or duplicated,
no torn file; builders of one cache wait for the first and reuse it; two trainings into one run folder: one is
refused, in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fault_sweep import REPO, child_env
from helpers import assert_one_line_error

from kaggle_kit.core import faults
from kaggle_kit.submissions.ledger import Ledger

TRAIN = [
    *("--epochs", "2", "--arch", "test_resnet", "--img-size", "32", "--batch-size", "32"),
    *("--workers", "0", "--device", "cpu", "--aug", "none", "--seed", "3", "--tta", "off"),
]
APPENDS = 25


def python(code: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )


def test_two_writers_of_one_ledger_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "ledger.jsonl"
    code = (
        "import sys\nfrom kaggle_kit.submissions.ledger import Ledger\n"
        f"ledger = Ledger({str(path)!r})\n"
        f"for i in range({APPENDS}):\n"
        "    record = ledger.add('cifar10', f'{sys.argv[0]}-{i}.csv', '0' * 64, message=sys.argv[1])\n"
        "    ledger.update(record.id, kaggle_ref=i, status='PENDING')\n"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", code, name], env=child_env(tmp_path, {}), cwd=REPO) for name in "ab"
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * 2 * APPENDS and all(json.loads(line) for line in lines)  # serialised, none torn
    records = Ledger(path).records()
    assert sorted(r.message for r in records) == ["a"] * APPENDS + ["b"] * APPENDS
    assert len({r.id for r in records}) == 2 * APPENDS and all(r.status == "PENDING" for r in records)


def test_two_builders_of_one_cache_build_it_once(tiny_cifar, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_cifar, data, ignore=shutil.ignore_patterns(".kaggle-kit"))
    code = (
        "from kaggle_kit.competitions.registry import resolve\n"
        "from kaggle_kit.data.layout import open_layout\n"
        "from kaggle_kit.data.cache import load_images\n"
        f"cache = load_images(open_layout(resolve('cifar10'), {str(data)!r}), 'train', 32)\n"
        "print(len(cache.ids))\n"
    )
    logs = [tmp_path / f"writes-{n}.log" for n in range(2)]
    builders = [python(code, child_env(tmp_path, {faults.LOG_ENV: str(log)})) for log in logs]
    outputs = [b.communicate(timeout=300) for b in builders]
    assert [b.returncode for b in builders] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["90", "90"]
    built = [log.read_text().count("\tcache\t") if log.exists() else 0 for log in logs]
    assert sorted(built) == [0, 1]  # the second waited for the first and reused its cache
    caches = [p for p in (data / ".kaggle-kit" / "cache").iterdir() if p.name.startswith("train")]
    assert len(caches) == 1 and not [p for p in caches[0].parent.iterdir() if p.name.endswith(".building")]


def test_two_trainings_into_one_run_folder_one_is_refused_in_one_line(tiny_cifar, tmp_path):
    shutil.copytree(tiny_cifar, tmp_path / "data", ignore=shutil.ignore_patterns(".kaggle-kit"))
    args = ["train", "cifar10", "--data-dir", "data", "--out", "run", *TRAIN]
    both = [  # two fresh processes at once (the sweep's zygote runs one command at a time)
        subprocess.Popen(
            [sys.executable, "-m", "kaggle_kit", *args],
            cwd=tmp_path,
            env=child_env(tmp_path, {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    done = [p.communicate(timeout=600) for p in both]
    codes = sorted(p.returncode for p in both)
    assert codes[0] == 0 and codes[1] != 0, done
    refused = next(subprocess.CompletedProcess(p.args, p.returncode, *d) for p, d in zip(both, done) if p.returncode)
    assert_one_line_error(refused, "run")
    line = [x for x in refused.stderr.splitlines() if x.startswith("error:")][0]
    assert "being written by another kaggle-kit process" in line or "already holds a run" in line
    assert (tmp_path / "run" / "val_predictions.npz").is_file() and Path(tmp_path / "run" / "last.pt").is_file()
