"""Submission files: exact format for both competitions, atomic writes, validation, scoring, CLI."""

import csv
import math
import os
import time
from pathlib import Path

import helpers
import numpy as np
import pandas as pd
import pytest

from kaggle_kit.competitions.metrics import log_loss
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.core.atomic import atomic_output
from kaggle_kit.core.errors import KitError
from kaggle_kit.data import sample_submission
from kaggle_kit.submissions import files as sub

CIFAR = resolve("cifar10")
DOG = resolve("dog_breed")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# kaggle-facts section 2, verbatim: the sample submission's 120 columns
BREEDS = """affenpinscher afghan_hound african_hunting_dog airedale american_staffordshire_terrier appenzeller
australian_terrier basenji basset beagle bedlington_terrier bernese_mountain_dog black-and-tan_coonhound
blenheim_spaniel bloodhound bluetick border_collie border_terrier borzoi boston_bull bouvier_des_flandres
boxer brabancon_griffon briard brittany_spaniel bull_mastiff cairn cardigan chesapeake_bay_retriever
chihuahua chow clumber cocker_spaniel collie curly-coated_retriever dandie_dinmont dhole dingo doberman
english_foxhound english_setter english_springer entlebucher eskimo_dog flat-coated_retriever
french_bulldog german_shepherd german_short-haired_pointer giant_schnauzer golden_retriever gordon_setter
great_dane great_pyrenees greater_swiss_mountain_dog groenendael ibizan_hound irish_setter irish_terrier
irish_water_spaniel irish_wolfhound italian_greyhound japanese_spaniel keeshond kelpie kerry_blue_terrier
komondor kuvasz labrador_retriever lakeland_terrier leonberg lhasa malamute malinois maltese_dog
mexican_hairless miniature_pinscher miniature_poodle miniature_schnauzer newfoundland norfolk_terrier
norwegian_elkhound norwich_terrier old_english_sheepdog otterhound papillon pekinese pembroke pomeranian
pug redbone rhodesian_ridgeback rottweiler saint_bernard saluki samoyed schipperke scotch_terrier
scottish_deerhound sealyham_terrier shetland_sheepdog shih-tzu siberian_husky silky_terrier
soft-coated_wheaten_terrier staffordshire_bullterrier standard_poodle standard_schnauzer sussex_spaniel
tibetan_mastiff tibetan_terrier toy_poodle toy_terrier vizsla walker_hound weimaraner
welsh_springer_spaniel west_highland_white_terrier whippet wire-haired_fox_terrier yorkshire_terrier""".split()


# --------------------------------------------------------------------------- helpers


def cifar_sample(folder: Path, n: int = 30, order=None) -> Path:
    """A CIFAR-10 sampleSubmission.csv in the real form: `id,label`, integer ids, one label everywhere."""
    ids = list(range(1, n + 1)) if order is None else order
    path = folder / "sampleSubmission.csv"
    path.write_text("id,label\n" + "".join(f"{i},cat\n" for i in ids))
    return path


def dog_ids(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [rng.bytes(16).hex() for _ in range(n)]
    # an all-digit hex id with leading zeros: read as a number it would lose them
    ids[0] = "00112233445566778899001122334455"
    return ids


def dog_sample(folder: Path, n: int = 12) -> Path:
    """A Dog Breed sample_submission.csv in the real form: id + 120 breeds, uniform 1/120 rows."""
    path = folder / "sample_submission.csv"
    uniform = ",".join(["0.00833333333333333"] * 120)
    path.write_text("id," + ",".join(BREEDS) + "\n" + "".join(f"{i},{uniform}\n" for i in dog_ids(n)))
    return path


def random_probs(n: int, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(classes) * 0.3, size=n)


def first_line(path: Path) -> bytes:
    return path.read_bytes().split(b"\n", 1)[0]


def write_good_cifar(tmp_path: Path, n: int = 30) -> tuple[Path, Path]:
    sample_path = cifar_sample(tmp_path, n)
    sample = sample_submission.read_sample(sample_path, CIFAR)
    ids = sample["id"].tolist()
    out = sub.write_submission(tmp_path / "out" / "cifar.csv", CIFAR, sample, ids, random_probs(n, 10), CIFAR_CLASSES)
    return out, sample_path


def write_good_dog(tmp_path: Path, n: int = 12) -> tuple[Path, Path]:
    sample_path = dog_sample(tmp_path, n)
    sample = sample_submission.read_sample(sample_path, DOG)
    out = sub.write_submission(
        tmp_path / "out" / "dog.csv", DOG, sample, sample["id"].tolist(), random_probs(n, 120), BREEDS
    )
    return out, sample_path


def edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def set_cell(path: Path, row: int, column: int, value: str) -> None:
    def edit(lines):
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
        return lines

    edit_lines(path, edit)


def only_problem(path: Path, comp, sample_path: Path) -> str:
    problems = sub.validate(path, comp, sample_path)
    assert len(problems) == 1, problems
    return problems[0]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- the declarations


def test_breed_list_is_sorted_and_declared():
    assert len(BREEDS) == 120 and BREEDS == sorted(BREEDS)
    assert list(DOG.declared_classes) == BREEDS
    assert list(CIFAR.declared_classes) == CIFAR_CLASSES


# --------------------------------------------------------------------------- read_sample


def test_read_sample_keeps_ids_as_strings_exactly(tmp_path):
    sample = sample_submission.read_sample(dog_sample(tmp_path, 5), DOG)
    assert sample["id"].tolist() == dog_ids(5)
    assert list(sample.columns) == ["id", *BREEDS]
    cifar = sample_submission.read_sample(cifar_sample(tmp_path, 3), CIFAR)
    assert cifar["id"].tolist() == ["1", "2", "3"]
    assert (
        sample_submission.sample_classes(sample, DOG) == BREEDS
        and sample_submission.sample_classes(cifar, CIFAR) == CIFAR_CLASSES
    )


@pytest.mark.parametrize(
    "header, expected",
    [
        ("id,Label", "expected id,label"),
        ("ImageId,label", "first column must be 'id'"),
        ("id,label,extra", "expected id,label"),
    ],
)
def test_read_sample_rejects_a_wrong_cifar_header(tmp_path, header, expected):
    path = tmp_path / "sampleSubmission.csv"
    path.write_text(header + "\n1,cat\n")
    with pytest.raises(KitError) as error:
        sample_submission.read_sample(path, CIFAR)
    message = str(error.value)
    assert f"{path}: header is {header}" in message and expected in message
    assert "re-download" in message and "\n" not in message


def test_read_sample_rejects_underscore_breed_variants(tmp_path):
    path = dog_sample(tmp_path, 3)
    path.write_text(path.read_text().replace("black-and-tan_coonhound", "black_and_tan_coonhound"))
    with pytest.raises(KitError, match="missing 'black-and-tan_coonhound'; unexpected 'black_and_tan_coonhound'"):
        sample_submission.read_sample(path, DOG)


def test_read_sample_rejects_missing_empty_and_duplicated(tmp_path):
    with pytest.raises(KitError, match="not found"):
        sample_submission.read_sample(tmp_path / "nope.csv", CIFAR)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(KitError, match="is empty"):
        sample_submission.read_sample(empty, CIFAR)
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,label\n")
    with pytest.raises(KitError, match="no rows"):
        sample_submission.read_sample(header_only, CIFAR)
    duplicated = cifar_sample(tmp_path, order=[1, 2, 2, 3])
    with pytest.raises(KitError, match="repeats 1 ids \\('2'\\)"):
        sample_submission.read_sample(duplicated, CIFAR)


def test_read_sample_rejects_padded_ids_instead_of_stripping_them(tmp_path):
    path = cifar_sample(tmp_path, order=["1", " 2", "3"])
    with pytest.raises(KitError) as error:
        sample_submission.read_sample(path, CIFAR)
    message = str(error.value)
    assert "spaces around the id ' 2' on line 3" in message and "\n" not in message


def test_layout_uses_the_same_reader_and_never_strips_ids(tmp_path):
    from kaggle_kit.competitions.samples import write_sample
    from kaggle_kit.data import layout, sample_submission

    assert layout.read_sample is sample_submission.read_sample is sub.read_sample
    write_sample(DOG, tmp_path, n_train=120, n_test=6)
    opened = layout.open_layout(DOG, tmp_path)
    labels_path = opened.labels_path
    text = labels_path.read_text().splitlines()
    first_id = text[1].split(",")[0]
    text[1] = text[1].replace(first_id, f" {first_id}", 1)
    labels_path.write_text("\n".join(text) + "\n")
    with pytest.raises(KitError, match=f"id ' {first_id}' has spaces around it"):
        layout.open_layout(DOG, tmp_path)


def test_find_sample_path_reads_no_image(tmp_path, monkeypatch):
    from kaggle_kit.competitions.samples import write_sample
    from kaggle_kit.data import layout

    write_sample(CIFAR, tmp_path / "data", n_train=20, n_test=10)

    def no_listing(*args, **kwargs):
        raise AssertionError("find_sample_path must not list images")

    monkeypatch.setattr(layout, "image_source", no_listing)
    monkeypatch.setattr(layout.archive, "sevenzip_names", no_listing)
    path = layout.find_sample_path(CIFAR, tmp_path / "data")
    assert path.name == "sampleSubmission.csv" and len(sample_submission.read_sample(path, CIFAR)) == 10
    with pytest.raises(KitError, match="does not exist"):
        layout.find_sample_path(CIFAR, tmp_path / "missing")


# --------------------------------------------------------------------------- write_submission: exact format


def test_cifar_file_is_byte_exact(tmp_path):
    sample_path = cifar_sample(tmp_path, 3)
    sample = sample_submission.read_sample(sample_path, CIFAR)
    probs = np.zeros((3, 10))
    probs[[0, 1, 2], [9, 0, 3]] = 1.0  # ids 3, 1, 2 below: truck, airplane, cat
    out = sub.write_submission(tmp_path / "sub.csv", CIFAR, sample, ["3", "1", "2"], probs, CIFAR_CLASSES)
    assert out == tmp_path / "sub.csv"
    assert out.read_bytes() == b"id,label\n1,airplane\n2,cat\n3,truck\n"


def test_cifar_rows_follow_the_sample_order_with_every_unscored_id(tmp_path):
    rng = np.random.default_rng(3)
    n = 200  # stands for all 300,000 test images, scored or not
    sample_order = [int(i) for i in rng.permutation(np.arange(1, n + 1))]
    sample_path = cifar_sample(tmp_path, order=sample_order)
    sample = sample_submission.read_sample(sample_path, CIFAR)
    predicted_ids = [str(i) for i in range(1, n + 1)]  # numeric order, not the sample's
    probs = random_probs(n, 10)
    # the model's class order differs from the declared one: columns are matched by name
    model_classes = CIFAR_CLASSES[::-1]
    out = sub.write_submission(tmp_path / "sub.csv", CIFAR, sample, predicted_ids, probs[:, ::-1], model_classes)

    assert first_line(out) == first_line(sample_path)
    written = pd.read_csv(out, dtype=str)
    assert len(written) == n
    assert written["id"].tolist() == [str(i) for i in sample_order]
    expected = {str(i): CIFAR_CLASSES[int(probs[i - 1].argmax())] for i in range(1, n + 1)}
    assert written["label"].tolist() == [expected[i] for i in written["id"]]
    assert set(written["label"]) <= set(CIFAR_CLASSES)
    assert sub.validate(out, CIFAR, sample_path) == []


def test_dog_file_has_sample_columns_full_precision_rows_summing_to_one(tmp_path):
    n = 12
    sample_path = dog_sample(tmp_path, n)
    sample = sample_submission.read_sample(sample_path, DOG)
    rng = np.random.default_rng(1)
    ids = sample["id"].tolist()
    probs = random_probs(n, 120) * rng.uniform(0.5, 2.0, size=(n, 1))  # rows not summing to 1
    # predictions in another id order and another class order than the sample's
    id_perm = rng.permutation(n)
    class_perm = rng.permutation(120)
    out = sub.write_submission(
        tmp_path / "sub.csv",
        DOG,
        sample,
        [ids[i] for i in id_perm],
        probs[id_perm][:, class_perm],
        [BREEDS[c] for c in class_perm],
    )

    assert first_line(out) == first_line(sample_path)
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", *BREEDS]
    assert [r[0] for r in rows[1:]] == ids  # leading zeros kept: ids are strings
    text = np.array([r[1:] for r in rows[1:]])
    # full precision: every value is the shortest text that parses back to the same float64
    values = text.astype(np.float64)
    assert all(repr(float(t)) == t for t in text.ravel())
    expected = probs / probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(values, expected, rtol=1e-15, atol=0)
    assert np.abs(values.sum(axis=1) - 1).max() < 1e-12
    assert sub.validate(out, DOG, sample_path) == []


def test_header_bom_and_crlf_of_the_sample_are_copied(tmp_path):
    sample_path = tmp_path / "sampleSubmission.csv"
    sample_path.write_bytes(b"\xef\xbb\xbfid,label\r\n1,cat\r\n2,cat\r\n")
    sample = sample_submission.read_sample(sample_path, CIFAR)
    assert list(sample.columns) == ["id", "label"]
    out = sub.write_submission(tmp_path / "sub.csv", CIFAR, sample, ["1", "2"], np.eye(10)[:2], CIFAR_CLASSES)
    assert out.read_bytes() == b"\xef\xbb\xbfid,label\r\n1,airplane\r\n2,automobile\r\n"
    assert sub.validate(out, CIFAR, sample_path) == []


def test_write_rejects_missing_and_extra_ids_and_wrong_classes(tmp_path):
    sample_path = dog_sample(tmp_path, 4)
    sample = sample_submission.read_sample(sample_path, DOG)
    ids = sample["id"].tolist()
    target = tmp_path / "out" / "sub.csv"
    with pytest.raises(KitError, match=f"1 ids of the sample submission have no prediction \\('{ids[3]}'\\)"):
        sub.write_submission(target, DOG, sample, ids[:3], random_probs(3, 120), BREEDS)
    with pytest.raises(KitError, match="1 predicted ids are not in the sample submission \\('f+'\\)"):
        sub.write_submission(target, DOG, sample, ids + ["f" * 32], random_probs(5, 120), BREEDS)
    with pytest.raises(KitError, match="predictions repeat 1 ids"):
        sub.write_submission(target, DOG, sample, ids + ids[:1], random_probs(5, 120), BREEDS)
    underscored = [b.replace("-", "_") for b in BREEDS]
    with pytest.raises(KitError, match="sample only: 'black-and-tan_coonhound'"):
        sub.write_submission(target, DOG, sample, ids, random_probs(4, 120), underscored)
    with pytest.raises(KitError, match="shape \\(4, 10\\), expected \\(4 ids, 120 classes\\)"):
        sub.write_submission(target, DOG, sample, ids, random_probs(4, 10), BREEDS)
    broken = random_probs(4, 120)
    broken[2, 5] = np.nan
    with pytest.raises(KitError, match="1 prediction rows hold NaN"):
        sub.write_submission(target, DOG, sample, ids, broken, BREEDS)
    assert not target.parent.exists() or files_in(target.parent) == []


# --------------------------------------------------------------------------- atomic write


def test_interrupted_rename_leaves_no_file_and_no_temp(tmp_path, monkeypatch):
    sample_path = cifar_sample(tmp_path, 5)
    sample = sample_submission.read_sample(sample_path, CIFAR)
    out_dir = tmp_path / "out"

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(sub.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sub.write_submission(
            out_dir / "sub.csv", CIFAR, sample, sample["id"].tolist(), random_probs(5, 10), CIFAR_CLASSES
        )
    assert files_in(out_dir) == []


def test_failure_midway_through_the_rows_keeps_the_previous_file(tmp_path, monkeypatch):
    sample_path = cifar_sample(tmp_path, 50)
    sample = sample_submission.read_sample(sample_path, CIFAR)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    previous = out_dir / "sub.csv"
    previous.write_bytes(b"an earlier submission\n")
    real_to_csv = pd.DataFrame.to_csv

    def half_written(self, out, **kwargs):
        real_to_csv(self.iloc[: len(self) // 2], out, **kwargs)  # some rows reach the disk, then it breaks
        raise MemoryError("out of memory halfway")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(MemoryError):
        sub.write_submission(previous, CIFAR, sample, sample["id"].tolist(), random_probs(50, 10), CIFAR_CLASSES)
    assert files_in(out_dir) == ["sub.csv"]
    assert previous.read_bytes() == b"an earlier submission\n"


def test_atomic_output_publishes_only_complete_files(tmp_path):
    target = tmp_path / "deep" / "folder" / "file.csv"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as out:
            out.write(b"id,label\n1,")
            raise KeyboardInterrupt
    assert files_in(target.parent) == []
    with atomic_output(target) as out:
        out.write(b"id,label\n")
    assert target.read_bytes() == b"id,label\n"
    assert files_in(target.parent) == ["file.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------- validate: one test per fault


def test_validate_passes_good_files(tmp_path):
    for write, comp in ((write_good_cifar, CIFAR), (write_good_dog, DOG)):
        folder = tmp_path / comp.name
        folder.mkdir()
        out, sample_path = write(folder)
        result = sub.inspect_submission(out, comp, sample_path)
        assert result.ok and result.problems == []
        assert result.rows == len(pd.read_csv(sample_path)) and result.columns == (2 if comp is CIFAR else 121)


def test_validate_header_changed(tmp_path):
    out, sample_path = write_good_dog(tmp_path)
    out.write_text(out.read_text().replace("black-and-tan_coonhound", "black_and_tan_coonhound", 1))
    problem = only_problem(out, DOG, sample_path)
    assert "header differs from the sample at column 14" in problem
    assert "expected 'black-and-tan_coonhound', found 'black_and_tan_coonhound'" in problem


def test_validate_header_reordered_or_shortened(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    edit_lines(out, lambda lines: ["label,id"] + lines[1:])
    problems = sub.validate(out, CIFAR, sample_path)
    assert "at column 1: expected 'id', found 'label' (same columns in another order)" in problems[0]
    edit_lines(out, lambda lines: ["id"] + lines[1:])
    problems = sub.validate(out, CIFAR, sample_path)
    assert "at column 2: expected 'label', found no column (1 columns, the sample has 2)" in problems[0]


def test_validate_header_bytes_differ_with_same_names(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    edit_lines(out, lambda lines: ['"id","label"'] + lines[1:])
    problem = only_problem(out, CIFAR, sample_path)
    assert "header bytes differ from the sample though the column names match" in problem
    assert "'id,label'" in problem and '\'"id","label"\'' in problem


def test_validate_missing_id(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    edit_lines(out, lambda lines: [line for line in lines if not line.startswith("7,")])
    problems = sub.validate(out, CIFAR, sample_path)
    assert problems == [
        "29 rows, the sample has 30: write one row per sample id",
        "1 ids of the sample are missing ('7'): Kaggle needs a row for every id",
    ]


def test_validate_extra_id(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    edit_lines(out, lambda lines: lines + ["31,cat", "300001,dog"])
    problems = sub.validate(out, CIFAR, sample_path)
    assert len(problems) == 2 and problems[0].startswith("32 rows, the sample has 30")
    assert problems[1].startswith("2 ids are not in the sample ('31', '300001')")


def test_validate_duplicate_id(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    edit_lines(out, lambda lines: [line if not line.startswith("8,") else "5,cat" for line in lines])
    problems = sub.validate(out, CIFAR, sample_path)
    assert problems == [
        "1 duplicate id rows ('5'): keep one row per id",
        "1 ids of the sample are missing ('8'): Kaggle needs a row for every id",
    ]


def test_validate_bad_label(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    set_cell(out, 3, 1, "Cat")
    set_cell(out, 9, 1, "aeroplane")
    problem = only_problem(out, CIFAR, sample_path)
    assert problem.startswith("2 labels are not class names ('Cat' (id 3), 'aeroplane' (id 9))")
    assert "airplane, automobile" in problem


def test_validate_nan(tmp_path):
    out, sample_path = write_good_dog(tmp_path)
    set_cell(out, 2, 5, "nan")
    problem = only_problem(out, DOG, sample_path)
    ids = dog_ids(12)
    assert problem.startswith(f"1 values are NaN (id {ids[1]} column {BREEDS[4]})")


def test_validate_infinite_empty_and_non_numeric(tmp_path):
    out, sample_path = write_good_dog(tmp_path)
    set_cell(out, 1, 1, "inf")
    set_cell(out, 2, 1, "")
    set_cell(out, 3, 1, "50%")
    problems = sub.validate(out, DOG, sample_path)
    kinds = [p.split(" (")[0] for p in problems]
    assert kinds == ["1 values are not numbers", "1 values are empty", "1 values are infinite"]


def test_validate_negative(tmp_path):
    out, sample_path = write_good_dog(tmp_path)
    values = [float(v) for v in out.read_text().splitlines()[4].split(",")[1:3]]
    # keep the row sum: take the mass of column 1 into column 2 and push column 1 below zero
    set_cell(out, 4, 1, repr(-0.01))
    set_cell(out, 4, 2, repr(values[0] + values[1] + 0.01))
    problem = only_problem(out, DOG, sample_path)
    assert problem.startswith(f"1 probabilities are negative (id {dog_ids(12)[3]} column affenpinscher)")


def test_validate_above_one(tmp_path):
    out, sample_path = write_good_dog(tmp_path)
    set_cell(out, 1, 3, "1.5")
    problems = sub.validate(out, DOG, sample_path)
    assert problems[0].startswith("1 probabilities are above 1")
    assert problems[1].startswith("1 rows do not sum to 1")


def test_validate_row_sum_off(tmp_path):
    out, sample_path = write_good_dog(tmp_path)
    edit_lines(out, lambda lines: lines[:1] + [",".join([row.split(",")[0]] + ["0.02"] * 120) for row in lines[1:]])
    problem = only_problem(out, DOG, sample_path)
    assert problem.startswith(f"12 rows do not sum to 1 within 0.001 (id {dog_ids(12)[0]} sums to 2.4")
    assert "Kaggle rescales each row, but this signals a bug" in problem


def test_validate_empty_file(tmp_path):
    _, sample_path = write_good_cifar(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert only_problem(empty, CIFAR, sample_path).startswith("the file is empty (0 bytes)")


def test_validate_not_a_csv(tmp_path):
    _, sample_path = write_good_cifar(tmp_path)
    image = tmp_path / "submission.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00 ")
    assert only_problem(image, CIFAR, sample_path).startswith("the file is not a CSV (not UTF-8 text)")


def test_validate_ragged_rows(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    set_cell(out, 4, 1, "cat,dog")
    problems = sub.validate(out, CIFAR, sample_path)
    assert len(problems) == 1 and problems[0].startswith("the file is not a valid CSV (")
    assert "line 5 has 3 fields, the header 2" in problems[0]


def test_validate_trailing_commas_name_the_line_not_the_ids(tmp_path):
    """One field more on every row than in the header: pandas would read the ids as an index and report every
    probability as an unknown id; the line and the likely cause are named instead, and scoring refuses too."""
    out, sample_path = write_good_dog(tmp_path)
    edit_lines(out, lambda lines: lines[:1] + [line + "," for line in lines[1:]])
    problem = only_problem(out, DOG, sample_path)
    assert problem.startswith("the file is not a valid CSV (line 2 has 122 fields, the header 121 (a trailing comma?))")
    answers = tmp_path / "answers.csv"
    answers.write_text("id,breed\n" + "".join(f"{i},pug\n" for i in dog_ids(12)))
    with pytest.raises(KitError, match=r"submission .* is not a readable CSV \(line 2 has 122 fields"):
        sub.score(out, answers, DOG)


def test_validate_old_mac_line_endings_is_a_problem_not_a_crash(tmp_path, capsys):
    out, sample_path = write_good_cifar(tmp_path)
    out.write_bytes(out.read_bytes().replace(b"\n", b"\r"))
    assert only_problem(out, CIFAR, sample_path) == (
        "the lines end in CR only (old Mac line endings): save the file with LF or CRLF line endings"
    )
    code, _, stderr = run_cli(capsys, "validate", str(out), "-c", "cifar10", "--sample", str(sample_path))
    assert code == 1 and "Traceback" not in stderr and "CR only" in stderr
    sample_path.write_bytes(sample_path.read_bytes().replace(b"\n", b"\r"))
    with pytest.raises(KitError, match="old Mac line endings"):
        sample_submission.read_sample(sample_path, CIFAR)


def test_score_names_a_misspelt_class_column_of_the_submission(tmp_path):
    out, _ = write_good_dog(tmp_path)
    edit_lines(out, lambda lines: [lines[0].replace("shih-tzu", "shih_tzu")] + lines[1:])
    answers = tmp_path / "answers.csv"
    answers.write_text("id,breed\n" + "".join(f"{i},shih-tzu\n" for i in dog_ids(12)))
    with pytest.raises(
        KitError,
        match=r"submission .*dog.csv columns do not match the classes \(missing 'shih-tzu'; unexpected 'shih_tzu'\)",
    ):
        sub.score(out, answers, DOG)


def test_validate_missing_file_and_many_problems_are_counted(tmp_path):
    out, sample_path = write_good_cifar(tmp_path)
    assert sub.validate(tmp_path / "absent.csv", CIFAR, sample_path) == [
        f"cannot read {tmp_path / 'absent.csv'}: no such file"
    ]
    edit_lines(out, lambda lines: lines[:1] + [f"{i},cat" for i in range(1001, 1031)])
    problems = sub.validate(out, CIFAR, sample_path)
    assert (
        problems[0] == "30 ids of the sample are missing ('1', '2', '3' and 27 more): Kaggle needs a row for every id"
    )


def test_validate_is_fast_on_300000_rows(tmp_path):
    n = 300_000
    sample_path = cifar_sample(tmp_path, n)
    labels = np.array(CIFAR_CLASSES, dtype=object)[np.random.default_rng(0).integers(0, 10, n)]
    labels[[10, 200_000]] = "Cat"
    out = tmp_path / "sub.csv"
    out.write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in zip(range(1, n + 1), labels)))
    start = time.perf_counter()
    problems = sub.validate(out, CIFAR, sample_path)
    elapsed = time.perf_counter() - start
    assert problems == [
        "2 labels are not class names ('Cat' (id 11), 'Cat' (id 200001)): use exactly " + ", ".join(CIFAR_CLASSES)
    ]
    assert elapsed < 10, f"validate took {elapsed:.1f}s on 300,000 rows"


# --------------------------------------------------------------------------- score


def test_score_cifar_matches_by_id_and_ignores_unscored_rows(tmp_path):
    out, _ = write_good_cifar(tmp_path, 30)
    written = pd.read_csv(out, dtype=str).set_index("id")["label"]
    # 10 scored ids (the rest are junk rows), in shuffled order; 7 of them answered as submitted
    scored = ["17", "3", "25", "9", "1", "30", "12", "6", "21", "14"]
    truth = [written[i] if k < 7 else ("truck" if written[i] != "truck" else "ship") for k, i in enumerate(scored)]
    answers = tmp_path / "answers.csv"
    pd.DataFrame({"id": scored, "label": truth}).to_csv(answers, index=False)
    assert sub.score(out, answers, CIFAR, CIFAR_CLASSES) == pytest.approx(0.7)
    assert sub.score(out, answers, CIFAR) == pytest.approx(0.7)


def test_score_counts_an_unknown_label_as_wrong(tmp_path):
    out, _ = write_good_cifar(tmp_path, 4)
    written = pd.read_csv(out, dtype=str)
    answers = tmp_path / "answers.csv"
    written.to_csv(answers, index=False)
    set_cell(out, 1, 1, "not-a-class")
    assert sub.score(out, answers, CIFAR) == pytest.approx(0.75)


def test_score_dog_log_loss_with_shuffled_answers(tmp_path):
    out, _ = write_good_dog(tmp_path, 12)
    written = pd.read_csv(out, dtype={"id": str})
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 120, size=12)
    order = rng.permutation(12)
    answers = tmp_path / "answers.csv"
    pd.DataFrame({"id": written["id"].to_numpy()[order], "breed": np.array(BREEDS)[truth[order]]}).to_csv(
        answers, index=False
    )
    expected = log_loss(truth, written[BREEDS].to_numpy())
    assert sub.score(out, answers, DOG, BREEDS) == pytest.approx(expected, rel=1e-12)
    assert sub.score(out, answers, DOG) == pytest.approx(expected, rel=1e-12)
    # a hand-made file: one confidently wrong row and one uniform row
    hand = tmp_path / "hand.csv"
    ids = written["id"].tolist()[:2]
    wrong = ["1"] + ["0"] * 119
    uniform = [repr(1 / 120)] * 120
    hand.write_text(
        "id,"
        + ",".join(BREEDS)
        + "\n"
        + f"{ids[0]},"
        + ",".join(wrong)
        + "\n"
        + f"{ids[1]},"
        + ",".join(uniform)
        + "\n"
    )
    pd.DataFrame({"id": ids, "breed": ["beagle", "beagle"]}).to_csv(answers, index=False)
    assert sub.score(hand, answers, DOG) == pytest.approx((-math.log(1e-15) + math.log(120)) / 2, rel=1e-9)


def test_score_requires_a_row_for_every_answer(tmp_path):
    out, _ = write_good_cifar(tmp_path, 5)
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n1,cat\n6,dog\n")
    with pytest.raises(KitError, match="1 answered ids have no row in submission .* \\('6'\\)"):
        sub.score(out, answers, CIFAR)
    answers.write_text("id,breed\n1,cat\n")
    with pytest.raises(KitError, match="has no column 'label'"):
        sub.score(out, answers, CIFAR)
    answers.write_text("id,label\n1,kitten\n")
    with pytest.raises(KitError, match="labels 'kitten' outside the class list"):
        sub.score(out, answers, CIFAR)


# --------------------------------------------------------------------------- CLI


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """conftest's in-process runner, as (exit code, stdout, stderr)."""
    result = helpers.run_cli(*args)
    return result.returncode, result.stdout, result.stderr


def test_cli_validate_ok_and_competition_from_path(tmp_path, capsys):
    sample_path = cifar_sample(tmp_path, 10)
    sample = sample_submission.read_sample(sample_path, CIFAR)
    out = tmp_path / "submissions" / "cifar10" / "run1.csv"
    sub.write_submission(out, CIFAR, sample, sample["id"].tolist(), random_probs(10, 10), CIFAR_CLASSES)
    code, stdout, stderr = run_cli(capsys, "validate", str(out), "--sample", str(sample_path))
    assert code == 0, stderr
    assert stdout == f"ok: {out}: 10 rows, header matches {sample_path}\n"


def test_cli_validate_lists_problems_and_exits_1(tmp_path, capsys):
    out, sample_path = write_good_cifar(tmp_path)
    edit_lines(out, lambda lines: lines[:-1] + ["29,Cat"])
    code, stdout, stderr = run_cli(
        capsys, "validate", str(out), "--competition", "cifar-10", "--sample", str(sample_path)
    )
    assert code == 1 and stdout == ""
    lines = stderr.splitlines()
    assert lines[0] == f"error: {out} is not a valid cifar-10 submission (3 problems):"
    assert lines[1] == "  - 1 duplicate id rows ('29'): keep one row per id"
    assert len(lines) == 4


def test_cli_validate_needs_a_competition(tmp_path, capsys):
    out, sample_path = write_good_cifar(tmp_path)
    code, _, stderr = run_cli(capsys, "validate", str(out), "--sample", str(sample_path))
    assert code == 2
    assert (
        stderr == f"error: cannot tell which competition {out} is for: pass --competition (e.g. cifar10 or dog_breed)\n"
    )


def assert_scored(stdout: str, figure: str, rows: int, direction: str) -> None:
    """`score FILE`'s one line: the figure, its 95% bootstrap interval over the answered rows, n, the direction."""
    import re

    found = re.fullmatch(r"(.+) \[(-?[\d.]+), (-?[\d.]+)\] n=(\d+) - (.+)\n", stdout)
    assert found and found.group(1) == figure and found.group(5) == direction, stdout
    low, high, value = float(found.group(2)), float(found.group(3)), float(figure.split()[-1])
    assert int(found.group(4)) == rows and low - 5e-4 <= value <= high + 5e-4, stdout


def test_cli_score_prints_the_metric_with_its_direction(tmp_path, capsys):
    out, _ = write_good_dog(tmp_path)
    answers = tmp_path / "answers.csv"
    written = pd.read_csv(out, dtype={"id": str})
    pd.DataFrame({"id": written["id"], "breed": "pug"}).to_csv(answers, index=False)
    expected = log_loss(np.full(12, BREEDS.index("pug")), written[BREEDS].to_numpy())
    code, stdout, stderr = run_cli(
        capsys, "score", str(out), "--answers", str(answers), "-c", "dog-breed-identification"
    )
    assert code == 0, stderr
    assert_scored(stdout, f"log loss {expected:.4f}", 12, "lower is better")
    code, _, stderr = run_cli(capsys, "score", str(out), "-c", "dogs")
    assert code == 2 and stderr.startswith(f"error: scoring {out} needs --answers")
    # a mistyped run folder is not asked for answers: it is said not to exist
    code, _, stderr = run_cli(capsys, "score", str(tmp_path / "runs" / "cv5"))
    assert (
        code == 2
        and stderr
        == f"error: {tmp_path / 'runs' / 'cv5'} does not exist: pass a submission CSV "
        "(with --answers), a run folder or a fold group\n"
    )


def test_cli_validate_and_score_a_generated_download(tmp_path, capsys):
    from kaggle_kit.competitions.samples import write_sample

    zip_path = write_sample(CIFAR, tmp_path / "data", n_train=20, n_test=40)
    sample_path = tmp_path / "sampleSubmission.csv"
    import zipfile

    with zipfile.ZipFile(zip_path) as archive:
        sample_path.write_bytes(next(archive.read(n) for n in archive.namelist() if n.endswith("sampleSubmission.csv")))
    sample = sample_submission.read_sample(sample_path, CIFAR)
    out = tmp_path / "submissions" / "cifar10" / "all-cat.csv"
    probs = np.zeros((40, 10))
    probs[:, CIFAR_CLASSES.index("cat")] = 1
    sub.write_submission(out, CIFAR, sample, sample["id"].tolist(), probs, CIFAR_CLASSES)

    code, stdout, stderr = run_cli(capsys, "validate", str(out), "--data-dir", str(tmp_path / "data"))
    assert code == 0, stderr
    assert stdout.startswith(f"ok: {out}: 40 rows, header matches ")
    answers = pd.read_csv(tmp_path / "data" / "answers.csv", dtype=str)
    assert 0 < len(answers) < 40  # CIFAR-10's unscored junk rows are in the sample, not the answers
    code, stdout, stderr = run_cli(capsys, "score", str(out), "--answers", str(tmp_path / "data" / "answers.csv"))
    assert code == 0, stderr
    assert_scored(stdout, f"accuracy {(answers['label'] == 'cat').mean():.4f}", len(answers), "higher is better")
    # one label per row has no probabilities: log loss of one-hot rows would be ~34.5 per miss, a misleading figure
    code, stdout, stderr = run_cli(
        capsys, "score", str(out), "--answers", str(tmp_path / "data" / "answers.csv"), "--metric", "logloss"
    )
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith("error: --metric logloss: log loss scores probabilities, but cifar10 submissions hold")


def test_cli_score_by_another_metric_our_name_or_kaggles(tmp_path, capsys):
    out, _ = write_good_dog(tmp_path)
    answers = tmp_path / "answers.csv"
    written = pd.read_csv(out, dtype={"id": str})
    truth = np.array([BREEDS.index(b) for b in ["pug", "beagle", "pug"] * 4])
    pd.DataFrame({"id": written["id"], "breed": np.array(BREEDS)[truth]}).to_csv(answers, index=False)
    predicted = written[BREEDS].to_numpy().argmax(axis=1)
    from sklearn.metrics import f1_score

    expected = f1_score(truth, predicted, average="macro")
    for name in ("f1-macro", "Mean F-Score Macro"):
        code, stdout, stderr = run_cli(
            capsys, "score", str(out), "--answers", str(answers), "-c", "dogs", "--metric", name
        )
        assert code == 0, stderr
        assert_scored(stdout, f"macro F1 {expected:.4f}", 12, "higher is better")
    code, _, stderr = run_cli(capsys, "score", str(out), "--answers", str(answers), "-c", "dogs", "--metric", "f2")
    assert code == 2 and stderr.startswith("error: unknown metric 'f2'") and stderr.count("\n") == 1


def test_cli_score_takes_qwk_on_grades_only(tmp_path, capsys, monkeypatch):
    """QWK scores an order: refused on dog breeds (one line naming --metric and the metrics that fit), taken on a
    competition whose classes are integer grades though it declares another metric, and scored as scikit-learn."""
    import dataclasses

    from sklearn.metrics import cohen_kappa_score

    from kaggle_kit.competitions.declaration import dump
    from kaggle_kit.competitions.registry import rediscover

    out, _ = write_good_dog(tmp_path)
    answers = tmp_path / "answers.csv"
    written = pd.read_csv(out, dtype={"id": str})
    pd.DataFrame({"id": written["id"], "breed": "pug"}).to_csv(answers, index=False)
    code, stdout, stderr = run_cli(
        capsys, "score", str(out), "--answers", str(answers), "-c", "dogs", "--metric", "qwk"
    )
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(
        "error: --metric qwk: quadratic weighted kappa scores ordered grades, but the classes of dog_breed are names "
        "(affenpinscher, afghan_hound, african_hunting_dog, ...)"
    )
    assert stderr.rstrip().endswith("pick one that fits: accuracy, logloss, auc, f1-micro, f1-macro")

    folder = tmp_path / "config" / "kaggle-kit" / "competitions"
    folder.mkdir(parents=True)
    grades = tuple(str(g) for g in range(5))
    graded = dataclasses.replace(CIFAR, name="graded", slug="graded-mini", aliases=(), declared_classes=grades)
    (folder / "graded.toml").write_text(dump(graded))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    rediscover()
    truth, predicted = [0, 1, 2, 3, 4, 4, 2, 0], [0, 2, 2, 3, 1, 4, 2, 1]
    ids = [str(i) for i in range(1, 9)]
    pd.DataFrame({"id": ids, "label": predicted}).to_csv(tmp_path / "graded.csv", index=False)
    pd.DataFrame({"id": ids, "label": truth}).to_csv(tmp_path / "graded-answers.csv", index=False)
    score = ("score", str(tmp_path / "graded.csv"), "--answers", str(tmp_path / "graded-answers.csv"), "-c", "graded")
    code, stdout, stderr = run_cli(capsys, *score, "--metric", "Quadratic Weighted Kappa")
    assert code == 0, stderr
    expected = cohen_kappa_score(truth, predicted, weights="quadratic")
    assert_scored(stdout, f"quadratic weighted kappa {expected:.4f}", 8, "higher is better")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    rediscover()
