"""Issue 28's "done when": five downloads, each only a zip, through every command with no code, against a bare loop.

    .venv/bin/python benchmarks/bench_kinds_done.py [--shapes ranzcr pp2021 aptos whale paw] [--n-train 300]
        [--n-test 150] [--epochs 4] [--size 40] [--arch test_resnet] [--quick] [--json FILE]
        [--measure-only --seeds 3]

`--measure-only`: only the hidden-test measurement, per seed 0..N-1 on both sides: the kit's `train` and `predict`
(its fitted thresholds / cut points / new-class threshold, and again with the kind's fixed rule) and the bare loop
at the same seed, then the means over seeds and their ratio.

For each shape (kaggle-facts §10): `ranzcr` = RANZCR's one-hot label columns, several 1s a row, mean column-wise
ROC AUC; `pp2021` = Plant Pathology 2021's space-separated label sets, F1 over the sets; `aptos` = APTOS' grades
0-4, quadratic weighted kappa; `whale` = Humpback Whale's five ranked ids with a `new_whale` class never seen as
a class, MAP@5; `paw` = PetFinder's 1-100 Pawpularity with 12 photo flags in train.csv and test.csv, RMSE.
`kaggle-kit sample` writes the download with hidden answers from a declaration the user never sees; only the zip
is moved to a fresh folder, and the commands a user types run there as subprocesses: `init` (given only the
metric, plus `--features` for the flags), `train`, `train --folds 5`, `predict` (of both), `validate`, `score
RUN_DIR`, `score GROUP`, `score FILE --answers`, `ensemble` (the run and the fold group) and `package --rehearse`
(of the run: package takes one run). Every submission is then scored on the hidden answers here, with
scikit-learn's metric (MAP@5 by its definition, scikit-learn has none).

The bare loop reads the same unzipped images (OpenCV decode and resize), builds the architecture, stem and head
the kit's run recorded in its config.json with timm (one output per label or class, one for values and grades;
a 64-64 MLP over the standardised flags concatenated to the pooled features for `paw`), and trains issue 28's
bare recipe: AdamW lr 2e-3 wd 0.05, one-cycle, batch 64, no augmentation, the same epochs, on every training
image. Its answers take the textbook rule: sigmoid > 0.5 for label sets, rounded and clipped grades, new_whale
before the first class under p = 0.5. The kit trains its `init` default recipe at the same arch, size and
epochs. `--quick`: a tiny download and one epoch a step, a smoke check (its figures mean nothing); it still starts about
fifteen kaggle-kit processes a shape (2-4 minutes a shape on a shared 2-core machine), so no unit test runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import print_machine, table, write_json  # noqa: E402

# what `sample` needs beyond the shape; the user's declaration is `init`'s, never this one
COMMON = """[files]\nlabel_file = "train.csv"\nsample_file = "sample_submission.csv"\nimage_ext = ".jpg"
[augmentations.none]\n[recipes.generated]\narch = "test_resnet"
"""
FLAGS = [f"flag_{i}" for i in range(12)]
# name -> (the declaration kaggle-kit sample generates from, what the user tells init, Kaggle's metric name)
SHAPES = {
    "ranzcr": (
        """name = "ranzcr"\nslug = "ranzcr-done"\ntitle = "RANZCR (generated)"\naliases = []
metric = "auc"\ntarget = "multilabel"
[labels]\nid_column = "StudyInstanceUID"\nlabel_column = ""\nid_kind = "hex"\nclass_source = "sample_columns"
classes = ["ETT - Abnormal", "NGT - Normal", "CVC - Abnormal", "CVC - Normal"]\n[submission]\nkind = "probabilities"
""",
        ["--metric", "Mean Columnwise ROC AUC"],
    ),
    "pp2021": (
        """name = "pp2021"\nslug = "pp2021-done"\ntitle = "Plant Pathology 2021 (generated)"\naliases = []
metric = "Mean F1 Score"\ntarget = "multilabel"
[labels]\nid_column = "image"\nlabel_column = "labels"\nid_kind = "hex"\nclass_source = "declared"
classes = ["healthy", "rust", "scab", "powdery_mildew"]\n[submission]\nkind = "label"
""",
        ["--metric", "Mean F1 Score"],
    ),
    "aptos": (
        """name = "aptos"\nslug = "aptos-done"\ntitle = "APTOS (generated)"\naliases = []
metric = "Quadratic Weighted Kappa"\ntarget = "ordinal"
[labels]\nid_column = "id_code"\nlabel_column = "diagnosis"\nid_kind = "hex"\nclass_source = "declared"
classes = ["0", "1", "2", "3", "4"]\n[submission]\nkind = "label"
""",
        ["--metric", "Quadratic Weighted Kappa"],
    ),
    "whale": (
        """name = "whale"\nslug = "whale-done"\ntitle = "Humpback Whale (generated)"\naliases = []
metric = "MAP@5"\ntarget = "topk"
[labels]\nid_column = "Image"\nlabel_column = "Id"\nid_kind = "text"\nid_has_extension = true
class_source = "declared"\nnew_class = "new_whale"
classes = ["w_0a1b2c3", "w_1f2e3d4", "w_23a388d", "w_5e6f7a8", "w_9b5109b", "w_c0ffee1"]
[submission]\nkind = "label"\nk = 5
""",
        ["--metric", "MAP@5"],
    ),
    "paw": (
        f"""name = "paw"\nslug = "paw-done"\ntitle = "Pawpularity (generated)"\naliases = []
metric = "Root Mean Squared Error"\ntarget = "regression"\nfeatures = {json.dumps(FLAGS)}
[labels]\nid_column = "Id"\nlabel_column = "Pawpularity"\nid_kind = "hex"\nclass_source = "labels"
value_range = [1, 100]\n[submission]\nkind = "label"
""",
        ["--metric", "Root Mean Squared Error", "--features", ",".join(FLAGS)],
    ),
}
HIGHER = {"ranzcr": True, "pp2021": True, "aptos": True, "whale": True, "paw": False}
METRIC = {"ranzcr": "mean AUC", "pp2021": "F1 (samples)", "aptos": "QWK", "whale": "MAP@5", "paw": "RMSE"}


class Steps:
    """Each command a user types, run as a subprocess; its success, seconds and output tail kept for the table."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log, self.done = env, log, {}

    def __call__(self, step: str, *args) -> str | None:
        started = time.perf_counter()
        command = [sys.executable, "-m", "kaggle_kit", *map(str, args)]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        with self.log.open("a") as log:
            log.write(f"$ kaggle-kit {' '.join(map(str, args))}\n{result.stdout}{result.stderr}\n")
        ok = result.returncode == 0
        self.done[step] = {"ok": ok, "seconds": round(seconds, 1)}
        if not ok:
            self.done[step]["error"] = (result.stderr.strip().splitlines() or ["(no message)"])[-1][:300]
        print(f"  {step:<16} {'ok' if ok else 'FAILED'} {seconds:6.1f} s", flush=True)
        if not ok:
            print(f"    {self.done[step]['error']}", flush=True)
        return result.stdout if ok else None


# ------------------------------------------------------------------------------------------------ hidden score


def hidden_score(shape: str, comp, answers, written) -> float:
    """The submission `written` (a DataFrame) on the hidden `answers`, by scikit-learn where it has the metric."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score, f1_score, mean_squared_error, roc_auc_score

    rows = written.astype({written.columns[0]: str}).set_index(written.columns[0]).loc[answers.iloc[:, 0].astype(str)]
    classes = list(comp.declared_classes)
    if shape == "ranzcr":
        return float(roc_auc_score(answers[classes].to_numpy(int), rows[classes].to_numpy(float), average="macro"))
    if shape == "pp2021":

        def sets(column):
            return np.array([[int(c in str(s).split()) for c in classes] for s in column.fillna("")])

        return float(f1_score(sets(answers["labels"]), sets(rows["labels"]), average="samples", zero_division=0))
    if shape == "aptos":
        return float(cohen_kappa_score(answers["diagnosis"], rows["diagnosis"].astype(int), weights="quadratic"))
    if shape == "whale":  # MAP@5 has no scikit-learn form: a hit at rank r scores 1/r once
        hits = [str(p).split()[:5] for p in rows["Id"]]
        return float(np.mean([1 / (h.index(t) + 1) if t in h else 0.0 for t, h in zip(answers["Id"], hits)]))
    return float(np.sqrt(mean_squared_error(answers["Pawpularity"], rows["Pawpularity"].astype(float))))


# ------------------------------------------------------------------------------------------------ the bare loop


def bare_loop(shape: str, comp, download: Path, config: dict, epochs: int, seed: int = 0):
    """Issue 28's bare recipe on the same images, architecture, stem and head; returns its submission DataFrame."""
    import cv2
    import numpy as np
    import pandas as pd
    import torch

    torch.manual_seed(seed)
    unzipped = download.parent / f"{download.stem}-bare"
    with zipfile.ZipFile(download) as archive:
        archive.extractall(unzipped)
    size = config["recipe"]["img_size"]
    train = pd.read_csv(unzipped / "train.csv", dtype={comp.id_column: str})
    sample = pd.read_csv(unzipped / "sample_submission.csv", dtype={comp.id_column: str})
    ext = "" if comp.id_has_extension else comp.image_ext

    def images(folder: str, ids) -> torch.Tensor:
        def load(name):
            image = cv2.cvtColor(cv2.imread(str(unzipped / folder / f"{name}{ext}")), cv2.COLOR_BGR2RGB)
            return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)

        return torch.tensor(np.stack([load(i) for i in ids])).permute(0, 3, 1, 2).float() / 255

    if shape == "whale":  # the new class is no class: its images train nothing
        train = train[train["Id"] != comp.new_class]
    y, outputs = bare_truths(shape, comp, train)
    x, test = images(comp.train_dir, train[comp.id_column]), images(comp.test_dir, sample[comp.id_column])
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x, test = (x - mean) / std, (test - mean) / std
    if shape in ("aptos", "paw"):  # the value on a unit scale, as any regression loop standardises its target
        y_mean, y_std = y.mean(), y.std()
        y = (y - y_mean) / y_std
    tab = tab_test = None
    if shape == "paw":
        table_test = pd.read_csv(unzipped / "test.csv", dtype={comp.id_column: str}).set_index(comp.id_column)
        tab = torch.tensor(train[FLAGS].to_numpy(np.float32))
        tab_test = torch.tensor(table_test.loc[sample[comp.id_column], FLAGS].to_numpy(np.float32))
        t_mean, t_std = tab.mean(0), tab.std(0).clamp_min(1e-6)
        tab, tab_test = (tab - t_mean) / t_std, (tab_test - t_mean) / t_std
    model = BareModel(config["recipe"], outputs, tab.shape[1] if tab is not None else 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = epochs * ((len(x) + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(64):
            logits = model(x[batch], None if tab is None else tab[batch])
            loss = bare_loss(shape, logits, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        chunks = [(test[i : i + 128], None if tab is None else tab_test[i : i + 128]) for i in range(0, len(test), 128)]
        logits = torch.cat([model(a, b) for a, b in chunks])
    return bare_answers(shape, comp, sample, logits, None if shape not in ("aptos", "paw") else (y_mean, y_std))


def bare_truths(shape: str, comp, train):
    """(the training truths as the head's loss takes them, the head's outputs)."""
    import numpy as np
    import torch

    classes = list(comp.declared_classes)
    if shape == "ranzcr":
        return torch.tensor(train[classes].to_numpy(np.float32)), len(classes)
    if shape == "pp2021":
        return torch.tensor([[float(c in str(s).split()) for c in classes] for s in train["labels"]]), len(classes)
    if shape == "whale":
        return torch.tensor([classes.index(c) for c in train["Id"]]), len(classes)
    return torch.tensor(train[comp.label_column].to_numpy(np.float32)), 1


def bare_loss(shape: str, logits, truth):
    """BCE on sigmoid outputs for label sets, cross-entropy over the known classes, MSE on values and grades."""
    import torch.nn.functional as F

    if shape in ("ranzcr", "pp2021"):
        return F.binary_cross_entropy_with_logits(logits, truth)
    if shape == "whale":
        return F.cross_entropy(logits, truth)
    return F.mse_loss(logits[:, 0], truth)


def BareModel(recipe: dict, outputs: int, tabular: int):
    """timm's model as the run built it (arch, stem), with a plain tabular branch concatenated where there is one."""
    import timm
    import torch
    from torch import nn

    model = timm.create_model(recipe["arch"], num_classes=outputs, pretrained=False)
    if recipe.get("stem") == "cifar":  # a 3x3 stride-1 convolution and no max-pool, as the kit's small-image stem
        first = model.conv1
        model.conv1 = nn.Conv2d(3, first.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()

    class Joined(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = model
            if tabular:
                model.reset_classifier(0)
                self.branch = nn.Sequential(nn.Linear(tabular, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
                self.head = nn.Linear(model.num_features + 64, outputs)

        def forward(self, images, columns):
            if columns is None:
                return self.backbone(images)
            return self.head(torch.cat([self.backbone(images), self.branch(columns)], 1))

    return Joined()


def bare_answers(shape: str, comp, sample, logits, unit):
    """The textbook rule from the bare loop's outputs to the submission's form."""
    import numpy as np

    classes, out = list(comp.declared_classes), sample[[comp.id_column]].copy()
    if shape == "ranzcr":
        out[classes] = logits.sigmoid().numpy()
    elif shape == "pp2021":
        on = logits.sigmoid().numpy() > 0.5
        out["labels"] = [" ".join(c for c, o in zip(classes, row) if o) for row in on]
    elif shape == "whale":
        probs = logits.softmax(1).numpy()
        ranked = []
        for row in probs:
            order = [classes[j] for j in np.argsort(-row)]
            under = next((r for r, j in enumerate(np.argsort(-row)) if row[j] < 0.5), len(order))
            ranked.append(" ".join((order[:under] + [comp.new_class] + order[under:])[:5]))
        out["Id"] = ranked
    else:
        values = (logits[:, 0] * unit[1] + unit[0]).numpy()
        if shape == "aptos":
            out["diagnosis"] = np.clip(np.rint(values), 0, len(classes) - 1).astype(int)
        else:
            out["Pawpularity"] = np.clip(values, 1, 100)
    return out


# ------------------------------------------------------------------------------------------------ one shape


def generate(shape: str, work: Path, args) -> tuple[object, Path, Path]:
    """The download as Kaggle's client saves it (only the zip, in a fresh folder) and the hidden answers beside
    none of it; the declaration it was generated from stays in a config folder the user's commands never read."""
    config = work / "generator" / "kaggle-kit" / "competitions"
    config.mkdir(parents=True, exist_ok=True)
    head = f'default_recipe = "generated"\nnative_size = {args.size}\n'
    (config / f"{shape}.toml").write_text(head + SHAPES[shape][0] + COMMON)
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "generator"), "PYTHONPATH": str(REPO)}
    generated = work / f"{shape}-generated"
    command = [sys.executable, "-m", "kaggle_kit", "sample", shape, generated, "--n-train", args.n_train]
    command += ["--n-test", args.n_test, "--seed", 3]
    subprocess.run(list(map(str, command)), env=env, check=True, capture_output=True)
    download = work / f"{shape}-download"
    download.mkdir()
    zipped = next(generated.glob("*.zip"))
    shutil.move(zipped, download / zipped.name)
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(work / "generator")
    try:
        from kaggle_kit.competitions.registry import rediscover, resolve

        rediscover()
        comp = resolve(shape)
    finally:
        os.environ.pop("XDG_CONFIG_HOME") if saved is None else os.environ.__setitem__("XDG_CONFIG_HOME", saved)
        rediscover()
    return comp, download / zipped.name, generated / "answers.csv"


def measure(shape: str, work: Path, args) -> dict:
    import pandas as pd

    print(f"{shape}:", flush=True)
    comp, download, answers_csv = generate(shape, work, args)
    answers = pd.read_csv(answers_csv, dtype={comp.id_column: str})
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "user"), "PYTHONPATH": str(REPO)}
    kit = Steps(env, work / f"{shape}.log")
    name, data = f"{shape}_user", download.parent
    run, group, out = work / f"{shape}-run", work / f"{shape}-folds", work / f"{shape}-out"
    out.mkdir()
    size = ["--arch", args.arch, "--img-size", args.size, "--no-pretrained", "--device", "cpu", "--workers", 0]
    size += ["--epochs", args.epochs, "--quiet"]
    kit("init", "init", comp.slug, "--data-dir", data, "--name", name, *SHAPES[shape][1])
    kit("train", "train", name, "--data-dir", data, "--out", run, *size)
    kit("train --folds 5", "train", name, "--data-dir", data, "--out", group, "--folds", 5, *size)
    kit("predict run", "predict", run, "--data-dir", data, "--out", out / "run.csv", "--device", "cpu")
    kit("predict folds", "predict", group, "--data-dir", data, "--out", out / "folds.csv", "--device", "cpu")
    kit("validate", "validate", out / "run.csv", "-c", name, "--data-dir", data)
    kit("score RUN_DIR", "score", run, "--device", "cpu")
    kit("score GROUP", "score", group)
    kit("score FILE", "score", out / "run.csv", "--answers", answers_csv, "-c", name)
    kit("ensemble", "ensemble", run, group, "--data-dir", data, "--out", out / "ensemble.csv", "--device", "cpu")
    kit("package --rehearse", "package", run, "--out", work / f"{shape}-package", "--rehearse",
        "--data-dir", data, "--owner", "someone")  # fmt: skip
    row = {"shape": shape, "metric": METRIC[shape], "higher is better": HIGHER[shape]}
    for part in ("run", "folds", "ensemble"):
        written = out / f"{part}.csv"
        row[f"kit {part}"] = hidden_score(shape, comp, answers, pd.read_csv(written)) if written.is_file() else None
    started = time.perf_counter()
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
    recipe = {"recipe": {"arch": args.arch, "img_size": args.size, "stem": None}} if config is None else config
    row["bare"] = hidden_score(shape, comp, answers, bare_loop(shape, comp, download, recipe, args.epochs))
    row["bare s"] = round(time.perf_counter() - started, 1)
    kit_score, bare = row["kit run"], row["bare"]
    if kit_score is not None:  # kit over bare where higher is better, bare over kit for an error: >= 0.95 meets
        ratio = kit_score / bare if HIGHER[shape] else bare / kit_score
        row["ratio"], row["within 5%"] = ratio, ratio >= 0.95
    row["commands"] = kit.done
    row["all commands ok"] = all(step["ok"] for step in kit.done.values())
    return row


def predict_fixed(kit: Steps, run: Path, data: Path, out: Path) -> None:
    """The run's submission with its fit emptied: the kind's fixed rule (0.5 for label sets, rounding at .5 for
    grades, no new class for rankings). A copy of the run with `target_fit.fitted` cleared, so predict neither
    applies the fit nor fits again, and the same network and views write the other submission."""
    fixed = run.parent / f"{run.name}-fixed"
    shutil.copytree(run, fixed, dirs_exist_ok=True)
    config = json.loads((fixed / "config.json").read_text())
    if config.get("target_fit"):
        config["target_fit"]["fitted"] = {}
        (fixed / "config.json").write_text(json.dumps(config, indent=1))
    kit("predict fixed", "predict", fixed, "--data-dir", data, "--out", out, "--device", "cpu")
    shutil.rmtree(fixed, ignore_errors=True)


def measure_only(shape: str, work: Path, args) -> list[dict]:
    """Only the hidden-test measurement, one row a seed: the kit's `train` + `predict` (with its fit and with the
    fixed rule) and the bare loop at the same seed; `init` once a shape. No folds, ensemble or package."""
    import pandas as pd

    print(f"{shape}:", flush=True)
    comp, download, answers_csv = generate(shape, work, args)
    answers = pd.read_csv(answers_csv, dtype={comp.id_column: str})
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "user"), "PYTHONPATH": str(REPO)}
    kit, name, data = Steps(env, work / f"{shape}.log"), f"{shape}_user", download.parent
    kit("init", "init", comp.slug, "--data-dir", data, "--name", name, *SHAPES[shape][1])
    size = ["--arch", args.arch, "--img-size", args.size, "--no-pretrained", "--device", "cpu", "--workers", 0]
    rows = []
    for seed in range(args.seeds):
        run, out = work / f"{shape}-run-{seed}", work / f"{shape}-out-{seed}"
        out.mkdir()
        started = time.perf_counter()
        kit("train", "train", name, "--data-dir", data, "--out", run, *size, "--epochs", args.epochs, "--seed", seed,
            "--quiet")  # fmt: skip
        kit("predict", "predict", run, "--data-dir", data, "--out", out / "run.csv", "--device", "cpu")
        predict_fixed(kit, run, data, out / "fixed.csv")
        row = {"shape": shape, "metric": METRIC[shape], "seed": seed, "kit s": round(time.perf_counter() - started)}
        for part, column in (("run", "kit"), ("fixed", "kit fixed rule")):
            written = out / f"{part}.csv"
            row[column] = hidden_score(shape, comp, answers, pd.read_csv(written)) if written.is_file() else None
        config = json.loads((run / "config.json").read_text())
        row["kit fit"] = (config.get("target_fit") or {}).get("fitted")
        started = time.perf_counter()
        bare = bare_loop(shape, comp, download, config, args.epochs, seed)
        row["bare"] = hidden_score(shape, comp, answers, bare)
        row["bare s"] = round(time.perf_counter() - started)
        print(table([row], ["shape", "seed", "kit", "kit fixed rule", "bare", "kit s", "bare s"]), flush=True)
        rows.append(row)
    return rows


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row a shape: the seeds' means and the ratio of means (kit / bare, or bare / kit for an error)."""
    import numpy as np

    means = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        mine = [r for r in rows if r["shape"] == shape and r["kit"] is not None]
        if not mine:
            continue
        row = {"shape": shape, "metric": METRIC[shape], "seeds": len(mine)}
        for column in ("kit", "kit fixed rule", "bare"):
            row[column] = float(np.mean([r[column] for r in mine]))
        row["ratio"] = row["kit"] / row["bare"] if HIGHER[shape] else row["bare"] / row["kit"]
        row["within 5%"] = row["ratio"] >= 0.95
        means.append(row)
    return means


def main_measure_only(args, info, work: Path) -> None:
    rows = []
    for shape in args.shapes:
        rows += measure_only(shape, work, args)
        write_json(args.json, {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                               "means": mean_rows(rows)})  # fmt: skip
    print(table(mean_rows(rows), ["shape", "metric", "seeds", "kit", "kit fixed rule", "bare", "ratio", "within 5%"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=40, help="the images' side and the training size")
    parser.add_argument("--arch", default="test_resnet", help="timm architecture of both loops, from scratch")
    parser.add_argument("--work", type=Path, help="keep the downloads, runs and logs here (default: a temp folder)")
    parser.add_argument("--quick", action="store_true", help="a tiny download and one epoch: a smoke check")
    parser.add_argument("--json")
    parser.add_argument(
        "--measure-only", action="store_true", help="only train + predict + score, both sides, per seed"
    )
    parser.add_argument("--seeds", type=int, default=1, help="with --measure-only: seeds 0..N-1 on both sides")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.size = 40, 10, 1, 24
    info = print_machine("issue 28 done-when: five downloads end to end against a bare loop")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-kinds-done-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work} (each shape's commands and output in <shape>.log)", flush=True)
    if args.measure_only:
        return main_measure_only(args, info, work)
    columns = ["shape", "metric", "kit run", "kit folds", "kit ensemble", "bare", "ratio", "within 5%"]
    rows = []
    for shape in args.shapes:  # each shape's row printed and written as it ends: a long run keeps what it made
        rows.append(measure(shape, work, args))
        print(table(rows[-1:], [*columns, "all commands ok"]), flush=True)
        write_json(args.json, {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    print(table(rows, [*columns, "all commands ok"]))
    failed = {r["shape"]: {s: c["error"] for s, c in r["commands"].items() if not c["ok"]} for r in rows}
    print("failed commands:", json.dumps({k: v for k, v in failed.items() if v}, indent=1) or "none")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
