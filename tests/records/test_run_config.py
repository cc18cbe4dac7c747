"""config.json read as one typed RunConfig, whatever version of kaggle-kit wrote it."""

import json

import pytest

from kaggle_kit.config.recipe import Recipe
from kaggle_kit.core.errors import KitError
from kaggle_kit.records.run_config import RunConfig, update_config
from kaggle_kit.records.run_folder import RunDir


def test_a_full_config_reads_as_typed_attributes(tmp_path):
    calibration = {"best": {"checkpoint": "best", "epoch": 2, "tta": True}, "last": {"checkpoint": "last", "epoch": 4}}
    RunDir(tmp_path).create(
        {
            "competition": "cifar10",
            "recipe": Recipe(lr=0.05).to_dict(),
            "classes": ["a", "b"],
            "data_dir": "data/x",
            "fingerprint": "f1",
            "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
            "tta": True,
            "temperature": 1.5,
            "calibration": calibration,
            "versions": {"torch": "2"},
            "command": ["train"],
        }
    )
    config = RunDir(tmp_path).read_config()
    assert config == RunConfig.read(tmp_path)
    assert (config.competition, config.data_dir, config.fingerprint) == ("cifar10", "data/x", "f1")
    assert config.recipe == Recipe(lr=0.05) and config.classes == ("a", "b")
    assert config.mean == (0.5, 0.5, 0.5) and config.std == (0.25, 0.25, 0.25)
    assert (config.tta, config.temperature, config.versions, config.command) == (True, 1.5, {"torch": "2"}, ("train",))
    assert config.calibration_of("best")["epoch"] == 2 and config.calibration_of("last")["epoch"] == 4


def test_an_old_config_loads_flat_calibration_and_missing_keys(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"competition": "cifar10", "recipe": {"lr": 0.1}, "calibration": {"checkpoint": "last", "epoch": 1}})
    )
    config = RunConfig.read(tmp_path)
    assert config.calibration_of("last") == {"checkpoint": "last", "epoch": 1} and config.calibration_of("best") is None
    assert (config.classes, config.normalization, config.data_dir, config.temperature, config.tta) == (None,) * 5
    assert config.recipe.lr == 0.1


def test_update_keeps_unknown_keys_and_a_missing_file_is_one_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"competition": "cifar10", "from_the_future": 1}))
    update_config(tmp_path, temperature=2.0)
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "competition": "cifar10",
        "from_the_future": 1,
        "temperature": 2.0,
    }
    with pytest.raises(KitError, match="is not a run folder"):
        RunConfig.read(tmp_path / "nothing")
