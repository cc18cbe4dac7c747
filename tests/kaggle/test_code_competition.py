"""From a trained run to Kaggle by the real entry points: `submit` of a file written anywhere, `package`,
its offline rehearsal, `push` through the fake Kaggle's datasets, notebooks and code-competition submit,
`leaderboard` and the daily limit. The client is the installed `kaggle`, against tests/kaggle_server.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import run_cli
from kaggle_server import DEFAULT_KEY, DEFAULT_USERNAME, KaggleServer

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.submissions.ledger import Ledger
from kaggle_kit.training import train

REPO = Path(__file__).resolve().parents[2]
CIFAR = resolve("cifar10")
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny CIFAR-10 run trained on a generated download kept outside any working folder."""
    root = tmp_path_factory.mktemp("code-comp")
    bundle = root / "bundle"
    write_sample(CIFAR, bundle, n_train=120, n_test=24)
    data = root / "cifar-data"
    write_sample(CIFAR, data, n_train=120, n_test=24)
    run = root / "runs" / "tiny"
    train("cifar10", data, out=run, img_size=32, epochs=1, batch_size=64, arch="test_resnet", workers=0, device="cpu")
    return types.SimpleNamespace(root=root, bundle=bundle, data=data, run=run)


@pytest.fixture
def work(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def kit_env(tmp_path: Path, endpoint: str = "http://127.0.0.1:9", **changes) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE") and k.lower() not in PROXY_VARIABLES}
    env.update(
        HOME=str(tmp_path / "home"),
        KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle-config"),
        KAGGLE_USERNAME=DEFAULT_USERNAME,
        KAGGLE_KEY=DEFAULT_KEY,
        KAGGLE_KIT_API_ENDPOINT=endpoint,
        KAGGLE_KIT_HTTP_TIMEOUT="10",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        KAGGLE_KIT_PROGRESS="0",  # quiet as the other tests are, unless a test asks for the lines
        PYTHONPATH=str(REPO),
    )
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def kit(args: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command in this process with `env` as the whole environment: no process boundary is under test here
    (the rehearsal and the fake Kaggle's notebook run are children of their own)."""
    return run_cli(*args, cwd=cwd, env=env, replace_env=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert DEFAULT_KEY not in proc.stdout + proc.stderr
    return lines[0]


# --------------------------------------------------------------------------- submit finds the run by hash


def test_submit_finds_the_run_and_data_of_a_file_predict_wrote_anywhere(trained, work, tmp_path):
    """As a new user: predict --out sub.csv, then submit sub.csv -c cifar10 (no data/cifar-10 here)."""
    env = kit_env(tmp_path)
    predicted = kit(["predict", trained.run, "--out", "sub.csv", "--device", "cpu"], work, env)
    assert predicted.returncode == 0, predicted.stderr
    with KaggleServer(CIFAR, trained.bundle, score_delay=0.2) as server:
        sent = kit(["submit", "sub.csv", "-c", "cifar10"], work, kit_env(tmp_path, server.url))
    assert sent.returncode == 0, sent.stderr
    assert "public score" in sent.stdout and "(run tiny)" in sent.stdout
    (record,) = Ledger(work / "submissions" / "ledger.jsonl").records()
    assert record.run == "tiny" and Path(record.run_dir) == trained.run and record.local_score is not None


def test_a_changed_file_is_not_taken_for_the_run_that_wrote_the_original(trained, work, tmp_path):
    env = kit_env(tmp_path)
    assert kit(["predict", trained.run, "--out", "sub.csv", "--device", "cpu"], work, env).returncode == 0
    lines = (work / "sub.csv").read_text().splitlines()
    (work / "sub.csv").write_text("\n".join(lines[:1] + lines[2:] + lines[1:2]) + "\n")  # same rows, other bytes
    refused = kit(["submit", "sub.csv", "-c", "cifar10"], work, env)
    assert_one_line_error(refused, "sampleSubmission.csv")


# --------------------------------------------------------------------------- package and its rehearsal


def package_run(trained, work, tmp_path, *extra, out: str = "pkg") -> subprocess.CompletedProcess:
    return kit(
        ["package", trained.run, "--owner", DEFAULT_USERNAME, "--no-deps-wheels", "--out", out, *extra],
        work,
        kit_env(tmp_path),
    )


@pytest.fixture(scope="module")
def rehearsed(trained, tmp_path_factory):
    """The run packaged once with --rehearse, for the tests that read the package and its rehearsal: (the
    working folder holding pkg/, the command's result)."""
    work = tmp_path_factory.mktemp("rehearsed")
    made = package_run(trained, work, work, "--rehearse")
    assert made.returncode == 0, made.stderr
    return work, made


def test_package_rehearses_offline_and_matches_predict(rehearsed):
    from safetensors.torch import load_file

    work, made = rehearsed
    assert "rehearsal passed" in made.stdout and "24 rows" in made.stdout
    kernel = json.loads((work / "pkg" / "notebook" / "kernel-metadata.json").read_text())
    assert kernel["enable_internet"] is False and kernel["enable_gpu"] is False  # the recipe says cpu
    assert kernel["competition_sources"] == ["cifar-10"] and kernel["dataset_sources"] == [
        f"{DEFAULT_USERNAME}/kk-cifar10-tiny-data"
    ]
    dataset = work / "pkg" / "dataset"
    assert sorted(p.suffix for p in dataset.iterdir()) == [".json", ".json", ".json", ".safetensors", ".whl"]
    assert load_file(str(dataset / "weights.safetensors"))  # plain tensors, no pickle
    log = (work / "pkg" / "rehearsal" / "notebook.log").read_text()
    assert "kaggle_kit from /" in log and "/packages/kaggle_kit" in log  # the packaged wheel, not the source tree
    assert [p.name for p in (work / "pkg" / "rehearsal" / "working").iterdir()] == ["submission.csv"]


def test_the_notebook_leaves_only_its_submission_in_the_working_folder(rehearsed, tmp_path):
    """On Kaggle the inputs are read-only and kaggle-kit caches under /kaggle/working: none of it may stay."""
    work, _ = rehearsed
    working = tmp_path / "kaggle-working"
    (working / ".kaggle-kit" / "cifar-10").mkdir(parents=True)  # as layout leaves it beside read-only inputs
    env = {k: v for k, v in kit_env(tmp_path).items() if k != "PYTHONPATH"}
    env.update(
        KAGGLE_KIT_INPUT_ROOT=str(work / "pkg" / "rehearsal" / "input"),
        KAGGLE_KIT_WORKING_DIR=str(working),
        PIP_NO_INDEX="1",
    )
    ran = subprocess.run(
        [sys.executable, str(work / "pkg" / "notebook" / "predict.py")],
        cwd=working,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert [p.name for p in working.iterdir()] == ["submission.csv"]


def test_a_failing_rehearsal_names_the_step(trained, work, tmp_path):
    broken = tmp_path / "broken-data"
    shutil.copytree(trained.data, broken, ignore=shutil.ignore_patterns(".kaggle-kit"))
    (broken / "cifar-10.zip").unlink()
    (broken / "test.7z").write_bytes(b"not a 7z archive")
    failed = package_run(trained, work, tmp_path, "--rehearse", "--data-dir", broken)
    assert_one_line_error(failed, "the rehearsal failed", "at step 'predict'")


# --------------------------------------------------------------------------- push through the fake Kaggle


@pytest.fixture(scope="module")
def pristine_package(trained, tmp_path_factory) -> Path:
    """The run packaged once (no rehearsal); tests push a copy (`packaged`), since pushing and breaking change it."""
    work = tmp_path_factory.mktemp("packaged")
    made = package_run(trained, work, work)
    assert made.returncode == 0, made.stderr
    return work / "pkg"


@pytest.fixture
def packaged(pristine_package, work) -> Path:
    return Path(shutil.copytree(pristine_package, work / "pkg"))


def test_push_takes_a_run_through_dataset_notebook_and_a_scored_code_submission(trained, packaged, work, tmp_path):
    """Two pushes, each through answers Kaggle loses after making the dataset, its version or the notebook
    version (a reset connection, a 500): push asks Kaggle whether each was made and never makes one twice."""
    with KaggleServer(CIFAR, trained.bundle, score_delay=0.2, code_competition=True, dataset_delay=0.5) as server:
        server.script("CreateDataset", ["done-reset"])
        server.script("SaveKernel", ["done-500"])
        pushed = kit(["push", packaged], work, kit_env(tmp_path, server.url, KAGGLE_KIT_PROGRESS="1"))
        assert pushed.returncode == 0, pushed.stderr
        server.script("CreateDatasetVersion", ["done-reset"])
        server.script("SaveKernel", ["done-reset"])
        again = kit(["push", packaged], work, kit_env(tmp_path, server.url, KAGGLE_KIT_PROGRESS="1"))
        assert again.returncode == 0, again.stderr
        expected = server.expected_scores(packaged / "output" / "v2" / "submission.csv")[0]
        calls, notebooks = server.calls, len(server.kernel_versions("kk-test-user/kk-cifar10-tiny"))
        datasets = len(server._state.datasets["kk-test-user/kk-cifar10-tiny-data"].versions)
    assert (calls["CreateDataset"], calls["CreateDatasetVersion"], calls["SaveKernel"]) == (1, 1, 2)
    assert (notebooks, datasets) == (2, 2)  # one version per push: nothing made twice
    assert "dataset kk-test-user/kk-cifar10-tiny-data version 1: ready" in pushed.stdout
    assert "notebook kk-test-user/kk-cifar10-tiny version 1: complete" in pushed.stdout
    assert "waiting for Kaggle to process it" in pushed.stderr  # the dataset was not ready at once
    assert "version 2" in again.stdout and "left (last run" in again.stderr  # an ETA from the first push
    first, second = Ledger(work / "submissions" / "ledger.jsonl").records()
    assert (second.notebook, second.notebook_version, second.dataset_version) == ("kk-test-user/kk-cifar10-tiny", 2, 2)
    assert second.status == "COMPLETE" and second.public_score == pytest.approx(expected)
    assert set(second.files) == {p.name for p in (packaged / "dataset").iterdir() if p.name != "dataset-metadata.json"}
    assert f"public score {expected:.5f}" in again.stdout and first.kaggle_ref != second.kaggle_ref


def test_push_to_a_csv_competition_says_to_submit_the_file(trained, packaged, work, tmp_path):
    with KaggleServer(CIFAR, trained.bundle, code_competition=False) as server:
        refused = kit(["push", packaged], work, kit_env(tmp_path, server.url))
        assert not server.calls["StartBlobUpload"]  # nothing uploaded
    assert_one_line_error(refused, "cifar-10 takes a CSV", "kaggle-kit submit FILE")


def test_push_refusals_are_one_line_and_upload_nothing(trained, packaged, work, tmp_path):
    kernel_meta = packaged / "notebook" / "kernel-metadata.json"
    kernel = json.loads(kernel_meta.read_text())
    with KaggleServer(CIFAR, trained.bundle, code_competition=True) as server:
        too_big = kit(["push", packaged], work, kit_env(tmp_path, server.url, KAGGLE_KIT_DATASET_LIMIT_BYTES="1000"))
        assert_one_line_error(too_big, "over Kaggle's dataset limit", "--no-deps-wheels")
        kernel_meta.write_text(json.dumps({**kernel, "competition_sources": ["dog-breed-identification"]}))
        other = kit(["push", packaged], work, kit_env(tmp_path, server.url))
        assert_one_line_error(
            other, "reads dog-breed-identification but the run is of cifar-10", "package the run again"
        )
        kernel_meta.write_text("{")
        assert_one_line_error(kit(["push", packaged], work, kit_env(tmp_path, server.url)), "not JSON", "package")
        kernel_meta.write_text(json.dumps(kernel))
        server.take_slug(f"{DEFAULT_USERNAME}/kk-cifar10-tiny-data")
        taken = kit(["push", packaged], work, kit_env(tmp_path, server.url))
        assert_one_line_error(taken, "dataset kk-test-user/kk-cifar10-tiny-data is not yours", "--owner")
        assert not server.calls["StartBlobUpload"] and not server.calls["SaveKernel"]


def test_a_notebook_slug_of_another_user_is_refused(trained, packaged, work, tmp_path):
    with KaggleServer(CIFAR, trained.bundle, code_competition=True, dataset_delay=0) as server:
        server.take_slug(f"{DEFAULT_USERNAME}/kk-cifar10-tiny")
        taken = kit(["push", packaged], work, kit_env(tmp_path, server.url))
    assert_one_line_error(taken, "notebook kk-test-user/kk-cifar10-tiny is not yours")


def test_a_notebook_failing_on_kaggle_shows_its_last_log_lines(trained, packaged, work, tmp_path):
    (packaged / "dataset" / "weights.safetensors").write_bytes(b"damaged")
    with KaggleServer(CIFAR, trained.bundle, code_competition=True, dataset_delay=0) as server:
        failed = kit(["push", packaged], work, kit_env(tmp_path, server.url))
        assert not server.submissions
    assert_one_line_error(failed, "failed on Kaggle", "kaggle-kit notebook failed at step 'weights'", "--rehearse")
    assert (packaged / "output" / "v1" / "kk-cifar10-tiny.log").is_file()
    assert not (work / "submissions" / "ledger.jsonl").exists()


def test_a_notebook_over_kaggles_time_limit_says_it_timed_out(trained, packaged, work, tmp_path):
    with KaggleServer(CIFAR, trained.bundle, code_competition=True, dataset_delay=0, kernel_timeout=0.5) as server:
        slow = kit(["push", packaged], work, kit_env(tmp_path, server.url))
    assert_one_line_error(slow, "timed out on Kaggle", "enable_gpu")


# --------------------------------------------------------------------------- leaderboard and the daily limit


def test_leaderboard_and_the_daily_limit(trained, work, tmp_path):
    assert kit(["predict", trained.run, "--out", "sub.csv", "--device", "cpu"], work, kit_env(tmp_path)).returncode == 0
    with KaggleServer(CIFAR, trained.bundle, score_delay=0.1, daily_limit=2) as server:
        env = kit_env(tmp_path, server.url)
        before = kit(["leaderboard", "cifar10", "--top", "2"], work, env)
        first = kit(["submit", "sub.csv"], work, env)
        second = kit(["submit", "sub.csv"], work, env)
        refused = kit(["submit", "sub.csv"], work, env)
        after = kit(["leaderboard", "cifar10"], work, env)
        score = server.expected_scores(work / "sub.csv")[0]
    assert before.returncode == 0, before.stderr
    assert "kk-rival-a" in before.stdout and "kk-rival-c" not in before.stdout  # --top 2
    assert "not on the leaderboard yet" in before.stdout and "submissions left today: 2" in before.stdout
    assert "1 submission left today" in first.stdout and "0 submissions left today" in second.stdout
    assert_one_line_error(refused, "no submissions left today for cifar-10", "after 00:00 UTC")
    assert len(Ledger(work / "submissions" / "ledger.jsonl").records()) == 2  # nothing recorded for the refusal
    rank = 1 + sum(s > score for s in (0.98, 0.71, 0.42))
    assert f"you: rank {rank} of 4, public score {score:.5f} ({DEFAULT_USERNAME})" in after.stdout
    assert "submissions left today: 0" in after.stdout


# --------------------------------------------------------------------------- the ONNX engine and the runtime estimate


def test_package_engine_onnx_ships_the_export_and_its_wheel_and_rehearses_as_torch(trained, work, tmp_path):
    made = kit(
        ["package", trained.run, "--owner", DEFAULT_USERNAME, "--no-deps-wheels", "--out", "pkg", "--engine", "onnx"]
        + ["--rehearse", "--test-images", "300000"],
        work,
        kit_env(tmp_path, KAGGLE_KIT_DEVICES="cpu,cpu"),  # the notebook splits the test set as on two T4s
        timeout=900,
    )
    assert made.returncode == 0, made.stderr
    dataset = work / "pkg" / "dataset"
    assert len(list(dataset.glob("best-*-32px.onnx"))) == 1 and len(list(dataset.glob("onnxruntime-*.whl"))) == 1
    assert json.loads((work / "pkg" / "package.json").read_text())["engine"] == "onnx"
    assert "rehearsal passed" in made.stdout and "(onnx engine)" in made.stdout
    assert "on cpu,cpu with onnx" in (work / "pkg" / "rehearsal" / "notebook.log").read_text()
    steps = re.search(r"notebook steps: install ([0-9.]+) s, weights [0-9.]+ s, predict ([0-9.]+) s", made.stdout)
    assert steps and float(steps.group(2)) > 0  # each step's time, read from the notebook's log
    assert (
        "runtime estimate on this machine" in made.stdout and "for 300,000 test images (--test-images)" in made.stdout
    )
    assert "limit 9 h (Kaggle's usual; not declared)" in made.stdout and "1 view" in made.stdout


def test_an_estimate_near_the_limit_warns_and_predict_estimate_writes_nothing(trained, work, tmp_path):
    env = kit_env(tmp_path)
    near = kit(["predict", trained.run, "--estimate", "20000000000", "--device", "cpu"], work, env)
    assert near.returncode == 0, near.stderr
    assert "for 20,000,000,000 test images" in near.stdout
    assert "warning: the estimate is within 2x of the 9 h limit" in near.stderr
    far = kit(["predict", trained.run, "--estimate", "100", "--device", "cpu", "--engine", "onnx"], work, env)
    assert far.returncode == 0 and "warning" not in far.stderr and ", onnx)" in far.stdout
    assert not list(work.rglob("*.csv"))


def test_a_declared_time_limit_and_hidden_test_size_are_read(tmp_path):
    from kaggle_kit.competitions import declaration

    text = (REPO / "competitions" / "cifar10" / "competition.toml").read_text()
    path = tmp_path / "timed.toml"
    runtime = "\n[runtime]\nhidden_test_images = 5000\ntime_limit_hours = 2\n"
    path.write_text(text.replace('name = "cifar10"', 'name = "timed"') + runtime)
    comp = declaration.load(path)
    assert comp.hidden_test_images == 5000 and comp.time_limit_hours == 2
    again = tmp_path / "again.toml"
    again.write_text(declaration.dump(comp))
    reloaded = declaration.load(again)
    assert (reloaded.hidden_test_images, reloaded.time_limit_hours) == (5000, 2)


# --------------------------------------------------------------------------- a fold group packaged


def copied_group(cifar_group, tmp_path) -> Path:
    """A copy of the session's 3-fold group: packaging calibrates folds, and the refusal breaks one."""
    return Path(shutil.copytree(cifar_group[0], tmp_path / "group"))


def test_package_a_fold_group_rehearses_and_matches_predict_group(cifar_group, work, tmp_path):
    import pandas as pd

    group, env = copied_group(cifar_group, tmp_path), kit_env(tmp_path)
    made = kit(
        ["package", group, "--owner", DEFAULT_USERNAME, "--no-deps-wheels", "--out", "pkg", "--rehearse"], work, env
    )
    assert made.returncode == 0, made.stderr
    assert (
        "packaged fold group group of cifar-10" in made.stdout
        and "rehearsal passed" in made.stdout
        and "30 rows" in made.stdout
    )
    dataset = work / "pkg" / "dataset"
    names = {p.name for p in dataset.iterdir()}
    assert {f"fold-{i}.{n}" for i in (1, 2, 3) for n in ("weights.safetensors", "config.json", "split.json")} <= names
    assert {"folds.json", "cv.json", "oof_predictions.npz"} <= names and "weights.safetensors" not in names
    manifest = json.loads((work / "pkg" / "package.json").read_text())
    assert manifest["kind"] == "group" and manifest["folds"] == 3 and manifest["run"] == "group"
    assert "from 3 folds" in (work / "pkg" / "rehearsal" / "notebook.log").read_text()
    assert all(f"fold-{i} " in made.stdout for i in (1, 2, 3))  # the runtime estimate measures every fold
    predicted = kit(["predict", group, "--out", "local.csv", "--device", "cpu"], work, env)
    assert predicted.returncode == 0, predicted.stderr
    notebook = pd.read_csv(work / "pkg" / "rehearsal" / "working" / "submission.csv").set_index("id").sort_index()
    local = pd.read_csv(work / "local.csv").set_index("id").sort_index()
    assert list(notebook.columns) == list(local.columns) and notebook.index.equals(local.index)
    assert (notebook == local).all().all()  # labels: the argmax of the averaged folds at the OOF temperature


def test_a_group_with_a_missing_fold_checkpoint_is_refused_naming_the_fix(cifar_group, work, tmp_path):
    group = copied_group(cifar_group, tmp_path)
    (group / "fold-2" / "best.pt").unlink()
    refused = kit(
        ["package", group, "--owner", DEFAULT_USERNAME, "--no-deps-wheels", "--out", "pkg"], work, kit_env(tmp_path)
    )
    assert_one_line_error(refused, "fold-2/best.pt not found", "train --resume")
    assert not (work / "pkg").exists()
