"""`submissions` says how local validation has tracked the public score and names the final candidates."""

import time

import pytest
from kaggle_helpers import kit, kit_env, write_run, write_submission

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.submissions.trust import Scored, track

ACCURACY, LOG_LOSS = resolve("cifar10").metric, resolve("dog_breed").metric


def test_rank_correlation_furthest_runs_and_candidates_follow_the_metric_direction():
    agree = [Scored("a", 0.1, 0.2), Scored("b", 0.2, 0.3), Scored("c", 0.3, 0.9), Scored("c", 0.25, 0.5)]
    found = track(agree, ACCURACY)
    assert found.rank_correlation == pytest.approx(1.0) and found.pairs == 4
    assert found.furthest[0].run == "c" and found.furthest[0].public == 0.9
    assert [c.run for c in found.candidates] == ["c", "b"]  # higher accuracy first, one entry per run
    assert [c.run for c in track(agree, LOG_LOSS).candidates] == ["a", "b"]  # lower log loss first
    reversed_order = [Scored("a", 0.1, 0.9), Scored("b", 0.2, 0.5), Scored("c", 0.3, 0.1)]
    assert track(reversed_order, ACCURACY).rank_correlation == pytest.approx(-1.0)
    assert track(agree[:2], ACCURACY).rank_correlation is None  # two points rank nothing


def test_submissions_show_tracking_and_the_two_candidates(server, downloaded, bundle, tmp_path):  # noqa: F811
    env = kit_env(tmp_path, server.url)
    for name, temperature, confidence in (("run-a", 1.0, 0.3), ("run-b", 2.0, 0.5), ("run-c", 4.0, 0.9)):
        write_run(downloaded, name, temperature)
        sent = kit(
            ["submit", str(write_submission(downloaded, bundle, name, confidence)), "--no-wait"], downloaded, env
        )
        assert sent.returncode == 0, sent.stderr
    time.sleep(0.5)
    listing = kit(["submissions", "dog_breed"], downloaded, env)
    assert listing.returncode == 0, listing.stderr
    assert "local vs public: rank correlation" in listing.stdout and "over 3 submissions" in listing.stdout
    assert "furthest: run-" in listing.stdout
    candidates = next(line for line in listing.stdout.splitlines() if line.startswith("final selection candidates"))
    assert "run-a" in candidates and "run-b" in candidates and "run-c" not in candidates  # lowest local log loss
