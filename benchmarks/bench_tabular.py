"""Images with tabular columns: the same run with the declared columns and on the images alone (issue 28).

    .venv/bin/python benchmarks/bench_tabular.py [--shapes siim paw] [--n-train 600] [--epochs 10] [--seeds 3]
                                                 [--arch resnet18] [--json FILE] [--quick]

For each shape, `kaggle-kit sample` writes a generated download whose answer depends partly on the image and partly
on the columns (competitions/tabular_samples.py): `siim` = SIIM-ISIC's train.csv/test.csv with sex, age and body
site (blanks included), patients as groups, a two-class target scored by ROC AUC; `paw` = PetFinder's 12 photo
flags and a 1-100 Pawpularity scored by RMSE. Both variants train the same recipe with the same seeds through the
Python API (`kk.train(..., tabular=True|False)`), predict the hidden test split (features read from test.csv) and
are scored on its answers by the competition's metric; the table gives the mean and spread over the seeds.
`--quick` (one tiny run each, about ten seconds) only checks that every part runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import print_machine, table, write_json  # noqa: E402

COMMON = """[files]\nlabel_file = "train.csv"\nsample_file = "sample_submission.csv"\nimage_ext = ".jpg"
[augmentations.none]\n[recipes.bench]\narch = "resnet18"\nimg_size = 32\naug = "none"
"""
SHAPES = {
    "siim": """name = "siim"\nslug = "siim-bench"\ntitle = "SIIM-ISIC (generated)"\naliases = []\nmetric = "auc"
features = ["sex", "age_approx", "anatom_site_general_challenge"]
[labels]\nid_column = "image_name"\nlabel_column = "target"\nid_kind = "text"\nclass_source = "declared"
classes = ["0", "1"]\ngroup_column = "patient_id"\n[submission]\nkind = "binary"\npositive_class = "1"
""",
    "paw": """name = "paw"\nslug = "paw-bench"\ntitle = "Pawpularity (generated)"\naliases = []
metric = "Root Mean Squared Error"\ntarget = "regression"
features = ["Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage", "Human",
  "Occlusion", "Info", "Blur"]
[labels]\nid_column = "Id"\nlabel_column = "Pawpularity"\nid_kind = "hex"\nclass_source = "labels"
value_range = [1, 100]\n[submission]\nkind = "label"
""",
}
# AdamW with a one-cycle schedule: the small tabular branch and the regression head both need a few hundred steps
RECIPE = dict(optimizer="adamw", lr=3e-3, weight_decay=0.01, schedule="onecycle", batch_size=32, tta="off")


def measure(kk, shape: str, root: Path, args, seed: int, tabular: bool) -> dict:
    data = root / f"{shape}-data"
    run = root / f"{shape}-{'with' if tabular else 'without'}-{seed}"
    started = time.perf_counter()
    extra = dict(arch=args.arch, img_size=24 if args.quick else 32)
    kk.train(
        shape, data_dir=data, out=run, epochs=args.epochs, seed=seed, tabular=tabular, workers=0,
        device=args.device, analyze=False, **RECIPE, **extra,
    )  # fmt: skip
    written = root / f"{run.name}.csv"
    kk.predict(run, data, out=written, device=args.device)
    score = float(kk.score(written, data / "answers.csv", competition=shape))
    return {"shape": shape, "columns": "with" if tabular else "images alone", "seed": seed, "score": score,
            "seconds": time.perf_counter() - started}  # fmt: skip


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        for columns in ("with", "images alone"):
            scores = [r["score"] for r in rows if r["shape"] == shape and r["columns"] == columns]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            out.append({"shape": shape, "columns": columns, "seeds": len(scores),
                        "hidden test": f"{statistics.mean(scores):.4f} +- {spread:.4f}"})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="resnet18", help="timm architecture of both variants, from scratch")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="one tiny run per variant: checks that every part runs")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.seeds, args.device, args.arch = 48, 12, 1, 1, "cpu", "test_resnet"
    print_machine("images with tabular columns: with them and on the images alone")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        declarations = root / "config" / "kaggle-kit" / "competitions"
        declarations.mkdir(parents=True)
        for shape in args.shapes:
            (declarations / f"{shape}.toml").write_text('default_recipe = "bench"\n' + SHAPES[shape] + COMMON)
        import kaggle_kit as kk
        from kaggle_kit.competitions.registry import rediscover

        saved = os.environ.get("XDG_CONFIG_HOME")
        os.environ["XDG_CONFIG_HOME"] = str(root / "config")  # where the generated declarations are found
        rediscover()
        rows = []
        try:
            for shape in args.shapes:
                kk.sample(shape, root / f"{shape}-data", n_train=args.n_train, n_test=args.n_test, seed=0)
                for seed in range(args.seeds):
                    for tabular in (True, False):
                        rows.append(measure(kk, shape, root, args, seed, tabular))
                        print(f"{shape} seed {seed} {rows[-1]['columns']}: {rows[-1]['score']:.4f}", flush=True)
        finally:  # run in a test's process too: leave its declarations as they were
            if saved is None:
                os.environ.pop("XDG_CONFIG_HOME")
            else:
                os.environ["XDG_CONFIG_HOME"] = saved
            rediscover()
    print(table(summary(rows), ["shape", "columns", "seeds", "hidden test"]))
    write_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows})


if __name__ == "__main__":
    main()
