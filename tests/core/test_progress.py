"""Progress lines by default where no terminal reads them (a log, CI, a notebook's `!kaggle-kit train`), and
`--quiet` to silence them."""

import re

from helpers import TINY_CPU_ARGS, run_cli

DEFAULT = {"KAGGLE_KIT_PROGRESS": None}  # as a user's shell has it: unset


def test_train_and_predict_print_a_line_per_epoch_with_rate_and_eta_unless_quiet(tiny_cifar, tmp_path):
    out = tmp_path / "run"
    args = ["--data-dir", tiny_cifar, *TINY_CPU_ARGS, "--epochs", "2", "--tta", "off"]
    trained = run_cli("train", "cifar10", *args, "--out", out, env=DEFAULT)
    assert trained.returncode == 0, trained.stderr
    figure = r"accuracy [\d.]+ \[[\d.]+, [\d.]+\] n=\d+"
    line = rf"^epoch (\d): .* {figure} \| .* (\d+) img/s \| (\d) epoch\(s\) left, eta \d\d:\d\d$"
    epochs = re.findall(line, trained.stderr, re.M)  # each with its validation figure's interval and n
    assert [(e, left) for e, _, left in epochs] == [("1", "1"), ("2", "0")], trained.stderr
    assert re.search(r"^training .*: \d+/\d+ [\d.,]+/s eta", trained.stderr, re.M), trained.stderr
    predicted = run_cli("predict", out, "--out", tmp_path / "a.csv", "--device", "cpu", env=DEFAULT)
    assert predicted.returncode == 0 and re.search(r"/s eta \d\d:\d\d", predicted.stderr), predicted.stderr

    quiet = run_cli("train", "cifar10", *args, "--epochs", "1", "--out", tmp_path / "q", "--quiet", env=DEFAULT)
    assert quiet.returncode == 0, quiet.stderr
    assert "epoch 1:" not in quiet.stderr and " eta " not in quiet.stderr, quiet.stderr
    again = run_cli("predict", out, "--out", tmp_path / "b.csv", "--device", "cpu", "--quiet", env=DEFAULT)
    assert again.returncode == 0 and " eta " not in again.stderr, again.stderr
