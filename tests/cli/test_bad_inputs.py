"""The catalogue of bad inputs across the commands (issue 9): each gets a one-line error that names the
problem and the fix, a non-zero exit, no traceback, and leaves no partial output behind.

Every case runs the real command line, in this process unless a resource limit, a signal or the `kaggle`
client's fresh import is part of the case (then `python -m kaggle_kit` in a child). Cases that need a trained
run share one tiny run; the Kaggle cases talk to the fake Kaggle in tests/kaggle_server.py through the real client.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from fault_sweep import zygote
from helpers import REPO, assert_one_line_error, run_cli, run_cli_process
from kaggle_helpers import kit_env, write_submission
from kaggle_server import KaggleServer

from kaggle_kit.competitions.registry import resolve

CIFAR, DOG = resolve("cifar10"), resolve("dog_breed")
TINY = ["--arch", "test_resnet", "--batch-size", "32", "--workers", "0", "--device", "cpu", "--aug", "none"]
READ_ONLY = Path("/sys/kaggle-kit-cannot-write")  # even root cannot create anything under /sys


def kit(*args, cwd=None, env=None, file_limit=None, memory_limit=None, kaggle=False):
    """The command in this process; in a child where a resource limit is the test, or the real `kaggle` client
    must be imported fresh with the test's credentials. `env`: the whole environment."""
    if not (file_limit or memory_limit or kaggle):
        return run_cli(*args, cwd=cwd, env=env, replace_env=env is not None)

    def limit():
        if file_limit:  # a full disk, simulated: writes past `file_limit` bytes fail with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
        if memory_limit:  # a smaller machine: allocations past `memory_limit` bytes of data fail with ENOMEM
            resource.setrlimit(resource.RLIMIT_DATA, (memory_limit, memory_limit))

    return run_cli_process(
        *args,
        cwd=cwd,
        env=env,
        replace_env=env is not None,
        timeout=300,
        preexec_fn=limit if file_limit or memory_limit else None,
    )


def check(result, *needles, multiline=False):
    """One line naming the problem (and the fix), non-zero exit, no traceback."""
    assert_one_line_error(result, *needles, alone=True, multiline=multiline)


def no_files(folder: Path, pattern: str) -> bool:
    return not list(Path(folder).rglob(pattern)) if Path(folder).exists() else True


@pytest.fixture(scope="module")
def trained(sample_zips, cifar_run, tmp_path_factory):
    """A copy of the shared tiny CIFAR-10 run (calibrated and predicted once, so its caches exist)."""
    root = tmp_path_factory.mktemp("catalogue")
    data = root / "data"
    shutil.copytree(sample_zips["cifar10"], data)
    run = root / "run"
    shutil.copytree(cifar_run[0], run)
    result = kit("predict", run, "--data-dir", data, "--out", root / "first.csv")
    assert result.returncode == 0, result.stderr
    return data, run, root / "first.csv"


# ------------------------------------------------------------------------------------ data


def test_missing_data_folder(tmp_path):
    check(kit("info", "cifar10", "--data-dir", tmp_path / "nowhere"), "does not exist", "kaggle-kit download")


def test_wrong_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "cifar-10.zip", "w") as zf:
        zf.writestr("notes/readme.txt", "not the competition")
    check(kit("info", "cifar10", "--data-dir", tmp_path), "has no sampleSubmission.csv", "kaggle-kit download cifar10")


def test_truncated_zip(fresh_sample):
    folder = fresh_sample("dog_breed")
    zip_path = folder / DOG.archive_name
    zip_path.write_bytes(zip_path.read_bytes()[:5000])
    check(kit("info", "dog_breed", "--data-dir", folder), "not a readable zip", "download again")
    assert not (folder / "train").exists()


def test_truncated_7z(fresh_sample, tmp_path):
    folder = fresh_sample("cifar10")
    kit("info", "cifar10", "--data-dir", folder)
    inner = folder / "train.7z"
    inner.write_bytes(inner.read_bytes()[:400])
    check(
        kit("train", "cifar10", "--data-dir", folder, "--out", tmp_path / "run", "--epochs", "1", *TINY),
        "train.7z",
        "download",
    )
    assert no_files(folder / ".kaggle-kit" / "cache", "pixels.u8")


@pytest.mark.parametrize("payload,label", [(b"\x89PNG\r\n\x1a\n garbage", "corrupt"), (b"", "empty")])
def test_corrupt_or_empty_image_stops_training_with_the_file_named(fresh_sample, tmp_path, payload, label):
    folder = fresh_sample("dog_breed")
    kit("info", "dog_breed", "--data-dir", folder)
    victim = sorted((folder / "train").iterdir())[3]
    victim.write_bytes(payload)
    result = kit(
        "train",
        "dog_breed",
        "--data-dir",
        folder,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--no-pretrained",
        "--img-size",
        "32",
        "--eval-resize",
        "36",
        *TINY,
    )
    check(result, victim.stem, "--skip-bad-images")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_skip_bad_images_trains_and_records_them(fresh_sample, tmp_path):
    folder = fresh_sample("dog_breed")
    kit("info", "dog_breed", "--data-dir", folder)
    victim = sorted((folder / "train").iterdir())[5]
    victim.write_bytes(b"broken")
    result = kit(
        "train",
        "dog_breed",
        "--data-dir",
        folder,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--no-pretrained",
        "--img-size",
        "32",
        "--eval-resize",
        "36",
        "--skip-bad-images",
        *TINY,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["skipped_images"] == [victim.stem]


def _edit_csv(folder: Path, name: str, edit) -> None:
    path = folder / name
    path.write_text(edit(path.read_text()))


@pytest.mark.parametrize(
    "name,edit,needles",
    [
        ("labels.csv", lambda t: t.replace(",beagle", ",beagel", 1), ["beagel", "not one of the 120 classes"]),
        ("labels.csv", lambda t: t + t.splitlines()[1] + "\n", ["appears more than once"]),
        ("labels.csv", lambda t: t.replace("id,breed", "id,dog", 1), ["'breed' is missing"]),
        (
            "sample_submission.csv",
            lambda t: t.replace("affenpinscher", "Affenpinscher", 1),
            ["sample_submission.csv", "header"],
        ),
    ],
)
def test_broken_csv_files(fresh_sample, name, edit, needles):
    folder = fresh_sample("dog_breed")
    kit("info", "dog_breed", "--data-dir", folder)
    _edit_csv(folder, name, edit)
    check(kit("info", "dog_breed", "--data-dir", folder), *needles)


def test_unknown_competition():
    check(kit("info", "dog-breeds-identification"), "unknown competition", "did you mean")
    # a new competition not declared yet is not offered a built-in sharing a few letters
    result = kit("info", "plant-seedlings-classification", cwd=REPO)
    check(result, "unknown competition 'plant-seedlings-classification': known competitions are")
    assert "did you mean" not in result.stderr


# ------------------------------------------------------------------------------------ training


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--arch", "resnet343"], ["resnet34"]),
        (["--lr", "0"], ["lr=0.0"]),
        (["--lr", "fast"], ["--lr"]),
        (["--epochs", "-2"], ["epochs=-2", "--epochs 1 or more"]),
        (["--batch-size", "0"], ["batch_size=0"]),
        (["--recipe", "paperr"], ["unknown recipe", "paper"]),
        (["--normalize", "imagenet"], ["normalize=imagenet", "--normalize dataset"]),
        (["--device", "mps"], ["device='mps'", "auto, cpu, cuda or cuda:N"]),
        (
            ["--device", "cuda:99"],
            ["device cuda:99 asked for", "--device"],
        ),  # no GPU here; on a GPU box, not 100 of them
        # values that trained silently wrong (negative clipping ascends the gradient, no hidden units train nothing)
        # or crashed inside torch with a traceback
        (["--grad-clip", "-1"], ["grad_clip=-1.0", "positive norm"]),
        (["--head", "mlp", "--head-hidden", "0"], ["head_hidden=0", "--head-hidden 1 or more"]),
        (["--workers", "-1"], ["workers=-1", "--workers 0 or more"]),
        (["--momentum", "-1"], ["momentum=-1.0", "[0, 1)"]),
        (["--seed", "-1"], ["seed=-1", "[0, 2^32)"]),
        (["--img-size", "65", "--eval-resize", "60"], ["eval_resize=60", "--eval-resize 65 or more"]),
    ],
)
def test_bad_training_settings(sample_zips, tmp_path, args, needles):
    check(
        kit(
            "train",
            "cifar10",
            "--data-dir",
            sample_zips["cifar10"],
            "--out",
            tmp_path / "run",
            "--epochs",
            "1",
            *TINY,
            *args,
        ),
        *needles,
    )
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_before_its_first_epoch_leaves_no_folder(sample_zips, tmp_path):
    """A weights file that is not one fails inside training, after the split was drawn: no half-made folder is
    left for `runs` to list, and the same --out works at once."""
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    out = tmp_path / "run"
    check(
        kit(
            "train",
            "cifar10",
            "--data-dir",
            sample_zips["cifar10"],
            "--out",
            out,
            "--epochs",
            "1",
            *TINY,
            "--weights",
            junk,
        ),
        "junk.safetensors",
    )
    assert not out.exists()
    again = kit("train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", out, "--epochs", "1", *TINY)
    assert again.returncode == 0, again.stderr


def test_dataset_normalisation_needs_declared_statistics(sample_zips, tmp_path):
    check(
        kit(
            "train",
            "dog_breed",
            "--data-dir",
            sample_zips["dog_breed"],
            "--out",
            tmp_path / "run",
            "--epochs",
            "1",
            "--normalize",
            "dataset",
            *TINY,
        ),
        "dog_breed declares no dataset mean/std",
        "--normalize model",
    )
    assert not (tmp_path / "run").exists()


def test_weights_file_of_another_architecture(sample_zips, tmp_path):
    import timm
    import torch

    weights = tmp_path / "resnet50.pth"
    torch.save(timm.create_model("resnet50", num_classes=10).state_dict(), weights)
    result = kit(
        "train",
        "cifar10",
        "--data-dir",
        sample_zips["cifar10"],
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--arch",
        "resnet18",
        "--weights",
        weights,
        "--batch-size",
        "32",
        "--workers",
        "0",
    )
    check(result, "resnet50.pth")
    assert not (tmp_path / "run" / "last.pt").exists()


# a writer lock that could not make its folder once raised AttributeError from __del__, after the one-line error
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_read_only_output_folder(sample_zips):
    check(
        kit(
            "train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", READ_ONLY / "run", "--epochs", "1", *TINY
        ),
        str(READ_ONLY),
    )


# ------------------------------------------------------------------------------------ predict


# ResNet-18 at 384 px, batch 64: its first convolution alone asks for more than 3 GiB allows
TOO_BIG = [
    "--arch",
    "resnet18",
    "--img-size",
    "384",
    "--batch-size",
    "64",
    "--epochs",
    "1",
    "--warmup-epochs",
    "0",
    "--workers",
    "0",
    "--device",
    "cpu",
]


def test_out_of_memory_in_training_says_what_to_lower(sample_zips, tmp_path):
    out = tmp_path / "big"
    result = kit("train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", out, *TOO_BIG, memory_limit=3 << 30)
    # the started run first warns that batch 64 leaves this small sample few steps (said before any epoch)
    warned, result.stderr = result.stderr.partition("\n")[0], result.stderr.partition("\n")[2]
    assert warned.startswith("warning: 270 training images at batch 64"), warned  # 300 less the 10% held out
    check(
        result, "out of memory", "GiB failed", "on cpu in epoch 1 at batch size 64", "lower --batch-size", "--img-size"
    )
    assert result.returncode == 1
    assert not out.exists()  # no epoch finished: nothing to resume, so no half-made run folder is left
    assert "another --out" not in result.stderr  # the same --out works again


def test_out_of_memory_is_told_from_other_errors():
    import torch

    from kaggle_kit.core.errors import out_of_memory

    with pytest.raises(RuntimeError) as cpu:
        torch.empty(2**62, dtype=torch.uint8)  # the CPU allocator refuses at once
    assert out_of_memory(cpu.value) == "out of memory (an allocation of 4294967296.00 GiB failed)"
    # CUDA's own type and text, as torch raises it (no GPU needed to build the exception)
    cuda = torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.11 GiB"
    )
    assert out_of_memory(cuda) == "out of memory (an allocation of 20.00 MiB failed)"
    with pytest.raises(RuntimeError) as other:
        torch.ones(2, 3) @ torch.ones(2, 3)
    assert out_of_memory(other.value) is None and out_of_memory(ValueError("memory")) is None


def test_out_of_memory_outside_the_epochs_says_what_to_lower(sample_zips, tmp_path):
    """The frozen backbone's feature pass runs before the first epoch: the command's own one line."""
    out = tmp_path / "big-features"
    result = kit(
        "train",
        "cifar10",
        "--data-dir",
        sample_zips["cifar10"],
        "--out",
        out,
        *TOO_BIG,
        "--freeze",
        "--feature-cache-views",
        "1",
        memory_limit=3 << 30,
    )
    check(result, "out of memory", "GiB failed", "lower --batch-size")
    assert result.returncode == 1 and not out.exists()


def test_run_folder_without_checkpoint(trained, tmp_path):
    data, run, _ = trained
    empty = tmp_path / "copy"
    empty.mkdir()
    shutil.copy2(run / "config.json", empty / "config.json")
    check(kit("predict", empty, "--data-dir", data, "--out", tmp_path / "x.csv"), "checkpoint")
    assert not (tmp_path / "x.csv").exists()


def test_swa_checkpoint_of_a_run_trained_without_swa(trained, tmp_path):
    data, run, _ = trained
    result = kit("predict", run, "--data-dir", data, "--checkpoint", "swa", "--out", tmp_path / "x.csv")
    check(result, "no swa.pt (written only by a run trained with --swa-epochs N)", "--checkpoint best or last")
    assert not (tmp_path / "x.csv").exists()


def test_predict_into_a_read_only_folder(trained):
    data, run, _ = trained
    check(kit("predict", run, "--data-dir", data, "--out", READ_ONLY / "sub.csv"), str(READ_ONLY))


def test_predict_onto_a_full_disk_leaves_no_partial_csv(trained, tmp_path):
    data, run, _ = trained
    out = tmp_path / "full" / "sub.csv"
    check(kit("predict", run, "--data-dir", data, "--out", out, file_limit=256), "check free space")
    assert not out.exists() and no_files(tmp_path / "full", "*.csv*")


# ------------------------------------------------------------------------------------ submissions


def _bad_submission(trained, tmp_path, edit) -> Path:
    _, _, good = trained
    frame = pd.read_csv(good, dtype=str)
    path = tmp_path / "submissions" / "cifar10" / "bad.csv"
    path.parent.mkdir(parents=True)
    edit(frame).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda f: f.iloc[:-3], "missing"),
        (lambda f: f.assign(label=["kitten"] + f["label"].tolist()[1:]), "kitten"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "duplicate"),
    ],
)
def test_invalid_label_submissions(trained, tmp_path, edit, needle):
    data, _, _ = trained
    path = _bad_submission(trained, tmp_path, edit)
    check(kit("validate", path, "--data-dir", data), needle, multiline=True)


@pytest.mark.parametrize("value,needle", [("nan", "NaN"), ("-0.2", "negative")])
def test_invalid_probability_submissions(sample_zips, tmp_path, value, needle):
    work = tmp_path / "work"
    path = write_submission(work, sample_zips["dog_breed"])
    frame = pd.read_csv(path, dtype=str)
    frame.iloc[2, 5] = value
    frame.to_csv(path, index=False)
    check(kit("validate", path, "--data-dir", sample_zips["dog_breed"]), needle, multiline=True)


# ------------------------------------------------------------------------------------ Kaggle


@pytest.fixture
def kaggle(sample_zips, tmp_path):
    work = tmp_path / "work"
    data = work / "data" / DOG.slug
    data.mkdir(parents=True)
    shutil.copy2(sample_zips["dog_breed"] / DOG.archive_name, data)
    with KaggleServer(DOG, sample_zips["dog_breed"], score_delay=0.2) as server:
        yield server, work, write_submission(work, sample_zips["dog_breed"])


@pytest.mark.parametrize(
    "status,retry_after,needles",
    [
        (401, None, ["401"]),
        (403, None, ["403", DOG.rules_url]),
        (429, "90", ["429", "90"]),
        (500, None, ["500"]),
    ],
)
def test_kaggle_refusals(kaggle, tmp_path, status, retry_after, needles):
    server, work, path = kaggle
    server.fail("StartSubmissionUpload", status, retry_after=retry_after)
    check(kit("submit", path, cwd=work, env=kit_env(tmp_path, server.url), kaggle=True), *needles)
    ledger = work / "submissions" / "ledger.jsonl"
    assert not ledger.exists() or all(json.loads(line) for line in ledger.read_text().splitlines())


def test_kaggle_timeout(kaggle, tmp_path):
    server, work, path = kaggle
    server.delay("StartSubmissionUpload", 5)
    env = kit_env(tmp_path, server.url, KAGGLE_KIT_HTTP_TIMEOUT="1")
    check(kit("submit", path, cwd=work, env=env, kaggle=True), "did not answer within 1 s", "KAGGLE_KIT_HTTP_TIMEOUT")


def test_a_stop_request_while_reporting_an_error_keeps_the_report_one_line(tmp_path):
    """The launcher SIGTERMs the surviving ranks of a run that lost one; a rank already reporting its own error
    must still end with its one line, not a KeyboardInterrupt traceback (seen once in CI under --nproc 2)."""
    script = tmp_path / "stopped_while_reporting.py"
    script.write_text(
        "import os, signal, sys\n"
        "import kaggle_kit.core.launch as launch\n"
        "def report(message, kind='error'):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # the stop request lands while the error is being reported\n"
        "    return False\n"
        "launch.report_to_launcher = report\n"
        "from kaggle_kit.cli import main\n"
        "main(['train', 'no-such-competition'])\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    check(result, "no-such-competition")


def test_an_in_process_call_leaves_the_callers_signal_handlers_alone():
    """Called from Python (tests, a notebook), a failing command must not leave Ctrl-C ignored afterwards: the
    processes the caller starts later would inherit that."""
    import signal

    from kaggle_kit.cli import main

    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(SystemExit):
        main(["train", "no-such-competition"])
    assert {number: signal.getsignal(number) for number in before} == before


def test_predict_out_naming_a_folder(trained, tmp_path):
    data, run, _ = trained
    folder = tmp_path / "subs"
    folder.mkdir()
    check(kit("predict", run, "--data-dir", data, "--out", folder), f"--out {folder} is a folder", ".csv")
    assert list(folder.iterdir()) == []


def test_demo_passes_its_weights_choice_on(tmp_path):
    """`demo dog_breed` offline is told to use --weights or --no-pretrained: demo must take both."""
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    check(
        kit(
            "demo", "dog_breed", "--out", tmp_path / "demo", "--epochs", "1", "--arch", "test_resnet", "--weights", junk
        ),
        "junk.safetensors",
    )
    assert "--no-pretrained" in kit("demo", "--help").stdout


def test_ctrl_c_before_the_first_epoch_ends_leaves_nothing_to_resume(sample_zips, tmp_path):
    """Stopped while its first epoch trains, a new run has nothing to resume: no folder, no resume line."""
    out = tmp_path / "first"
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAGGLE_KIT_PROGRESS": "1"}
    args = ["train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", out, "--arch", "resnet18"]
    args += ["--img-size", "224", "--batch-size", "8", "--epochs", "1", "--workers", "0", "--device", "cpu"]
    # a process of its own, forked from the worker's zygote; a failed check ends it (no resnet18 left training)
    with zygote().launch(tmp_path, env, args) as child:
        deadline = time.monotonic() + 300  # start-up, a 224 px cache and resnet18, beside other tests
        while "data: " not in child.said(child.stderr):  # said just before the epochs start
            assert child.running() and time.monotonic() < deadline, child.said(child.stderr)
            time.sleep(0.05)
        time.sleep(1)
        child.send_signal(signal.SIGINT)
        stopped = child.wait(timeout=120, raise_on_timeout=True)
    assert stopped.returncode == 130, stopped.stderr
    said = stopped.stderr
    assert "error: interrupted" in said and "resume with" not in said and "Traceback" not in said, said
    assert not out.exists()


def test_runs_lists_the_rest_when_one_folder_is_damaged(trained, tmp_path):
    data, run, _ = trained
    root = tmp_path / "runs"
    for name in ("good", "cut", "odd"):
        shutil.copytree(run, root / name)
    (root / "cut" / "history.csv").write_text("")  # a full disk cut it short
    (root / "odd" / "config.json").write_text("5")  # hand-edited
    result = kit("runs", "--root", root)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert str(root / "good") in result.stdout and str(root / "cut") not in result.stdout
    warnings = sorted(line for line in result.stderr.splitlines() if line.startswith("warning: skipped"))
    assert len(warnings) == 2 and str(root / "cut") in warnings[0] and str(root / "odd") in warnings[1], warnings
