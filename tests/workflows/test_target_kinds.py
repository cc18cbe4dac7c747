"""Targets other than one label per image, through the CLI on generated downloads in their Kaggle shapes:
`sample` -> `train` -> `predict` -> `validate` (and its refusal of the wrong form) -> `score`, checked against
scikit-learn on the written file and the hidden answers, and a 2-fold group to its blended submission."""

import re

import numpy as np
import pandas as pd
import pytest
from helpers import TINY_CPU_ARGS, assert_one_line_error, run_cli
from sklearn.metrics import cohen_kappa_score, f1_score, mean_squared_error, roc_auc_score

from kaggle_kit.competitions.registry import rediscover

COMMON = """
[files]
label_file = "train.csv"
sample_file = "sample_submission.csv"
image_ext = ".jpg"
[augmentations.none]
[recipes.tiny]
arch = "test_resnet"
img_size = 32
aug = "none"
"""

DECLARATIONS = {
    # RANZCR CLiP: one-hot label columns, several 1s a row, mean column-wise AUC
    "ranzcr": """name = "ranzcr"\nslug = "ranzcr-mini"\ntitle = "RANZCR (generated)"\naliases = []
metric = "Mean Columnwise ROC AUC"\ntarget = "multilabel"
[labels]\nid_column = "StudyInstanceUID"\nlabel_column = ""\nid_kind = "hex"\nclass_source = "sample_columns"
classes = ["ETT - Abnormal", "NGT - Normal", "CVC - Abnormal"]\n[submission]\nkind = "probabilities"
""",
    # Plant Pathology 2021: space-separated label sets, mean F1 over the sets
    "pp2021": """name = "pp2021"\nslug = "pp2021-mini"\ntitle = "Plant Pathology 2021 (generated)"\naliases = []
metric = "Mean F1 Score"\ntarget = "multilabel"
[labels]\nid_column = "image"\nlabel_column = "labels"\nid_kind = "hex"\nclass_source = "declared"
classes = ["healthy", "rust", "scab"]\n[submission]\nkind = "label"
""",
    # APTOS 2019: grades 0-4, QWK, trained as regression with fitted cut points
    "aptos": """name = "aptos"\nslug = "aptos-mini"\ntitle = "APTOS (generated)"\naliases = []
metric = "Quadratic Weighted Kappa"\ntarget = "ordinal"
[labels]\nid_column = "id_code"\nlabel_column = "diagnosis"\nid_kind = "hex"\nclass_source = "declared"
classes = ["0", "1", "2", "3", "4"]\n[submission]\nkind = "label"
""",
    # PetFinder Pawpularity: a 1-100 score per photo, RMSE
    "paw": """name = "paw"\nslug = "paw-mini"\ntitle = "Pawpularity (generated)"\naliases = []
metric = "Root Mean Squared Error"\ntarget = "regression"
[labels]\nid_column = "Id"\nlabel_column = "Pawpularity"\nid_kind = "hex"\nclass_source = "labels"
value_range = [1, 100]\n[submission]\nkind = "label"
""",
    # Humpback Whale: up to 5 ranked ids per image, MAP@5, new_whale inserted at a fitted threshold
    "whale": """name = "whale"\nslug = "whale-mini"\ntitle = "Humpback Whale (generated)"\naliases = []
metric = "MAP@5"\ntarget = "topk"
[labels]\nid_column = "Image"\nlabel_column = "Id"\nid_kind = "text"\nid_has_extension = true\nclass_source = "declared"
classes = ["w_0a1b2c3", "w_1f2e3d4", "w_23a388d", "w_5e6f7a8", "w_9b5109b", "w_c0ffee1"]\nnew_class = "new_whale"
[submission]\nkind = "label"\nk = 5
""",
}
TRAIN = [*TINY_CPU_ARGS, "--epochs", "2", "--lr", "0.01"]


def sklearn_score(name: str, answers: pd.DataFrame, written: pd.DataFrame) -> float:
    rows = written.set_index(written.columns[0]).loc[answers.iloc[:, 0]]
    if name == "ranzcr":
        return roc_auc_score(answers.iloc[:, 1:].to_numpy(int), rows.to_numpy(float), average="macro")
    if name == "pp2021":
        labels = ["healthy", "rust", "scab"]

        def sets(column):
            return np.array([[int(c in str(s).split()) for c in labels] for s in column])

        return f1_score(sets(answers["labels"]), sets(rows["labels"]), average="samples", zero_division=0)
    if name == "aptos":
        return cohen_kappa_score(answers["diagnosis"], rows["diagnosis"].astype(int), weights="quadratic")
    if name == "whale":  # MAP@5 has no scikit-learn form: the definition, a hit at rank r scoring 1/r once
        hits = [str(p).split()[:5] for p in rows["Id"]]
        return np.mean([1 / (h.index(t) + 1) if t in h else 0.0 for t, h in zip(answers["Id"], hits)])
    return np.sqrt(mean_squared_error(answers["Pawpularity"], rows["Pawpularity"]))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("targets-home")
    folder = root / "kaggle-kit" / "competitions"
    folder.mkdir(parents=True)
    for name, text in DECLARATIONS.items():
        (folder / f"{name}.toml").write_text('default_recipe = "tiny"\n' + text + COMMON)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(root))
        rediscover()
        yield root
    rediscover()


class Runs:
    """Each declared shape's generated download, trained once and predicted, on first use."""

    def __init__(self, root):
        self.root, self.done, self.trained = root, set(), {}

    def __call__(self, name: str):
        data, run, written = self.root / name, self.root / f"{name}-run", self.root / f"{name}.csv"
        if name not in self.done:
            result = run_cli("sample", name, data, "--n-train", "48", "--n-test", "16")
            assert result.returncode == 0, result.stderr
            result = run_cli("train", name, "--data-dir", data, "--out", run, *TRAIN)
            assert result.returncode == 0, result.stderr
            self.trained[name] = result.stdout
            result = run_cli("predict", run, "--data-dir", data, "--out", written)
            assert result.returncode == 0, result.stderr
            self.done.add(name)
        return data, run, written


@pytest.fixture(scope="module")
def runs(home):
    return Runs(home)


@pytest.mark.parametrize("name", list(DECLARATIONS))
def test_sample_train_predict_validate_score(runs, name):
    data, run, written = runs(name)
    assert run_cli("validate", written, "-c", name, "--data-dir", data).returncode == 0
    result = run_cli("score", written, "--answers", data / "answers.csv", "-c", name)
    assert result.returncode == 0, result.stderr
    shown = float(re.search(r"(-?\d+\.\d+) \[.+\] n=\d+ - (higher|lower) is better", result.stdout).group(1))
    expected = sklearn_score(name, pd.read_csv(data / "answers.csv"), pd.read_csv(written))
    assert shown == pytest.approx(expected, abs=1e-4), result.stdout


@pytest.mark.parametrize("name", ["pp2021", "aptos", "whale"])
def test_the_fit_after_training_is_cross_fitted_and_stored(runs, name):
    """The printed validation figure is the cross-fitted one (never a fit scored on the images it saw), with its
    interval and the default's figure beside it; config.json keeps what predict applies."""
    import json

    _, run, _ = runs(name)
    printed = runs.trained[name]
    stored = json.loads((run / "config.json").read_text())["target_fit"]
    assert stored["cross_fitted"] and stored["interval"]["n"] == stored["images"]
    assert stored["used"] == bool(stored["fitted"])
    assert "optimistic" not in printed and f"{stored['metric_default']:.4f}" in printed
    said = "cross-fitted over 5 parts, refitted on all for predict" if stored["used"] else "not used: cross-fitted"
    assert said in printed and re.search(r"\[-?\d\.\d+, -?\d\.\d+\] n=\d+", printed), printed
    assert re.search(r"test-time augmentation (on|off) \(validation", printed), printed


WRONG_FORM = {
    "ranzcr": (lambda f: f.assign(**{"NGT - Normal": 1.5}), "no probability in [0, 1]"),
    "pp2021": (lambda f: f.assign(labels="rust frog"), "has label 'frog', not one of the 3 labels"),
    "aptos": (lambda f: f.assign(diagnosis=2.5), "grade outside 0..4"),
    "paw": (lambda f: f.assign(Pawpularity="high"), "has no number"),
    "whale": (lambda f: f.assign(Id="new_whale w_0a1b2c3 w_1f2e3d4 w_23a388d w_5e6f7a8 w_9b5109b"), "more than k = 5"),
}


@pytest.mark.parametrize("name", list(DECLARATIONS))
def test_validate_refuses_the_wrong_form(runs, home, name):
    data, _, written = runs(name)
    change, needle = WRONG_FORM[name]
    bad = home / f"{name}-bad.csv"
    change(pd.read_csv(written)).to_csv(bad, index=False)
    result = run_cli("validate", bad, "-c", name, "--data-dir", data)
    assert_one_line_error(result, needle, multiline=True)


def test_score_of_a_run_folder_prints_the_stored_cross_fitted_figure(runs):
    """`score RUN_DIR` of a value, grade or label-set run: the validation figure train stored and predict applies
    (config.json's target_fit), with its interval; --checkpoint other than best is refused (the fit is best.pt's)."""
    import json

    _, run, _ = runs("paw")
    result = run_cli("score", run)
    assert result.returncode == 0, result.stderr
    stored = json.loads((run / "config.json").read_text())["target_fit"]
    assert f"{stored['images']} validation images" in result.stdout
    low, high = stored["interval"]["low"], stored["interval"]["high"]
    assert f"{stored['metric']:.4f} [{low:.3f}, {high:.3f}] n={stored['images']}" in result.stdout, result.stdout
    assert_one_line_error(run_cli("score", run, "--checkpoint", "last"), "fitted for best.pt", "drop --checkpoint")


ANALYSIS = {
    "ranzcr": "| NGT - Normal |",
    "pp2021": "Labels given by the fitted thresholds",
    "aptos": "| true \\ submitted | 0 | 1 | 2 | 3 | 4 | recall |",
    "paw": "bias (mean predicted - true)",
    "whale": "Where the true class ranks: rank 1: ",
}


@pytest.mark.parametrize("name", list(DECLARATIONS))
def test_analyze_writes_each_kinds_tables(runs, name):
    _, run, _ = runs(name)
    result = run_cli("analyze", run)
    assert result.returncode == 0, result.stderr
    text = (run / "analysis" / "analysis.md").read_text()
    assert ANALYSIS[name] in text, text
    held = np.load(run / "val_values.npz")
    if name in ("paw", "aptos"):
        assert (run / "analysis" / "scatter.png").stat().st_size > 1000
    if name == "aptos":  # each true grade's row holds its validation images
        rows = [line for line in text.splitlines() if re.match(r"\| \d \| ", line)]
        sums = [sum(int(c) for c in row.split("|")[2:-2]) for row in rows]
        assert sums == np.bincount(held["truth"], minlength=5).tolist()
    if name == "whale":
        ranks = re.search(r"rank 1: (\d+), .*missed: (\d+)", text)
        assert int(ranks.group(1)) + int(ranks.group(2)) <= len(held["truth"])


@pytest.mark.parametrize("name", ["pp2021", "aptos", "paw"])
def test_pseudo_labels_are_refused_where_no_prediction_is_confident(runs, name):
    data, run, _ = runs(name)
    result = run_cli("train", name, "--data-dir", data, "--pseudo-labels", run, *TRAIN)
    kind, why = {
        "pp2021": ("multilabel", "one class per image"),
        "aptos": ("ordinal", "carries no probability"),
        "paw": ("regression", "carries no probability"),
    }[name]
    assert_one_line_error(result, f"--pseudo-labels: a {kind} target is not pseudo-labelled", why)


def test_top_k_trains_on_its_confident_test_predictions(runs, home):
    import json

    data, run, _ = runs("whale")
    out = home / "whale-pseudo"
    # six classes: every softmax's largest probability is over 0.16, so every test image is chosen; the selection
    # rule itself is tests/workflows/test_pseudo_labels.py's, this checks a ranking run's labels reach training
    flags = [*TRAIN[:-4], "--epochs", "1", "--pseudo-labels", run, "--pseudo-threshold", "0.16"]
    result = run_cli("train", "whale", "--data-dir", data, "--out", out, *flags)
    assert result.returncode == 0, result.stderr
    chosen = pd.read_csv(out / "pseudo_labels.csv")
    test_ids = set(pd.read_csv(data / "answers.csv")["Image"])
    assert len(chosen) == len(test_ids) and set(chosen["id"]) == test_ids
    assert set(chosen["label"]) <= set(json.loads((out / "config.json").read_text())["classes"])


class Groups:
    """A 2-fold group of a shape's download (the one `runs` trained on), trained once on first use."""

    def __init__(self, runs):
        self.runs, self.printed = runs, {}

    def __call__(self, name: str):
        data, _, _ = self.runs(name)
        group = self.runs.root / f"{name}-group"
        if name not in self.printed:
            flags = [*TRAIN[:-4], "--epochs", "1"]
            result = run_cli("train", name, "--data-dir", data, "--out", group, "--folds", "2", *flags)
            assert result.returncode == 0, result.stderr
            self.printed[name] = result.stdout
        return data, group


@pytest.fixture(scope="module")
def groups(runs):
    return Groups(runs)


@pytest.mark.parametrize("name", ["pp2021", "aptos", "paw", "whale"])
def test_two_folds_to_a_blended_submission(groups, home, name):
    import json

    from kaggle_kit.competitions.bootstrap import Interval

    data, group = groups(name)
    written = home / f"{name}-group.csv"
    printed = groups.printed[name]
    assert "OOF (48 images, each predicted by the fold that held it out)" in printed, printed
    cv = json.loads((group / "cv.json").read_text())
    assert Interval.from_dict(cv["oof_fit"]["interval"]).n == 48
    for row in cv["per_fold"]:  # each fold's own figure, its interval and n printed as stored
        interval = Interval.from_dict(row["interval"])
        assert interval.n == row["images"] and interval.value == pytest.approx(row["metric"])
        assert interval.low <= row["metric"] <= interval.high, row
        assert f"  fold {row['fold']}: " in printed and f"{interval} - " in printed, printed
    assert sum(row["images"] for row in cv["per_fold"]) == 48
    assert "optimistic" not in printed and (group / "oof_values.npz").is_file()
    if name == "pp2021":  # a label set's thresholds: cross-fitted over the folds
        assert "cross-fitted over 2 parts" in printed or "not used: cross-fitted" in printed, printed
    result = run_cli("predict", group, "--data-dir", data, "--out", written)
    assert result.returncode == 0, result.stderr
    assert run_cli("score", written, "--answers", data / "answers.csv", "-c", name).returncode == 0


@pytest.mark.parametrize("name", ["pp2021", "aptos", "paw", "whale"])  # ranzcr's columns: test_api's label blend path
def test_ensemble_blends_values_and_refits_the_kind(runs, groups, home, name):
    """Label sets, values, grades and rankings blend as labels do: weights cross-fitted on the shared held-out
    values, then the kind's fit on the blend; the file validates and scores as scikit-learn scores it. A run
    and its fold group where the shape has one here; elsewhere the run and a copy of its folder (the same
    predictions), which costs no training."""
    import json
    import shutil

    data, run, _ = runs(name)
    if name in ("pp2021", "paw"):
        other = groups(name)[1]
    else:
        other = home / f"{name}-run-copy"
        if not other.exists():
            shutil.copytree(run, other)
    blended = home / f"{name}-blend.csv"
    result = run_cli("ensemble", run, other, "--data-dir", data, "--out", blended)
    assert result.returncode == 0, result.stderr
    assert "note: the blend: " in result.stdout and "held-out" in result.stdout, result.stdout
    assert run_cli("validate", blended, "-c", name, "--data-dir", data).returncode == 0
    record = json.loads(blended.with_name(blended.name + ".ensemble.json").read_text())
    assert abs(sum(m["weight"] for m in record["members"]) - 1) < 1e-9
    result = run_cli("score", blended, "--answers", data / "answers.csv", "-c", name)
    shown = float(re.search(r"(-?\d+\.\d+) \[.+\] n=\d+ - (higher|lower) is better", result.stdout).group(1))
    assert shown == pytest.approx(
        sklearn_score(name, pd.read_csv(data / "answers.csv"), pd.read_csv(blended)), abs=1e-4
    )


INIT = {  # name -> (init flags, what the declaration must hold)
    "ranzcr": (["--metric", "Mean Columnwise ROC AUC"], {"target": "multilabel", "submission_kind": "probabilities"}),
    "pp2021": (["--metric", "Mean F1 Score"], {"target": "multilabel", "label_column": "labels"}),
    "aptos": (["--metric", "qwk"], {"target": "ordinal", "label_column": "diagnosis"}),  # inferred: see below
    "paw": (["--metric", "Root Mean Squared Error"], {"target": "regression", "label_column": "Pawpularity"}),
    "whale": (["--metric", "MAP@5"], {"target": "topk", "top_k": 5, "new_class": "new_whale"}),
}


@pytest.mark.parametrize("name", list(INIT))
def test_init_reads_the_target_from_the_zip(home, name, tmp_path):
    from kaggle_kit.competitions import declaration
    from kaggle_kit.competitions.registry import resolve

    data = tmp_path / name
    assert run_cli("sample", name, data, "--n-train", "24", "--n-test", "8").returncode == 0
    zip_only = tmp_path / "zip"
    zip_only.mkdir()
    zipped = next(data.glob("*.zip"))
    zipped.rename(zip_only / zipped.name)  # only the zip, as Kaggle's client saves it
    flags, expected = INIT[name]
    out = tmp_path / f"{name}_init.toml"
    result = run_cli("init", resolve(name).slug, "--data-dir", zip_only, "--out", out, *flags)
    assert result.returncode == 0, result.stderr
    assert f"target: {expected['target']}" in result.stdout
    found, source = declaration.load(out), resolve(name)
    assert {key: getattr(found, key) for key in expected} == expected
    assert found.metric == source.metric and found.declared_classes == source.declared_classes


def test_init_says_why_grades_are_ordinal_and_target_label_keeps_classes(home, tmp_path):
    """APTOS' `diagnosis` 0-4 scored by QWK is inferred ordinal with the reason printed; --target label keeps the
    grades as classes (the other direction: integer class ids never named as grades stay classes, test_targets)."""
    from kaggle_kit.competitions import declaration
    from kaggle_kit.competitions.registry import resolve

    data = tmp_path / "aptos"
    assert run_cli("sample", "aptos", data, "--n-train", "24", "--n-test", "8").returncode == 0
    out = tmp_path / "inferred.toml"
    result = run_cli("init", resolve("aptos").slug, "--data-dir", data, "--out", out, "--metric", "qwk")
    assert result.returncode == 0, result.stderr
    assert "target: ordinal, as column 'diagnosis' is named as a grade ('diagnosis')" in result.stdout
    assert declaration.load(out).target == "ordinal"
    out = tmp_path / "classes.toml"
    flags = ("--metric", "qwk", "--target", "label")
    result = run_cli("init", resolve("aptos").slug, "--data-dir", data, "--out", out, *flags)
    assert result.returncode == 0, result.stderr
    assert "target: ordinal" not in result.stdout
    found = declaration.load(out)
    assert found.target == "label" and found.declared_classes == ("0", "1", "2", "3", "4")


def test_init_refuses_a_metric_the_target_cannot_take(home, tmp_path):
    from kaggle_kit.competitions.registry import resolve

    data = tmp_path / "paw"
    assert run_cli("sample", "paw", data, "--n-train", "24", "--n-test", "8").returncode == 0
    result = run_cli("init", resolve("paw").slug, "--data-dir", data, "--metric", "accuracy", "--target", "regression")
    assert_one_line_error(result, "--metric accuracy does not score a regression target", "rmse")
    result = run_cli("init", resolve("paw").slug, "--data-dir", data, "--metric", "rmse", "--target", "boxes")
    assert_one_line_error(result, "--target boxes: choose one of label, multilabel, regression, ordinal, topk")


def test_tta_averages_each_kinds_probabilities_over_the_views(runs, home):
    """Through the real streaming path: the TTA values of a sigmoid head are the mean of each view's sigmoid, and
    `predict --tta` writes a valid submission with them."""
    import torch

    from kaggle_kit.data.cache import load_images
    from kaggle_kit.inference.loading import load_run, open_run_layout
    from kaggle_kit.inference.streaming import stream_logits
    from kaggle_kit.inference.target_predict import kind_values

    data, run, _ = runs("pp2021")
    loaded = load_run(run, "best", "cpu")
    layout = open_run_layout(loaded, data)
    cache = load_images(layout, "test", loaded.recipe.cache_side, skip_bad=True)
    rows, views = np.arange(len(cache)), ("identity", "hflip")
    averaged, plain, _ = kind_values(loaded, cache, rows, views)
    logits = stream_logits(loaded.model, cache, rows, loaded.recipe, loaded.mean, loaded.std, loaded.device, views)
    identity, flipped = logits.identity, 2 * logits.mean - logits.identity  # the mean of two views, and one of them
    expected = (torch.tensor(identity).sigmoid() + torch.tensor(flipped).sigmoid()).numpy() / 2
    assert np.allclose(averaged, expected, atol=1e-5) and np.allclose(plain, 1 / (1 + np.exp(-identity)), atol=1e-6)
    written = home / "pp2021-tta.csv"
    result = run_cli("predict", run, "--data-dir", data, "--out", written, "--tta")
    assert result.returncode == 0, result.stderr
    assert re.search(r"TTA on, \d views \[--tta\]", result.stdout), result.stdout
    assert run_cli("validate", written, "-c", "pp2021", "--data-dir", data).returncode == 0


def test_predict_with_onnx_writes_the_torch_files_answers(runs, home):
    """A grade run (one output: a softmax check alone would pass any export) predicted through ONNX Runtime says
    so, and writes the grades torch writes."""
    data, run, written = runs("aptos")
    through_onnx = home / "aptos-onnx.csv"
    result = run_cli("predict", run, "--data-dir", data, "--out", through_onnx, "--engine", "onnx")
    assert result.returncode == 0, result.stderr
    assert re.search(r"images/s on cpu, onnx\)", result.stdout), result.stdout
    assert (pd.read_csv(through_onnx)["diagnosis"] == pd.read_csv(written)["diagnosis"]).all()


INFO = {
    "ranzcr": r"3 labels, \d\.\d\d a row",
    "pp2021": r"images holding each \(multilabel\): healthy \d+, rust \d+, scab \d+",
    "aptos": r"images holding each \(ordinal\): 0 \d+, 1 \d+, 2 \d+, 3 \d+, 4 \d+",
    "paw": r"values \d+\.\.\d+",
    "whale": r"6 classes.*\n(.*\n)*images holding each \(topk\): w_0a1b2c3 \d+.* new_whale \d+",
}


@pytest.mark.parametrize("name", list(INFO))
def test_info_counts_each_kinds_truths(runs, name):
    """`kaggle-kit info` on a label-set, grade, value or ranking download (a traceback before): each kind's counts,
    summed to the training images where each image holds one answer."""
    data, _, _ = runs(name)
    result = run_cli("info", name, "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert re.search(INFO[name], result.stdout), result.stdout
    if name in ("aptos", "whale"):
        counts = re.search(r"images holding each \(\w+\): (.*)", result.stdout).group(1)
        assert sum(int(part.rsplit(" ", 1)[1]) for part in counts.split(", ")) == 48


def test_runs_lists_a_label_set_fold_group(groups, home):
    """`kaggle-kit runs` shows a label-set fold group with its OOF figure and interval (it was skipped: its
    cv.json holds the fitted thresholds, not a temperature)."""
    import json

    _, group = groups("pp2021")
    result = run_cli("runs", "pp2021", "--root", home)
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr, result.stderr
    cv = json.loads((group / "cv.json").read_text())
    row = next(line for line in result.stdout.splitlines() if line.startswith(str(group)))
    assert f"{cv['oof_metric']:.4f} [" in row and "2 folds (2 finished), OOF" in row, row


def test_a_hidden_value_outside_the_declared_range_is_scored(runs, home):
    """`init` declares the training values' range (it scales and clips the model's values); a hidden answer
    outside it is a truth all the same: scored as scikit-learn scores it, never refused. A grade outside 0..4
    is still refused (test_validate_refuses_the_wrong_form's grade check reads submissions the same way)."""
    data, _, written = runs("paw")
    answers = pd.read_csv(data / "answers.csv").astype({"Pawpularity": float})
    answers.loc[0, "Pawpularity"] = 100.5  # paw declares 1..100
    changed = home / "paw-answers-outside.csv"
    answers.to_csv(changed, index=False)
    result = run_cli("score", written, "--answers", changed, "-c", "paw")
    assert result.returncode == 0, result.stderr
    shown = float(re.search(r"(\d+\.\d+) \[[^]]+\] n=\d+ - lower is better", result.stdout).group(1))
    assert shown == pytest.approx(sklearn_score("paw", answers, pd.read_csv(written)), abs=1e-4)
