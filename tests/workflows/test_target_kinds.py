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
        self.root, self.done = root, set()

    def __call__(self, name: str):
        data, run, written = self.root / name, self.root / f"{name}-run", self.root / f"{name}.csv"
        if name not in self.done:
            result = run_cli("sample", name, data, "--n-train", "48", "--n-test", "16")
            assert result.returncode == 0, result.stderr
            result = run_cli("train", name, "--data-dir", data, "--out", run, *TRAIN)
            assert result.returncode == 0, result.stderr
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
    shown = float(re.search(r"(-?\d+\.\d+) - (higher|lower) is better", result.stdout).group(1))
    expected = sklearn_score(name, pd.read_csv(data / "answers.csv"), pd.read_csv(written))
    assert shown == pytest.approx(expected, abs=1e-4), result.stdout


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


def test_commands_built_for_one_label_refuse_other_targets(runs, home):
    data, run, _ = runs("paw")
    for args in (
        ("ensemble", run, run.parent / "ranzcr-run", "--data-dir", data, "--out", home / "blend.csv"),
        ("analyze", run),
        ("score", run),
        ("train", "paw", "--data-dir", data, "--pseudo-labels", run, *TRAIN),
    ):
        assert_one_line_error(run_cli(*args), "is built for one label per image", "regression target")


@pytest.mark.parametrize("name", ["pp2021", "paw"])
def test_two_folds_to_a_blended_submission(home, name):
    data, group, written = home / name, home / f"{name}-group", home / f"{name}-group.csv"
    if not data.is_dir():
        assert run_cli("sample", name, data, "--n-train", "48", "--n-test", "16").returncode == 0
    result = run_cli("train", name, "--data-dir", data, "--out", group, "--folds", "2", *TRAIN[:-4], "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "OOF" in result.stdout and (group / "oof_values.npz").is_file()
    result = run_cli("predict", group, "--data-dir", data, "--out", written)
    assert result.returncode == 0, result.stderr
    assert run_cli("score", written, "--answers", data / "answers.csv", "-c", name).returncode == 0


INIT = {  # name -> (init flags, what the declaration must hold)
    "ranzcr": (["--metric", "Mean Columnwise ROC AUC"], {"target": "multilabel", "submission_kind": "probabilities"}),
    "pp2021": (["--metric", "Mean F1 Score"], {"target": "multilabel", "label_column": "labels"}),
    "aptos": (["--metric", "qwk", "--target", "ordinal"], {"target": "ordinal", "label_column": "diagnosis"}),
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


def test_init_refuses_a_metric_the_target_cannot_take(home, tmp_path):
    from kaggle_kit.competitions.registry import resolve

    data = tmp_path / "paw"
    assert run_cli("sample", "paw", data, "--n-train", "24", "--n-test", "8").returncode == 0
    result = run_cli("init", resolve("paw").slug, "--data-dir", data, "--metric", "accuracy", "--target", "regression")
    assert_one_line_error(result, "--metric accuracy does not score a regression target", "rmse")
    result = run_cli("init", resolve("paw").slug, "--data-dir", data, "--metric", "rmse", "--target", "boxes")
    assert_one_line_error(result, "--target boxes: choose one of label, multilabel, regression, ordinal, topk")
