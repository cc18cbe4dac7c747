"""`kaggle-kit download`, `submit`, `submissions` and `doctor` end to end: the real CLI, the real `kaggle`
client, a fake Kaggle.

Each command runs as a subprocess (`python -m kaggle_kit ...`), so the `kaggle` package is imported
fresh with the test's environment: credentials from KAGGLE_USERNAME/KAGGLE_KEY, HOME and
KAGGLE_CONFIG_DIR in a temporary folder (nothing of the machine leaks in), and
KAGGLE_KIT_API_ENDPOINT pointing the client kaggle-kit builds at `tests/kaggle_server.py` on an
ephemeral loopback port. Nothing in the client is patched: the HTTP, JSON, redirect, chunked upload
and download code that runs is the installed kaggle 2.2.5 / kagglesdk 0.1.38.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pytest
from helpers import ctrl_c_reaches_it
from kaggle_helpers import (
    assert_no_secret,
    assert_one_line_error,
    kit,
    kit_env,
    ledger_of,
    write_run,
    write_submission,
)
from kaggle_server import DEFAULT_KEY, DEFAULT_USERNAME, KaggleServer

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.submissions.ledger import Ledger

DOG = resolve("dog_breed")
RULES_URL = "https://www.kaggle.com/competitions/dog-breed-identification/rules"


# --------------------------------------------------------------------------- fixtures and helpers


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- download


def test_download_unpacks_once_and_rerun_is_a_no_op(server, work, tmp_path):
    env = kit_env(tmp_path, server.url)
    # a pasted competition URL normalises to the slug
    first = kit(["download", "https://www.kaggle.com/competitions/dog-breed-identification/data"], work, env)
    assert first.returncode == 0, first.stderr
    data = work / "data" / DOG.slug
    assert "downloaded dog-breed-identification.zip" in first.stdout
    assert "120 training images, 12 test images, 120 classes" in first.stdout
    assert (data / DOG.archive_name).is_file() and (data / DOG.sample_file).is_file() and (data / "train").is_dir()
    assert not list(data.glob("*.part*"))
    assert server.calls["DownloadDataFiles"] == 1 and server.calls["download"] == 1

    again = kit(["download", "dog_breed"], work, env)
    assert again.returncode == 0, again.stderr
    assert "already downloaded" in again.stdout
    assert server.calls["DownloadDataFiles"] == 1 and server.calls["download"] == 1  # Kaggle not contacted
    assert_no_secret(first)
    assert_no_secret(again)


def test_download_refused_for_rules_names_the_rules_page(server, work, tmp_path):
    server.fail("DownloadDataFiles", 403)
    proc = kit(["download", "dog_breed"], work, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, "403", RULES_URL, "spelled", "closed")
    assert not (work / "data" / DOG.slug / DOG.archive_name).exists()


def test_failed_download_leaves_nothing_and_a_rerun_completes(server, work, tmp_path):
    server.fail("download", 500, times=1)
    env = kit_env(tmp_path, server.url)
    failed = kit(["download", "dog_breed"], work, env)
    assert_one_line_error(failed, "server error (500)", "try again")
    assert not (work / "data" / DOG.slug / DOG.archive_name).exists()
    retried = kit(["download", "dog_breed"], work, env)
    assert retried.returncode == 0, retried.stderr
    assert (work / "data" / DOG.slug / DOG.sample_file).is_file()


def damaged_bundle(bundle: Path, tmp_path: Path, victim: zipfile.ZipInfo, damage) -> Path:
    """A copy of the bundle folder whose zip has `damage(data, start)` done to member `victim`'s packed bytes."""
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy2(bundle / "answers.csv", broken)
    data = bytearray((bundle / DOG.archive_name).read_bytes())
    damage(data, victim.header_offset + 30 + len(victim.filename.encode()) + len(victim.extra))
    (broken / DOG.archive_name).write_bytes(bytes(data))
    return broken


def test_damaged_download_is_refused_and_removed(bundle, work, tmp_path):
    with zipfile.ZipFile(bundle / DOG.archive_name) as zf:
        victim = next(i for i in zf.infolist() if i.filename.startswith("train/"))

    def flip_one_byte(data, start):  # inside a training image
        data[start + victim.compress_size // 2] ^= 0xFF

    broken = damaged_bundle(bundle, tmp_path, victim, flip_one_byte)
    with KaggleServer(DOG, broken) as server:
        proc = kit(["download", "dog_breed"], work, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, "damaged", victim.filename, "download dog_breed")
    folder = work / "data" / DOG.slug
    assert not (folder / DOG.archive_name).exists() and not list(folder.glob("*.part*"))


# --------------------------------------------------------------------------- submit


def test_submit_prints_scores_and_records_them(server, downloaded, bundle, tmp_path):
    work = downloaded
    local = write_run(work)
    path = write_submission(work, bundle)
    proc = kit(["submit", str(path.relative_to(work))], work, kit_env(tmp_path, server.url))
    assert proc.returncode == 0, proc.stderr
    public, private = server.expected_scores(path)
    assert f"public score {public:.5f}" in proc.stdout and f"private score {private:.5f}" in proc.stdout
    assert "log loss - lower is better" in proc.stdout
    assert_no_secret(proc)

    (record,) = ledger_of(work).records()
    (made,) = server.submissions
    assert record.status == "COMPLETE" and record.kaggle_ref == made.ref
    assert record.public_score == pytest.approx(public, abs=1e-5) and record.private_score == pytest.approx(
        private, abs=1e-5
    )
    assert record.competition == "dog_breed" and record.run == "run-a" and record.run_dir.endswith("runs/run-a")
    assert record.local_score == pytest.approx(local) and record.metric == "log_loss"
    assert record.recipe == "resnet34 best e10 bs64 lr0.01 cosine aug=modern"
    import hashlib

    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # the default message: run name, short config, file hash; it is what Kaggle received
    assert made.description == record.message
    assert made.description.startswith("run-a | resnet34 best") and record.sha256[:12] in made.description
    assert made.file_name == "run-a.csv" and made.data == path.read_bytes()


def test_bad_file_is_refused_before_upload(server, downloaded, bundle, tmp_path):
    path = write_submission(downloaded, bundle)
    frame = pd.read_csv(path, dtype=str)
    frame.drop(columns=["shih-tzu"]).iloc[:-1].to_csv(path, index=False)
    proc = kit(["submit", str(path), "-m", "broken"], downloaded, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, "was not uploaded", "shih-tzu", "kaggle-kit validate")
    assert server.calls["StartSubmissionUpload"] == 0 and not server.submissions
    assert ledger_of(downloaded).records() == []


def test_kaggle_error_reason_is_shown_and_recorded(server, downloaded, bundle, tmp_path):
    server.error_next_submission("Submission contains a value outside [0, 1] in row 3")
    path = write_submission(downloaded, bundle)
    proc = kit(["submit", str(path)], downloaded, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, "could not score run-a.csv", "outside [0, 1] in row 3")
    (record,) = ledger_of(downloaded).records()
    assert record.status == "ERROR" and "row 3" in record.error and record.kaggle_ref == server.submissions[0].ref


@pytest.mark.parametrize(
    "method, status, retry_after, needles, ledger_status",
    [
        ("StartSubmissionUpload", 403, None, ("403", RULES_URL, "closed"), "UPLOAD_FAILED"),
        ("StartSubmissionUpload", 429, "120", ("429", "wait 120 s", "retry budget of 4 s"), "UPLOAD_FAILED"),
        ("CreateSubmission", 500, None, ("500", "Kaggle's side", "try again"), "UPLOAD_FAILED"),
        ("upload", 500, None, ("upload of run-a.csv", "nothing was submitted"), "UPLOAD_FAILED"),
        (
            "StartSubmissionUpload",
            404,
            None,
            ("404", "check the competition slug 'dog-breed-identification'"),
            "UPLOAD_FAILED",
        ),
        ("GetSubmission", 404, None, ("still PENDING",), "PENDING"),
    ],
)
def test_kaggle_failures_are_one_line(
    server, downloaded, bundle, tmp_path, method, status, retry_after, needles, ledger_status
):
    server.fail(method, status, retry_after=retry_after)
    path = write_submission(downloaded, bundle)
    proc = kit(["submit", str(path), "--timeout", "2"], downloaded, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, *needles)
    if status == 429:
        assert server.calls[method] == 1  # Retry-After outlasts the budget: reported at once, no wait begun
    (record,) = ledger_of(downloaded).records()
    assert record.status == ledger_status


def test_wrong_key_is_a_401_and_never_printed(server, downloaded, bundle, tmp_path):
    wrong = "wrong-key-9f8e7d6c5b4a"
    path = write_submission(downloaded, bundle)
    proc = kit(["submit", str(path)], downloaded, kit_env(tmp_path, server.url, KAGGLE_KEY=wrong))
    assert_one_line_error(
        proc, "401", "invalid or expired", "settings/api", "KAGGLE_USERNAME/KAGGLE_KEY", secrets=(wrong,)
    )
    assert ledger_of(downloaded).records()[0].status == "UPLOAD_FAILED"


def test_no_credentials_says_how_to_create_them(server, downloaded, bundle, tmp_path):
    path = write_submission(downloaded, bundle)
    proc = kit(["submit", str(path)], downloaded, kit_env(tmp_path, server.url, KAGGLE_USERNAME=None, KAGGLE_KEY=None))
    assert_one_line_error(proc, "no Kaggle credentials", "settings/api", "access_token")
    assert ledger_of(downloaded).records() == [] and server.calls["StartSubmissionUpload"] == 0


def test_slow_kaggle_times_out_after_the_submission_is_made(server, downloaded, bundle, tmp_path):
    server.delay("GetSubmission", 4)
    path = write_submission(downloaded, bundle)
    proc = kit(["submit", str(path)], downloaded, kit_env(tmp_path, server.url, KAGGLE_KIT_HTTP_TIMEOUT="1"))
    assert_one_line_error(proc, "did not answer within 1 s", "it was submitted", "kaggle-kit submissions dog_breed")
    (record,) = ledger_of(downloaded).records()
    assert record.status == "PENDING" and record.kaggle_ref == server.submissions[0].ref


def test_a_stalled_upload_is_abandoned_after_the_timeout(server, downloaded, bundle, tmp_path):
    """The client PUTs the file through a session of its own without a timeout; kaggle-kit's applies to it too.
    The first PUT stalls past the timeout and is given up (without the timeout: waited out, 30 s and more)."""
    server.delay("upload", 30, times=1)
    path = write_submission(downloaded, bundle)
    started = time.monotonic()
    proc = kit(
        ["submit", str(path), "--timeout", "20"], downloaded, kit_env(tmp_path, server.url, KAGGLE_KIT_HTTP_TIMEOUT="1")
    )
    elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed  # without the timeout the first PUT alone would take 30 s
    # the client's own retry sent the file again, and that one went through
    assert proc.returncode == 0, proc.stderr
    (record,) = ledger_of(downloaded).records()
    assert server.calls["upload"] == 2 and record.status == "COMPLETE"


def test_network_down_is_one_line(downloaded, bundle, tmp_path):
    path = write_submission(downloaded, bundle)
    proc = kit(["submit", str(path)], downloaded, kit_env(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    assert_one_line_error(proc, "cannot reach Kaggle", "Connection refused", "kaggle-kit doctor")


def test_two_concurrent_submits_are_both_recorded(server, downloaded, bundle, tmp_path):
    env = kit_env(tmp_path, server.url)
    paths = [
        write_submission(downloaded, bundle, run, confidence) for run, confidence in (("run-a", 0.5), ("run-b", 0.7))
    ]
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "kaggle_kit", "submit", str(p)],
            cwd=downloaded,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in paths
    ]
    for process in running:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    records = ledger_of(downloaded).records()
    assert sorted(r.run for r in records) == ["run-a", "run-b"]
    assert all(r.status == "COMPLETE" and r.public_score is not None for r in records)
    assert len({r.kaggle_ref for r in records}) == 2 and len(server.submissions) == 2


# --------------------------------------------------------------------------- listing and doctor


def test_submissions_join_kaggle_with_the_ledger(server, downloaded, bundle, tmp_path):
    env = kit_env(tmp_path, server.url)
    local = write_run(downloaded)
    path = write_submission(downloaded, bundle)
    sent = kit(["submit", str(path), "--no-wait"], downloaded, env)
    assert sent.returncode == 0, sent.stderr
    assert ledger_of(downloaded).records()[0].status == "PENDING"
    time.sleep(0.4)  # the fake scores after 0.3 s

    listing = kit(["submissions", "dog_breed"], downloaded, env)
    assert listing.returncode == 0, listing.stderr
    ref = server.submissions[0].ref
    public, _ = server.expected_scores(path)
    row = next(line for line in listing.stdout.splitlines() if line.startswith(str(ref)))
    assert "COMPLETE" in row and f"{public:.5f}" in row and f"{local:.5f}" in row and "run-a" in row
    (record,) = ledger_of(downloaded).records()
    assert record.status == "COMPLETE" and record.public_score == pytest.approx(public, abs=1e-5)

    as_csv = kit(["scores", "dog-breed-identification", "--csv"], downloaded, env)
    assert as_csv.returncode == 0, as_csv.stderr
    (parsed,) = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert parsed["ref"] == str(ref) and parsed["run"] == "run-a" and parsed["status"] == "COMPLETE"
    assert float(parsed["local"]) == pytest.approx(local, abs=1e-5)
    assert_no_secret(listing)
    assert_no_secret(as_csv)


def listed_refs(listing: subprocess.CompletedProcess) -> set[int]:
    """The Kaggle refs in `kaggle-kit submissions` output: the rows start with one."""
    return {int(words[0]) for words in map(str.split, listing.stdout.splitlines()) if words and words[0].isdigit()}


def test_listing_reads_every_page_of_a_long_history(server, downloaded, bundle, tmp_path):
    """Kaggle answers 100 submissions a page and the client drops the next page's token: every page is read."""
    refs = server.add_past_submissions(230)
    listing = kit(["submissions", "dog_breed"], downloaded, kit_env(tmp_path, server.url))
    assert listing.returncode == 0, listing.stderr
    shown = listed_refs(listing)
    assert shown == set(refs)
    assert server.calls["ListSubmissions"] == 3  # 100 + 100 + 30: the short page ends it


def test_listing_stops_when_the_server_ignores_the_page_number(server, downloaded, bundle, tmp_path):
    refs = server.add_past_submissions(150)
    server.ignore_pages()
    listing = kit(["submissions", "dog_breed"], downloaded, kit_env(tmp_path, server.url))
    assert listing.returncode == 0, listing.stderr
    shown = listed_refs(listing)
    assert shown == set(refs[-100:])  # the newest page, once
    assert server.calls["ListSubmissions"] == 2  # the second answer brought nothing new


def test_listing_recovers_a_submit_that_died_after_the_upload(server, downloaded, bundle, tmp_path):
    env = kit_env(tmp_path, server.url)
    path = write_submission(downloaded, bundle)
    sent = kit(["submit", str(path), "--no-wait"], downloaded, env)
    assert sent.returncode == 0, sent.stderr
    ledger_path = downloaded / "submissions" / "ledger.jsonl"
    submit_line = ledger_path.read_text().splitlines()[0]
    ledger_path.write_text(submit_line + "\n" + submit_line[:40])  # as if killed before recording the ref, mid-line
    assert Ledger(ledger_path).records()[0].kaggle_ref is None  # the torn line is skipped
    time.sleep(0.4)
    listing = kit(["submissions", "dog_breed"], downloaded, env)
    assert listing.returncode == 0, listing.stderr
    (record,) = ledger_of(downloaded).records()
    assert (
        record.kaggle_ref == server.submissions[0].ref
        and record.status == "COMPLETE"
        and record.public_score is not None
    )


def test_submissions_refused_for_rules(server, work, tmp_path):
    server.fail("ListSubmissions", 403)
    proc = kit(["submissions", "dog_breed"], work, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, RULES_URL)


def test_doctor_names_the_source_and_fixes_permissions(server, work, tmp_path):
    config = tmp_path / "kaggle-config"
    config.mkdir()
    kaggle_json = config / "kaggle.json"
    kaggle_json.write_text(json.dumps({"username": DEFAULT_USERNAME, "key": DEFAULT_KEY}))
    kaggle_json.chmod(0o644)
    env = kit_env(
        tmp_path,
        server.url,
        KAGGLE_USERNAME=None,
        KAGGLE_KEY=None,
        HTTPS_PROXY="http://proxyuser:proxypass@10.0.0.1:3128",
    )
    loose = kit(["doctor", "--competition", "dog_breed"], work, env)
    assert loose.returncode == 1
    assert f"legacy key from {kaggle_json} (user {DEFAULT_USERNAME})" in loose.stdout
    assert f"chmod 600 {kaggle_json}" in loose.stdout
    assert "kaggle 2.2.5" in loose.stdout and "kagglesdk" in loose.stdout
    assert "HTTPS_PROXY=http://***@10.0.0.1:3128" in loose.stdout and "proxypass" not in loose.stdout
    assert "ok   kaggle call (dog_breed)" in loose.stdout
    assert "Traceback" not in loose.stderr
    assert_no_secret(loose)

    kaggle_json.chmod(0o600)
    tight = kit(
        ["doctor", "--competition", "dog_breed"],
        work,
        kit_env(tmp_path, server.url, KAGGLE_USERNAME=None, KAGGLE_KEY=None),
    )
    assert tight.returncode == 0, tight.stdout + tight.stderr
    assert "FAIL" not in tight.stdout
    assert_no_secret(tight)


def test_doctor_reports_a_refused_call_with_its_fix(server, work, tmp_path):
    server.fail("ListSubmissions", 403)
    proc = kit(["doctor", "-c", "dog_breed"], work, kit_env(tmp_path, server.url))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAIL kaggle call (dog_breed)" in proc.stdout and RULES_URL in proc.stdout
    assert "legacy key from the KAGGLE_USERNAME/KAGGLE_KEY environment variables" in proc.stdout
    assert_no_secret(proc)


def test_api_token_signs_in_and_stays_secret(bundle, work, tmp_path):
    token = "kk-token-5e4d3c2b1a0f9e8d"
    with KaggleServer(DOG, bundle, token=token) as server:
        env = kit_env(tmp_path, server.url, KAGGLE_USERNAME=None, KAGGLE_KEY=None, KAGGLE_API_TOKEN=token)
        checked = kit(["doctor", "-c", "dog_breed"], work, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "token from the KAGGLE_API_TOKEN environment variable" in checked.stdout
        listed = kit(["submissions", "dog_breed"], work, env)
        assert listed.returncode == 0 and "no submissions to dog-breed-identification yet" in listed.stdout
        expired = kit(["submissions", "dog_breed"], work, {**env, "KAGGLE_API_TOKEN": "kk-token-expired-000000"})
    assert_one_line_error(
        expired, "did not accept the API token", "settings/api", secrets=(token, "kk-token-expired-000000")
    )
    assert_no_secret(checked, token)
    assert_no_secret(listed, token)


def test_cifar10_download_and_submit_labels(work, tmp_path):
    cifar = resolve("cifar10")
    bundle = tmp_path / "cifar-bundle"
    write_sample(cifar, bundle, n_train=40, n_test=30)
    with KaggleServer(cifar, bundle, score_delay=0.2) as server:
        env = kit_env(tmp_path, server.url)
        fetched = kit(["download", "cifar-10"], work, env)
        assert fetched.returncode == 0, fetched.stderr
        assert "40 training images, 30 test images, 10 classes" in fetched.stdout
        sample = pd.read_csv(work / "data" / cifar.slug / cifar.sample_file, dtype=str)
        answers = pd.read_csv(bundle / "answers.csv", dtype=str).set_index("id")["label"]
        sample["label"] = [answers.get(i, "cat") for i in sample["id"]]  # right on every scored id
        path = work / "submissions" / "cifar10" / "perfect.csv"
        path.parent.mkdir(parents=True)
        sample.to_csv(path, index=False)
        sent = kit(["submit", str(path)], work, env)
    assert sent.returncode == 0, sent.stderr
    assert "public score 1.00000 (accuracy - higher is better), private score 1.00000" in sent.stdout
    (record,) = ledger_of(work).records()
    assert record.competition == "cifar10" and record.metric == "accuracy" and record.public_score == 1.0


# --------------------------------------------------------------------------- interruptions and repairs


def start_kit(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kaggle_kit", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_it,
    )


def wait_for_call(server: KaggleServer, method: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while server.calls[method] == 0:
        assert process.poll() is None and time.monotonic() < deadline, f"no {method} call: {process.communicate()}"
        time.sleep(0.05)


def stopped(process: subprocess.Popen, signal_number: int) -> subprocess.CompletedProcess:
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_ctrl_c_during_download_says_so_and_exits_130(server, work, tmp_path):
    """Typer hands a Ctrl-C back as a return value outside its standalone mode: it must not end as a silent 0
    (`kaggle-kit download dog_breed && kaggle-kit train ...` would go on)."""
    server.delay("download", 30, times=1)
    process = start_kit(["download", "dog_breed"], work, kit_env(tmp_path, server.url))
    wait_for_call(server, "download", process)
    proc = stopped(process, signal.SIGINT)
    assert proc.returncode == 130
    assert_one_line_error(proc, "interrupted")
    assert not (work / "data" / DOG.slug / DOG.archive_name).exists()


def test_stop_while_waiting_for_the_score_names_the_submission(bundle, downloaded, tmp_path):
    """SIGTERM (a notebook or scheduler stopping the command) after the upload: the submission exists on Kaggle,
    so the line says which one and where its score will show; the ledger keeps it PENDING with its ref."""
    path = write_submission(downloaded, bundle)
    with KaggleServer(DOG, bundle, score_delay=600) as server:
        process = start_kit(["submit", str(path)], downloaded, kit_env(tmp_path, server.url))
        wait_for_call(server, "GetSubmission", process)
        proc = stopped(process, signal.SIGTERM)
        (made,) = server.submissions
    assert proc.returncode == 130
    assert_one_line_error(
        proc, "interrupted while waiting for the score", f"submission {made.ref}", "kaggle-kit submissions dog_breed"
    )
    (record,) = ledger_of(downloaded).records()
    assert record.status == "PENDING" and record.kaggle_ref == made.ref


def test_a_download_whose_compressed_bytes_are_damaged_is_one_line_and_removed(bundle, work, tmp_path):
    """Damage inside a deflated member makes zlib itself fail (not the CRC check): still one line, no .part."""
    with zipfile.ZipFile(bundle / DOG.archive_name) as zf:
        victim = zf.getinfo(DOG.label_file)
    assert victim.compress_type == zipfile.ZIP_DEFLATED and victim.compress_size > 1000

    def reserved_block_type(data, start):  # the first deflate block header: final block of type 3, which zlib refuses
        data[start] = 0b111

    broken = damaged_bundle(bundle, tmp_path, victim, reserved_block_type)
    with zipfile.ZipFile(broken / DOG.archive_name) as zf, pytest.raises(zlib.error):
        zf.testzip()  # the damage this test is about
    with KaggleServer(DOG, broken) as server:
        proc = kit(["download", "dog_breed"], work, kit_env(tmp_path, server.url))
    assert_one_line_error(proc, "is not a readable zip", "error", "download dog_breed")
    folder = work / "data" / DOG.slug
    assert not (folder / DOG.archive_name).exists() and not list(folder.glob("*.part*"))


def test_download_repairs_deleted_files_from_the_zip_without_kaggle(server, work, tmp_path):
    env = kit_env(tmp_path, server.url)
    assert kit(["download", "dog_breed"], work, env).returncode == 0
    data = work / "data" / DOG.slug
    original = (data / DOG.label_file).read_bytes()
    (data / DOG.label_file).unlink()
    shutil.rmtree(data / "test")
    broken = kit(["info", "dog_breed"], work, env)
    assert_one_line_error(broken, DOG.label_file, "kaggle-kit download dog_breed")  # the fix it names must work:
    repaired = kit(["download", "dog_breed"], work, env)
    assert repaired.returncode == 0, repaired.stderr
    assert f"unpacking {DOG.archive_name} again" in repaired.stderr
    assert (data / DOG.label_file).read_bytes() == original and len(list((data / "test").iterdir())) == 12
    assert server.calls["download"] == 1  # from the verified zip on disk, not from Kaggle


def test_forced_download_unpacks_again_even_when_the_zip_keeps_its_stamp(server, work, tmp_path):
    """Kaggle's Last-Modified gives a fetched-again bundle the old zip's size and time: --force must still unpack."""
    env = kit_env(tmp_path, server.url)
    assert kit(["download", "dog_breed"], work, env).returncode == 0
    data = work / "data" / DOG.slug
    labels = data / DOG.label_file
    original = labels.read_bytes()
    labels.write_text("id,breed\n")  # damaged in place: present, so only a new unpack restores it
    forced = kit(["download", "dog_breed", "--force"], work, env)
    assert forced.returncode == 0, forced.stderr
    assert labels.read_bytes() == original and server.calls["download"] == 2


def test_an_incomplete_folder_without_its_zip_is_downloaded(server, bundle, work, tmp_path):
    """Unpacked files without the zip (copied by hand, half deleted): `download` fetches instead of looping on
    "the download is incomplete - run download again"."""
    data = work / "data" / DOG.slug
    data.mkdir(parents=True)
    with zipfile.ZipFile(bundle / DOG.archive_name) as zf:
        (data / DOG.sample_file).write_bytes(zf.read(DOG.sample_file))
    proc = kit(["download", "dog_breed"], work, kit_env(tmp_path, server.url))
    assert proc.returncode == 0, proc.stderr
    assert "incomplete download" in proc.stderr and server.calls["download"] == 1
    assert (data / DOG.label_file).is_file() and "120 training images" in proc.stdout


def test_unusable_settings_and_paths_are_one_line(server, work, tmp_path, downloaded, bundle):
    env = kit_env(tmp_path, server.url)
    assert_one_line_error(
        kit(["submissions", "dog_breed"], work, {**env, "KAGGLE_KIT_HTTP_TIMEOUT": "inf"}),
        "KAGGLE_KIT_HTTP_TIMEOUT='inf'",
        "between 0 and 86400",
    )
    path = write_submission(downloaded, bundle)
    assert_one_line_error(kit(["submit", str(path), "--timeout", "nan"], downloaded, env), "--timeout nan", "positive")
    assert server.calls["StartSubmissionUpload"] == 0 and ledger_of(downloaded).records() == []
    (work / "a-file").write_text("not a folder")
    assert_one_line_error(
        kit(["download", "dog_breed", "--data-dir", "a-file"], work, env), "--data-dir a-file is a file"
    )


def test_a_malformed_kaggle_json_is_named(server, work, tmp_path):
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text("{broken")
    (config / "kaggle.json").chmod(0o600)
    env = kit_env(tmp_path, server.url, KAGGLE_USERNAME=None, KAGGLE_KEY=None)
    doctor = kit(["doctor", "-c", "dog_breed"], work, env)
    assert doctor.returncode == 1 and f"FAIL credentials: {config / 'kaggle.json'} is not valid JSON" in doctor.stdout
    assert_one_line_error(
        kit(["download", "dog_breed"], work, env),
        f"{config / 'kaggle.json'} is not valid JSON",
        '"username"',
        "access_token",
    )
