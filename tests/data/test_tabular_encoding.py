"""The tabular encoding: fitted on the training rows alone, recorded as JSON and applied unchanged; the joined
[truth | features] rows split back into the truth as it was and the features."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from kaggle_kit.data.tabular import FeatureJoin, TabularEncoding, fit_encoding

TRAIN = pd.DataFrame(
    {
        "sex": ["male", "female", "", "male"],
        "age_approx": ["40.0", "60.0", "80.0", ""],
        "Eyes": ["0", "1", "1", "0"],
    }
)


def test_encoding_is_fitted_on_the_training_rows_and_applied_unchanged():
    encoding = fit_encoding(TRAIN, ("sex", "age_approx", "Eyes"))
    sex, age, eyes = encoding.columns
    assert (sex.kind, sex.categories, sex.indicator) == ("categorical", ("female", "male"), True)
    assert (age.kind, age.mean, age.indicator) == ("numeric", 60.0, True)
    assert age.std == pytest.approx(np.std([40.0, 60.0, 80.0]))
    assert (eyes.kind, eyes.indicator, eyes.width) == ("numeric", False, 1)
    assert encoding.width == 3 + 2 + 1
    # a test row: an unseen category gets no 1, a missing age the training mean (0) and its indicator, and the
    # numbers the training split's mean and spread, not the test rows' own
    test = pd.DataFrame({"sex": ["other", "female"], "age_approx": ["NA", "100.0"], "Eyes": ["1", "1"]})
    rows = encoding.encode(test)
    assert rows.dtype == np.float32 and rows.shape == (2, 6)
    assert rows[0].tolist() == [0, 0, 0, 0, 1, pytest.approx((1 - 0.5) / 0.5)]
    assert rows[1, :3].tolist() == [1, 0, 0] and rows[1, 3] == pytest.approx(40 / age.std) and rows[1, 4] == 0
    again = TabularEncoding.from_record(json.loads(json.dumps(encoding.record())))
    assert again == encoding and np.array_equal(again.encode(test), rows)


def test_joined_rows_split_into_the_truth_as_it_was_and_the_features():
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    labels = np.array([2, 0, 1])
    join = FeatureJoin.of(labels, features)
    truth, tab = join.split(torch.from_numpy(join.join(labels, features)))
    assert truth.dtype == torch.int64 and truth.tolist() == [2, 0, 1] and tab.tolist() == features.tolist()
    sets = np.array([[1, 0], [0, 1], [1, 1]])  # a label set keeps its columns
    truth, tab = FeatureJoin.of(sets.astype(np.float64), features).split(
        torch.from_numpy(FeatureJoin.of(sets, features).join(sets, features))
    )
    assert truth.shape == (3, 2) and truth.is_floating_point() and tab.shape == (3, 2)
