"""Images with tabular columns beside them (SIIM-ISIC's sex, age and body site, patient groups, AUC), through the
real entry points on a generated download in Kaggle's shape: `init` lists and declares the columns (and refuses a
bad one in one line), the run with them beats the same run on images alone, predict reads them from test.csv,
score agrees with scikit-learn, folds keep a patient whole, and a resumed run ends where an uninterrupted one does."""

import json
import re
import shutil
import zipfile

import pandas as pd
import pytest
import torch
from helpers import assert_one_line_error, run_cli
from sklearn.metrics import mean_squared_error, roc_auc_score

import kaggle_kit as kk
from kaggle_kit.competitions.registry import rediscover
from kaggle_kit.records.run_folder import RunDir

FEATURES = ["sex", "age_approx", "anatom_site_general_challenge"]
SIIM = """name = "siim"\nslug = "siim-mini"\ntitle = "SIIM-ISIC (generated)"\naliases = []\nmetric = "auc"
default_recipe = "tiny"\nfeatures = ["sex", "age_approx", "anatom_site_general_challenge"]
[files]\nlabel_file = "train.csv"\nsample_file = "sample_submission.csv"\nimage_ext = ".jpg"
[labels]\nid_column = "image_name"\nlabel_column = "target"\nid_kind = "text"\nclass_source = "declared"
classes = ["0", "1"]\ngroup_column = "patient_id"
[submission]\nkind = "binary"\npositive_class = "1"
[augmentations.none]\n[recipes.tiny]\narch = "test_resnet"\nimg_size = 24\naug = "none"
"""
FLAGS = ["Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage", "Human", "Occlusion",
         "Info", "Blur"]  # fmt: skip
PAW = f"""name = "paw"\nslug = "paw-mini"\ntitle = "Pawpularity (generated)"\naliases = []\nmetric = "rmse"
target = "regression"\ndefault_recipe = "tiny"\nfeatures = {json.dumps(FLAGS)}
[files]\nlabel_file = "train.csv"\nsample_file = "sample_submission.csv"\nimage_ext = ".jpg"
[labels]\nid_column = "Id"\nlabel_column = "Pawpularity"\nid_kind = "hex"\nclass_source = "labels"
value_range = [1, 100]\n[submission]\nkind = "label"
[augmentations.none]\n[recipes.tiny]\narch = "test_resnet"\nimg_size = 24\naug = "none"
"""
# enough steps for the small tabular branch to learn (AdamW); measured on a larger sample in benchmarks/bench_tabular.py
TRAIN = [
    *("--workers", "0", "--device", "cpu", "--batch-size", "16", "--epochs", "4", "--optimizer", "adamw"),
    *("--lr", "0.003", "--weight-decay", "0.01", "--val-fraction", "0.3", "--tta", "off", "--seed", "0"),
    "--no-analyze",
]

ONE_EPOCH = [*TRAIN[: TRAIN.index("--epochs")], "--epochs", "1", "--tta", "off", "--no-analyze"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabular-home")
    folder = root / "kaggle-kit" / "competitions"
    folder.mkdir(parents=True)
    (folder / "siim.toml").write_text(SIIM)
    (folder / "paw.toml").write_text(PAW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(root))
        rediscover()
        result = run_cli("sample", "siim", root / "data", "--n-train", "96", "--n-test", "24")
        assert result.returncode == 0, result.stderr
        yield root
    rediscover()


@pytest.fixture(scope="module")
def runs(home):
    """The same recipe and seed trained with the tabular columns and on the images alone."""
    made = {}
    for name, flag in (("with", "--tabular"), ("without", "--no-tabular")):
        out = home / f"run-{name}"
        result = run_cli("train", "siim", "--data-dir", home / "data", "--out", out, flag, *TRAIN)
        assert result.returncode == 0, result.stderr
        made[name] = out
    return made


def test_init_lists_the_columns_and_declares_features(home, tmp_path):
    data, out = home / "data", tmp_path / "siim2.toml"
    common = ("init", "siim-mini", "--data-dir", data, "--metric", "auc", "--name", "siim2", "--out", out)
    listed = run_cli(*common)
    assert listed.returncode == 0, listed.stderr
    line = next(s for s in listed.stdout.splitlines() if s.startswith("features:"))
    assert "also in test.csv: sex, age_approx, anatom_site_general_challenge" in line
    assert "in train.csv alone: diagnosis, benign_malignant" in line and "--features COL" in line
    unknown = run_cli(*common, "--force", "--features", "sex,age")
    assert_one_line_error(unknown, "--features age: train.csv has no such feature column")
    leaks = run_cli(*common, "--force", "--features", "sex,diagnosis")
    assert_one_line_error(leaks, "--features diagnosis: test.csv has no such column")
    # the Python API takes the list; the declaration keeps it, and the group column is inferred beside it
    made = kk.init("siim-mini", data, metric="auc", name="siim2", out=out, force=True, features=FEATURES)
    assert made.found.competition.features == tuple(FEATURES)
    text = out.read_text()
    assert 'features = ["sex", "age_approx", "anatom_site_general_challenge"]' in text
    assert 'group_column = "patient_id"' in text


def test_features_beat_the_images_alone_and_predict_reads_test_csv(home, runs):
    best = {name: RunDir(out).history()["val_metric"].max() for name, out in runs.items()}
    assert best["with"] > best["without"] + 0.05, best
    encoding = json.loads((runs["with"] / "tabular.json").read_text())
    kinds = {c["name"]: (c["kind"], c["indicator"]) for c in encoding["columns"]}
    assert kinds["age_approx"][0] == "numeric" and kinds["sex"][0] == "categorical"
    assert not (runs["without"] / "tabular.json").exists()

    written = home / "with.csv"
    result = run_cli("predict", runs["with"], "--data-dir", home / "data", "--out", written)
    assert result.returncode == 0, result.stderr
    scored = run_cli("score", written, "--answers", home / "data" / "answers.csv", "-c", "siim")
    assert scored.returncode == 0, scored.stderr
    shown = float(re.search(r"(\d+\.\d+) \[.+\] n=\d+ - higher is better", scored.stdout).group(1))
    answers, rows = pd.read_csv(home / "data" / "answers.csv"), pd.read_csv(written).set_index("image_name")
    assert shown == pytest.approx(roc_auc_score(answers["target"], rows.loc[answers["image_name"], "target"]), abs=1e-4)


def test_folds_keep_each_patient_whole_and_predict_the_group(home):
    out = home / "folds"
    result = run_cli("train", "siim", "--data-dir", home / "data", "--out", out, "--folds", "2", *ONE_EPOCH)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(home / "data" / "siim-mini.zip") as archive:
        patient = pd.read_csv(archive.open("train.csv")).set_index("image_name")["patient_id"]
    plan = json.loads((out / "folds.json").read_text())
    fold_of = pd.Series(plan["fold"], index=plan["ids"])
    assert plan["group_column"] == "patient_id"
    assert (fold_of.groupby(patient.loc[fold_of.index].to_numpy()).nunique() == 1).all()  # no patient in two folds
    for fold in (1, 2):
        assert (out / f"fold-{fold}" / "tabular.json").is_file()
    written = home / "folds.csv"
    result = run_cli("predict", out, "--data-dir", home / "data", "--out", written)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(written)) == 24


def test_resume_ends_where_the_uninterrupted_run_ends(runs, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(runs["with"], copy)
    # killed while writing the last epoch's checkpoint: last.pt torn, history.csv one epoch short; the resume falls
    # back to last.prev.pt (the epoch before) and trains the last epoch again, reading the run's own encoding
    (copy / "last.pt").write_bytes(b"torn")
    history = (copy / "history.csv").read_text().splitlines()
    (copy / "history.csv").write_text("\n".join(history[:-1]) + "\n")
    result = run_cli("train", "--resume", copy, "--no-analyze")
    assert result.returncode == 0, result.stderr
    ours, theirs = RunDir(copy), RunDir(runs["with"])
    columns = ["epoch", "train_loss", "val_loss", "val_metric"]
    pd.testing.assert_frame_equal(ours.history()[columns], theirs.history()[columns])
    a, b = ours.load_checkpoint("last")["model"], theirs.load_checkpoint("last")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_feature_missing_from_test_csv_is_refused_before_training(home):
    bad = home / "kaggle-kit" / "competitions" / "siimbad.toml"
    bad.write_text(SIIM.replace('name = "siim"', 'name = "siimbad"').replace('"sex", "age', '"diagnosis", "age'))
    rediscover()
    result = run_cli("train", "siimbad", "--data-dir", home / "data", "--out", home / "bad", *TRAIN)
    assert_one_line_error(result, "feature column 'diagnosis' is not in")
    assert "test.csv" in result.stderr and "drop it from features" in result.stderr
    bad.write_text(SIIM.replace('name = "siim"', 'name = "siimbad"').replace('"sex", "age', '"target", "age'))
    rediscover()  # a hand-written declaration feeding the model its own answer
    result = run_cli("train", "siimbad", "--data-dir", home / "data", "--out", home / "bad", *TRAIN)
    assert_one_line_error(result, "feature 'target' is the id or label column of train.csv: drop it from features")


def test_pawpularity_flags_go_from_train_csv_to_the_submission(home):
    """A regression target with PetFinder's 12 photo flags: trained, predicted from test.csv's flags, validated
    and scored as scikit-learn's RMSE scores the written file."""
    data, run, written = home / "paw", home / "paw-run", home / "paw.csv"
    assert run_cli("sample", "paw", data, "--n-train", "32", "--n-test", "8").returncode == 0
    result = run_cli("train", "paw", "--data-dir", data, "--out", run, *ONE_EPOCH)
    assert result.returncode == 0, result.stderr
    columns = json.loads((run / "tabular.json").read_text())["columns"]
    assert [c["name"] for c in columns] == FLAGS and {c["kind"] for c in columns} == {"numeric"}
    assert run_cli("predict", run, "--data-dir", data, "--out", written).returncode == 0
    assert run_cli("validate", written, "-c", "paw", "--data-dir", data).returncode == 0
    scored = run_cli("score", written, "--answers", data / "answers.csv", "-c", "paw")
    shown = float(re.search(r"(\d+\.\d+) \[.+\] n=\d+ - lower is better", scored.stdout).group(1))
    answers, rows = pd.read_csv(data / "answers.csv"), pd.read_csv(written).set_index("Id")
    expected = mean_squared_error(answers["Pawpularity"], rows.loc[answers["Id"], "Pawpularity"]) ** 0.5
    assert shown == pytest.approx(expected, abs=1e-4)


def test_package_with_onnx_refuses_a_model_with_columns(runs, tmp_path):
    """The ONNX export feeds the images alone: a tabular run's package for ONNX is refused before anything is
    built, naming the engine that works (predict --engine onnx falls back to torch with a note instead)."""
    out = tmp_path / "package"
    result = run_cli("package", runs["with"], "--engine", "onnx", "--owner", "someone", "--out", out)
    assert_one_line_error(result, "reads tabular columns", "--engine torch")
    assert not out.exists()
