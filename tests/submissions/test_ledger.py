"""The submission ledger: folding updates, concurrent writers, and a crash that tears the last line."""

import json
import multiprocessing
import os

import pytest

from kaggle_kit.submissions.ledger import COMPLETE, PENDING, TORN_SUFFIX, Ledger, default_ledger_path


def test_records_fold_updates_in_order(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first = ledger.add(
        "dog_breed", "submissions/dog_breed/a.csv", "aa" * 32, run="a", local_score=0.41, metric="log_loss"
    )
    second = ledger.add("cifar10", "submissions/cifar10/b.csv", "bb" * 32)
    ledger.update(first.id, kaggle_ref=7, status=PENDING)
    ledger.update(first.id, status=COMPLETE, public_score=0.43, private_score=0.44)

    records = ledger.records()
    assert [r.id for r in records] == [first.id, second.id]
    done = records[0]
    assert (done.kaggle_ref, done.status, done.public_score, done.private_score) == (7, COMPLETE, 0.43, 0.44)
    assert done.local_score == 0.41 and done.run == "a"
    assert records[1].status == "UPLOADING"
    assert [r.id for r in ledger.records("cifar10")] == [second.id]
    assert ledger.by_ref("dog_breed")[7].id == first.id
    # every line is one JSON object: the file is append-only, never rewritten
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["id"] for line in lines)


def test_path_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KIT_SUBMISSIONS_DIR", str(tmp_path / "subs"))
    assert default_ledger_path() == tmp_path / "subs" / "ledger.jsonl"
    Ledger().add("cifar10", "x.csv", "00" * 32)
    assert (tmp_path / "subs" / "ledger.jsonl").is_file()


def test_unknown_fields_are_refused(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(TypeError):
        ledger.add("cifar10", "x.csv", "00" * 32, colour="red")


def test_a_torn_last_line_is_skipped_then_moved_aside(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    kept = ledger.add("cifar10", "a.csv", "aa" * 32)
    # a writer that died halfway through its line
    with open(path, "ab") as handle:
        handle.write(b'{"event":"update","id":"' + kept.id.encode() + b'","status":"COMPL')
    assert [r.status for r in ledger.records()] == ["UPLOADING"]

    ledger.update(kept.id, status=COMPLETE, public_score=0.9)
    assert [(r.status, r.public_score) for r in ledger.records()] == [(COMPLETE, 0.9)]
    assert b"COMPL" in (tmp_path / ("ledger.jsonl" + TORN_SUFFIX)).read_bytes()
    assert path.read_bytes().endswith(b"\n")
    assert all(json.loads(line) for line in path.read_text().splitlines())


def _writer(path: str, worker: int, count: int) -> None:
    ledger = Ledger(path)
    for i in range(count):
        record = ledger.add("cifar10", f"w{worker}-{i}.csv", f"{worker:02d}" * 32, run=f"w{worker}")
        ledger.update(record.id, kaggle_ref=worker * 1000 + i, status=COMPLETE, public_score=0.5)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "ledger.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(path), w, 40)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    records = Ledger(path).records()
    assert len(records) == 120
    assert all(r.status == COMPLETE and r.kaggle_ref is not None for r in records)
    assert len({r.kaggle_ref for r in records}) == 120
    assert not os.path.exists(str(path) + TORN_SUFFIX)
