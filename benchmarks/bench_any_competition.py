"""A competition `init`ed from its zip, trained and scored, against a bare loop on the same images (issue 16).

    .venv/bin/python benchmarks/bench_any_competition.py [--shapes cancer seedlings] [--epochs 8] [--json FILE]

For each shape (declared as in tests/workflows/test_any_competition.py:
`cancer` = 32x32 .tif, binary target, ids with their
extension, ROC AUC; `seedlings` = one folder per class, photos of varied size, micro F1), `kaggle-kit sample` writes
a 400-image download with a hidden 200-image test split, then the commands a user types: `init`, `train`,
`predict`, `score FILE --answers`. The bare loop trains the same architecture at the same size for the same epochs
on the same images (OpenCV decode, resize, flip, SGD + one-cycle) with no kaggle-kit code, and is scored with
scikit-learn on the same answers.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from common import print_machine, table, write_json  # noqa: E402

# shape -> (init flags, train flags, the arch, image size and stem of both loops): cancer trains init's small-image
# recipe (resnet18, CIFAR stem, 32 px); seedlings its photo recipe without pretrained weights at 64 px
SHAPES = {
    "cancer": (["--metric", "auc"], [], ("resnet18", 32, "cifar")),
    "seedlings": (
        ["--metric", "f1-micro"],
        ["--arch", "resnet18", "--img-size", "64", "--no-pretrained"],
        ("resnet18", 64, "imagenet"),
    ),
}


def kit(*args, env) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "kaggle_kit", *map(str, args)], env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"kaggle-kit {' '.join(map(str, args))} failed: {result.stderr[-500:]}")
    return result.stdout


def bare_loop(data: Path, arch: str, size: int, stem: str, epochs: int) -> float:
    """The same images, model and epochs in forty lines of plain torch; the metric by scikit-learn."""
    import cv2
    import numpy as np
    import pandas as pd
    import timm
    import torch
    from sklearn.metrics import f1_score, roc_auc_score

    torch.manual_seed(0)
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str)
    id_column, label_column = sample.columns[:2]

    def load(path: Path) -> np.ndarray:
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)

    labels_csv = data / "train_labels.csv"
    if labels_csv.is_file():
        labels = pd.read_csv(labels_csv, dtype=str)
        files, names = [data / "train" / i for i in labels[id_column]], labels[label_column].tolist()
    else:
        files = sorted((data / "train").glob("*/*"))
        names = [f.parent.name for f in files]
    classes = sorted(set(names))
    x = torch.tensor(np.stack([load(f) for f in files])).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor([classes.index(n) for n in names])
    test = (
        torch.tensor(np.stack([load(data / "test" / i) for i in sample[id_column]])).permute(0, 3, 1, 2).float() / 255
    )
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x, test = (x - mean) / std, (test - mean) / std
    model = timm.create_model(arch, num_classes=len(classes))
    if stem == "cifar":  # a 3x3 convolution and no max-pool, as kaggle-kit's small-image recipe has
        model.conv1, model.maxpool = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False), torch.nn.Identity()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.05, total_steps=epochs * ((len(x) + 63) // 64))
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(64):
            images = x[batch]
            flip = torch.rand(len(images)) < 0.5
            images[flip] = images[flip].flip(3)
            loss = torch.nn.functional.cross_entropy(model(images), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        probs = torch.cat([model(b).softmax(1) for b in test.split(128)]).numpy()
    answers = pd.read_csv(data / "answers.csv", dtype=str).set_index(id_column)[label_column]
    scored = sample[id_column].isin(answers.index).to_numpy()
    truth = answers.loc[sample[id_column][scored]].to_numpy()
    if len(classes) == 2:
        return float(roc_auc_score(truth == classes[1], probs[scored, 1]))
    return float(f1_score(truth, np.array(classes)[probs[scored].argmax(1)], average="micro"))


def main() -> None:
    from test_any_competition import _toml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--json")
    args = parser.parse_args()
    info = print_machine("any competition: init -> train -> predict -> score, against a bare loop")
    work = Path(tempfile.mkdtemp(prefix="bench-any-"))
    folder = work / "config" / "kaggle-kit" / "competitions"
    folder.mkdir(parents=True)
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config"), "PYTHONPATH": str(REPO)}
    rows = []
    for shape in args.shapes:
        (folder / f"{shape}.toml").write_text(_toml(shape))
        data, run = work / shape, work / f"{shape}-run"
        kit("sample", shape, data, "--n-train", 400, "--n-test", 200, "--seed", 3, env=env)
        slug = re.search(r'slug = "([^"]+)"', _toml(shape)).group(1)
        init_flags, train_flags, (arch, size, stem) = SHAPES[shape]
        kit("init", slug, "--data-dir", data, "--name", f"{shape}_init", *init_flags, env=env)
        start = time.perf_counter()
        kit("train", f"{shape}_init", "--data-dir", data, "--out", run, "--epochs", args.epochs, *train_flags, env=env)
        kit("predict", run, "--data-dir", data, "--out", work / f"{shape}.csv", env=env)
        seconds = time.perf_counter() - start
        said = kit(
            "score", work / f"{shape}.csv", "--answers", data / "answers.csv", "--competition", f"{shape}_init", env=env
        )
        metric, figure = re.match(r"(.+?) (-?[\d.]+)(?: \[| - )", said).groups()  # `NAME 0.6 [lo, hi] n=N - ...`
        start = time.perf_counter()
        bare = bare_loop(data, arch, size, stem, args.epochs)
        rows.append(
            {
                "shape": shape,
                "metric": metric,
                "kaggle-kit": float(figure),
                "bare loop": bare,
                "kaggle-kit s": seconds,
                "bare s": time.perf_counter() - start,
            }
        )
        print(table(rows[-1:], list(rows[-1])), flush=True)
    print(table(rows, list(rows[0])))
    write_json(args.json, {"machine": info, "epochs": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
