"""The data layer on generated downloads in the exact Kaggle layouts: every accepted form, ids,
classes, split, cache reuse, and each bad input as a one-line error."""

import io
import os
import shutil
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, run_cli

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.core.errors import KitError
from kaggle_kit.data import layout as layout_module
from kaggle_kit.data.cache import load_images
from kaggle_kit.data.layout import UNPACK_MARKER, open_layout
from kaggle_kit.data.split import load_split, save_split, stratified_split

CIFAR = resolve("cifar10")
DOG = resolve("dog_breed")


def test_cifar_zip_with_inner_7z_is_read_without_unpacking_images(fresh_sample):
    folder = fresh_sample("cifar10")
    layout = open_layout(CIFAR, folder)
    assert layout.train.kind == "7z" and layout.test.kind == "7z"
    assert not (folder / "train").exists()  # images stay in the archive
    assert layout.classes == list(CIFAR.declared_classes)
    assert layout.train.ids[:12] == [str(i) for i in range(1, 13)]  # 1, 2, ..., 10 - not 1, 10, 2
    labels = pd.read_csv(folder / "trainLabels.csv", dtype=str)
    by_id = dict(zip(labels.id, labels.label))
    assert [layout.classes[c] for c in layout.train_labels[:20]] == [by_id[i] for i in layout.train.ids[:20]]


def test_reopening_is_a_no_op(fresh_sample):
    folder = fresh_sample("dog_breed")
    open_layout(DOG, folder)
    marker = folder / UNPACK_MARKER
    stamp = marker.stat().st_mtime_ns
    label_mtime = (folder / "labels.csv").stat().st_mtime_ns
    open_layout(DOG, folder)
    assert marker.stat().st_mtime_ns == stamp
    assert (folder / "labels.csv").stat().st_mtime_ns == label_mtime


def test_a_second_download_is_not_unpacked_over_the_first(fresh_sample, pristine_samples):
    """The Kaggle client saves every zip in the current folder: a second competition's zip given there must not
    merge its train/ into the first's nor replace its sample submission."""
    folder = fresh_sample("dog_breed")
    shutil.copy(pristine_samples["cifar10"] / CIFAR.archive_name, folder)
    run_cli("info", "dog_breed", "--data-dir", folder / DOG.archive_name)
    labels = (folder / "labels.csv").read_bytes()
    result = run_cli("info", "cifar10", "--data-dir", folder / CIFAR.archive_name)
    assert_one_line_error(result, f"already holds the unpacked {DOG.archive_name}", f"mkdir {folder / 'cifar-10'}")
    assert not (folder / "trainLabels.csv").exists() and (folder / "labels.csv").read_bytes() == labels
    own = folder / "cifar-10"
    own.mkdir()
    shutil.move(folder / CIFAR.archive_name, own)
    assert run_cli("info", "cifar10", "--data-dir", own).returncode == 0


def test_unpacking_the_same_download_again_keeps_the_data_fingerprint(fresh_sample):
    """CIFAR-10's nested train.7z/test.7z are fingerprinted by size and time: unpacked again (a repair by
    `download`), they keep the zip's member times, so runs on them still resume and caches still match."""
    folder = fresh_sample("cifar10")
    first = open_layout(CIFAR, folder).fingerprint()
    (folder / UNPACK_MARKER).unlink()
    time.sleep(0.01)
    second = open_layout(CIFAR, folder)
    assert second.fingerprint() == first and second.train.kind == "7z"


def test_interrupted_unpack_is_redone_not_half_used(fresh_sample):
    folder = fresh_sample("dog_breed")
    staging = folder / ".kaggle-kit-unpacking"
    (staging / "train").mkdir(parents=True)
    (staging / "train" / "half.jpg").write_bytes(b"\xff\xd8")  # what a killed unpack leaves
    layout = open_layout(DOG, folder)
    assert not staging.exists()
    assert len(layout.train.ids) == len(list((folder / "train").iterdir()))


def test_top_level_folder_and_nested_zips_are_accepted(tmp_path):
    write_sample(DOG, tmp_path, nested=True, top_folder=True, n_train=240, n_test=40)
    layout = open_layout(DOG, tmp_path)
    assert layout.train.kind == "zip" and layout.test.kind == "zip"
    assert layout.labels_path.name == "labels.csv" and layout.sample_path.name == "sample_submission.csv"
    assert len(layout.train.ids) == 240 and len(layout.test.ids) == 40
    cache = load_images(layout, "train", 64)
    assert len(cache) == 240 and cache[0].dtype == np.uint8 and min(cache[0].shape[:2]) <= 64


def test_data_dir_may_name_the_zip_itself(fresh_sample):
    folder = fresh_sample("cifar10")
    layout = open_layout(CIFAR, folder / "cifar-10.zip")
    assert layout.root == folder


def test_unpacked_folder_without_zip(fresh_sample, tmp_path):
    folder = fresh_sample("dog_breed")
    open_layout(DOG, folder)
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain, ignore=shutil.ignore_patterns("*.zip", ".kaggle-kit*"))
    layout = open_layout(DOG, plain)
    assert layout.root == plain and layout.train.kind == "folder"


def test_test_ids_follow_sample_order_and_classes_follow_sample_columns(fresh_sample):
    folder = fresh_sample("dog_breed")
    open_layout(DOG, folder)
    sample = pd.read_csv(folder / "sample_submission.csv", dtype=str)
    sample = sample.iloc[::-1]
    sample.to_csv(folder / "sample_submission.csv", index=False)
    layout = open_layout(DOG, folder)
    assert layout.test.ids == sample["id"].tolist()
    assert layout.classes == list(sample.columns[1:])
    assert layout.classes == sorted(layout.classes) and "black-and-tan_coonhound" in layout.classes


def test_kaggle_notebook_input_is_found(tmp_path, monkeypatch, sample_zips):
    kaggle_input = tmp_path / "input"
    shutil.copytree(sample_zips["cifar10"], kaggle_input / "cifar-10")
    monkeypatch.setattr(layout_module, "KAGGLE_INPUT", kaggle_input)
    assert layout_module.default_data_dir(CIFAR) == kaggle_input / "cifar-10"


def test_split_is_seeded_stratified_and_reloadable(tmp_path):
    labels = np.repeat(np.arange(10), 50)
    train_a, val_a = stratified_split(labels, 0.1, seed=3)
    train_b, val_b = stratified_split(labels, 0.1, seed=3)
    _, val_c = stratified_split(labels, 0.1, seed=4)
    assert np.array_equal(val_a, val_b) and not np.array_equal(val_a, val_c)
    assert np.bincount(labels[val_a]).tolist() == [5] * 10
    assert len(np.intersect1d(train_a, val_a)) == 0 and len(train_a) + len(val_a) == 500
    ids = [str(i) for i in range(1, 501)]
    save_split(tmp_path / "split.json", ids, val_a, 0.1, 3)
    train_r, val_r = load_split(tmp_path / "split.json", ids)
    assert np.array_equal(val_r, val_a) and np.array_equal(train_r, train_a)


def test_cache_is_built_once_and_reused(fresh_sample):
    layout = open_layout(CIFAR, fresh_sample("cifar10"))
    first = load_images(layout, "train")
    second = load_images(layout, "train")
    assert first.freshly_built and not second.freshly_built
    array = second.uniform_array()
    assert array.shape == (len(layout.train.ids), 32, 32, 3) and isinstance(array, np.memmap)
    assert np.array_equal(array[5], first[5])


def test_cache_decodes_the_right_pixels(fresh_sample):
    import cv2

    folder = fresh_sample("dog_breed")
    layout = open_layout(DOG, folder)
    cache = load_images(layout, "test", short_side=None)
    image_id = layout.test.ids[7]
    expected = cv2.cvtColor(cv2.imread(str(folder / "test" / f"{image_id}.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(cache[7], expected)


def test_an_image_replaced_by_one_of_the_same_size_gets_a_new_cache(fresh_sample):
    """A test image overwritten by another of exactly the same byte size (uncompressed PNGs of one size, which the
    decoder reads whatever the name says): the cache must hold the new pixels, and the old data's cache goes."""
    import cv2

    def solid(rgb) -> bytes:
        image = np.zeros((80, 60, 3), np.uint8)
        image[:] = rgb[::-1]  # OpenCV writes BGR
        return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes()

    red, blue = solid((255, 0, 0)), solid((0, 0, 255))
    assert len(red) == len(blue)
    folder = fresh_sample("dog_breed")
    layout = open_layout(DOG, folder)
    victim = folder / "test" / f"{layout.test.ids[0]}.jpg"
    victim.write_bytes(red)
    old = load_images(open_layout(DOG, folder), "test", 64)
    assert (old[0] == (255, 0, 0)).all()
    victim.write_bytes(blue)
    fresh = load_images(open_layout(DOG, folder), "test", 64)
    assert fresh.freshly_built and (fresh[0] == (0, 0, 255)).all()
    assert not old.path.exists()  # the stale cache is removed once the new one is built


def test_a_cut_short_cache_is_rebuilt_not_read(fresh_sample):
    layout = open_layout(CIFAR, fresh_sample("cifar10"))
    built = load_images(layout, "train")
    expected = built[-1].copy()
    pixels = built.path / "pixels.u8"
    with open(pixels, "r+b") as f:
        f.truncate(pixels.stat().st_size // 2)
    again = load_images(layout, "train")
    assert again.freshly_built and np.array_equal(again[-1], expected)
    pixels.unlink()
    assert load_images(layout, "train").freshly_built


def test_a_replaced_nested_labels_zip_is_read_even_with_an_older_time(tmp_path):
    """`cp -p` or rsync keep a replaced labels.csv.zip's old time: the copy unpacked from it is still refreshed."""
    write_sample(DOG, tmp_path, nested=True, n_train=240, n_test=40)
    folder = tmp_path
    layout = open_layout(DOG, folder)
    packed = folder / "labels.csv.zip"
    old_time = packed.stat().st_mtime_ns
    with zipfile.ZipFile(packed) as zf:
        rows = zf.read("labels.csv").decode().splitlines()
    relabelled = [rows[0]] + [f"{row.split(',')[0]},affenpinscher" for row in rows[1:]]
    with zipfile.ZipFile(packed, "w") as zf:
        zf.writestr("labels.csv", "\n".join(relabelled) + "\n")
    os.utime(packed, ns=(old_time - 10**9, old_time - 10**9))
    layout = open_layout(DOG, folder)
    assert (layout.train_labels == layout.classes.index("affenpinscher")).all()


def test_the_same_sample_seed_gives_the_same_data_in_every_process(tmp_path):
    """Dog ids came out of a set, whose order follows the process's hash seed."""
    import subprocess
    import sys

    from helpers import REPO

    digests = set()
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, "-m", "kaggle_kit", "sample", "dog_breed", str(out), "--n-train", "120", "--n-test", "10"],
            check=True,
            env=env,
            capture_output=True,
        )
        with zipfile.ZipFile(out / DOG.archive_name) as zf:
            digests.add(zf.read("labels.csv"))
    assert len(digests) == 1


# ------------------------------------------------------------------------------ bad inputs


def _expect(error_text: str, func, *args):
    with pytest.raises(KitError) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message and error_text in message, message
    return message


def test_missing_data_folder(tmp_path):
    _expect("kaggle-kit download", open_layout, CIFAR, tmp_path / "nope")


def test_unknown_breed_duplicate_id_and_missing_column(fresh_sample):
    folder = fresh_sample("dog_breed")
    open_layout(DOG, folder)
    labels_path = folder / "labels.csv"
    good = labels_path.read_text()
    labels = pd.read_csv(labels_path, dtype=str)
    labels.loc[3, "breed"] = "black_and_tan_coonhound"  # the underscore variant is wrong
    labels.to_csv(labels_path, index=False)
    message = _expect("black_and_tan_coonhound", open_layout, DOG, folder)
    assert labels.loc[3, "id"] in message
    labels_path.write_text(good + good.splitlines()[1] + "\n")
    _expect("appears more than once", open_layout, DOG, folder)
    labels_path.write_text(good.replace("id,breed", "id,label", 1))
    _expect("'breed' is missing", open_layout, DOG, folder)


def test_sample_header_changed(fresh_sample):
    folder = fresh_sample("cifar10")
    open_layout(CIFAR, folder)
    path = folder / "sampleSubmission.csv"
    path.write_text(path.read_text().replace("id,label", "ID,Label", 1))
    _expect("sampleSubmission.csv: header is ID,Label", open_layout, CIFAR, folder)


def test_missing_image_for_a_labelled_id(fresh_sample):
    folder = fresh_sample("dog_breed")
    layout = open_layout(DOG, folder)
    victim = layout.train.ids[4]
    (folder / "train" / f"{victim}.jpg").unlink()
    _expect(victim, open_layout, DOG, folder)


def test_corrupt_and_empty_images_stop_the_cache_or_are_skipped(fresh_sample):
    folder = fresh_sample("dog_breed")
    layout = open_layout(DOG, folder)
    bad = layout.train.ids[:2]
    (folder / "train" / f"{bad[0]}.jpg").write_bytes(b"not a jpeg at all")
    (folder / "train" / f"{bad[1]}.jpg").write_bytes(b"")
    layout = open_layout(DOG, folder)
    message = _expect("--skip-bad-images", load_images, layout, "train", 64)
    assert bad[0] in message and bad[1] in message
    assert not any(p.name.startswith("train-") for p in (layout.work_dir / "cache").iterdir())
    cache = load_images(layout, "train", 64, skip_bad=True)
    assert sorted(cache.bad_ids) == sorted(bad) and len(cache) == len(layout.train.ids)


def test_archive_member_escaping_the_target_is_rejected(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    with zipfile.ZipFile(folder / "cifar-10.zip", "w") as zf:
        zf.writestr("sampleSubmission.csv", "id,label\n1,cat\n")
        zf.writestr("../../escaped.txt", "gotcha")
    _expect("outside the target folder", open_layout, CIFAR, folder)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_truncated_zip_and_7z(fresh_sample, tmp_path):
    folder = fresh_sample("cifar10")
    zip_path = folder / "cifar-10.zip"
    data = zip_path.read_bytes()
    zip_path.write_bytes(data[: len(data) // 2])
    _expect("not a readable zip", open_layout, CIFAR, folder)
    # a good outer zip whose inner train.7z is cut short
    other = tmp_path / "cut7z"
    other.mkdir()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(other / "cifar-10.zip", "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            dst.writestr(name, payload[: len(payload) // 3] if name == "train.7z" else payload)
    _expect("7z", open_layout, CIFAR, other)


def test_wrong_zip_is_named(tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    with zipfile.ZipFile(folder / "cifar-10.zip", "w") as zf:
        zf.writestr("something/else.txt", "hello")
    _expect("has no sampleSubmission.csv", open_layout, CIFAR, folder)


# ------------------------------------------------------------------------------ the CLI


@pytest.mark.parametrize("name", ["cifar10", "dog-breed-identification"])
def test_sample_then_info_round_trips_from_the_zip(tmp_path, name):
    result = run_cli("sample", name, tmp_path / "d")
    assert result.returncode == 0, result.stderr
    result = run_cli("info", name, "--data-dir", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    comp = resolve(name)
    assert f"train: {len(pd.read_csv(tmp_path / 'd' / comp.label_file))} images" in result.stdout
    assert f"{comp.metric.label} - {comp.metric.direction}" in result.stdout


def test_cli_errors_are_one_line(tmp_path):
    assert_one_line_error(run_cli("info", "cifar11", "--data-dir", tmp_path), "did you mean")
    assert_one_line_error(run_cli("info", "cifar10", "--data-dir", tmp_path / "missing"), "does not exist")
    # 0 and negatives were taken as "the default" or crashed: fewer images than classes is refused, nothing written
    for flag, count, needle in (
        ("--n-train", "0", "at least 10"),
        ("--n-train", "-5", "at least 10"),
        ("--n-test", "0", "at least 1"),
    ):
        result = run_cli("sample", "cifar10", tmp_path / "s", flag, count)
        assert_one_line_error(result, f"{flag} {count}: give {needle}")
    assert not (tmp_path / "s").exists()


def test_archive_bomb_and_link_members_are_rejected(tmp_path, monkeypatch):
    from kaggle_kit.core import archive

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sampleSubmission.csv", b"0" * 4_000_000)  # compresses about 1000:1
    monkeypatch.setattr(archive, "BOMB_FLOOR_BYTES", 1_000_000)
    monkeypatch.setattr(archive, "MAX_EXPANSION", 100)
    _expect("refusing to unpack", archive.zip_members, bomb)

    linked = tmp_path / "link.zip"
    info = zipfile.ZipInfo("train/evil.png")
    info.external_attr = 0o120777 << 16  # a symbolic link, as `zip --symlinks` stores it
    with zipfile.ZipFile(linked, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    _expect("is a link", archive.zip_members, linked)


def test_an_image_name_in_other_letter_case_is_named_as_such(fresh_sample):
    folder = fresh_sample("dog_breed")
    layout = open_layout(DOG, folder)
    victim = layout.train.ids[3]
    (folder / "train" / f"{victim}.jpg").rename(folder / "train" / f"{victim}.JPG")
    _expect(
        f"{victim}.JPG is there with other letter case: rename the files to lower-case .jpg", open_layout, DOG, folder
    )


def test_info_describes_both_downloads(sample_zips):
    cifar = run_cli("info", "cifar10", "--data-dir", sample_zips["cifar10"])
    assert cifar.returncode == 0, cifar.stderr
    assert "metric: accuracy - higher is better" in cifar.stdout
    assert "(7z), 10 classes" in cifar.stdout and "train image sizes: 32x32 (declared)" in cifar.stdout
    dog = run_cli("info", "dog_breed", "--data-dir", sample_zips["dog_breed"])
    assert dog.returncode == 0, dog.stderr
    assert "metric: log loss - lower is better" in dog.stdout and "120 classes" in dog.stdout
    import re

    assert re.search(r"^train image sizes: \d+-\d+ wide, \d+-\d+ high \(first 32\)$", dog.stdout, re.M), dog.stdout
    assert "4-4 per class" in dog.stdout and "in sample_submission.csv order" in dog.stdout
