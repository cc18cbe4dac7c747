"""Fixtures of the tests against the fake Kaggle: a generated Dog Breed bundle, the server, a working folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kaggle_helpers import DOG
from kaggle_server import KaggleServer

from kaggle_kit.competitions.samples import write_sample


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    write_sample(DOG, folder, n_train=120, n_test=12)
    return folder


@pytest.fixture
def server(bundle):
    with KaggleServer(DOG, bundle, score_delay=0.3) as fake:
        yield fake


@pytest.fixture
def work(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def downloaded(work, bundle) -> Path:
    """A working folder whose data/<slug>/ already holds the download, as `kaggle-kit download` leaves it."""
    data = work / "data" / DOG.slug
    data.mkdir(parents=True)
    shutil.copy2(bundle / DOG.archive_name, data)
    return work
