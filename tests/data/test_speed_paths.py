"""The fast paths keep the recipes exact: the frozen-backbone feature cache trains what plain frozen training
trains, the GPU-resident data path runs (on CPU tensors here) and is reproducible, persistent DataLoader
workers keep every epoch a pure function of (seed, epoch), and the GPU augmentation draws from the same
distribution as the Albumentations reference."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_sweep import zygote
from helpers import REPO, assert_one_line_error, run_cli

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.config.recipe import Recipe
from kaggle_kit.core.errors import KitError
from kaggle_kit.data.augment import build_eval_transform, build_train_transform
from kaggle_kit.data.cache import load_images
from kaggle_kit.data.datasets import CachedImages, EpochLoader
from kaggle_kit.data.gpu_augment import DeviceNormalize, GpuAugment
from kaggle_kit.data.layout import open_layout
from kaggle_kit.models import factory as models
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.training import train
from kaggle_kit.training.features import check_recipe

torch.set_num_threads(1)

# test_resnet with timm's own stem: the CIFAR stem keeps 32x32 resolution and is many times slower on a CPU
TINY = dict(arch="test_resnet", stem="imagenet", img_size=32, batch_size=32, device="cpu", seed=3)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def _models_equal(first, second, atol=0.0):
    a = RunDir(first.run_dir).load_checkpoint("last")["model"]
    b = RunDir(second.run_dir).load_checkpoint("last")["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


# ---- frozen backbone: cached features -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frozen_runs(sample_zips, tmp_path_factory):
    """The same frozen-backbone recipe trained on images and on cached features (views >= epochs)."""
    root = tmp_path_factory.mktemp("frozen")
    data = shutil.copytree(sample_zips["cifar10"], root / "data")  # runs write caches beside the data
    kwargs = dict(recipe="paper", freeze=True, aug="modern", epochs=3, lr=0.05, workers=0, **TINY)
    cached = train("cifar10", data, out=root / "cached", feature_cache_views=3, **kwargs)
    plain = train("cifar10", data, out=root / "plain", **kwargs)
    return cached, plain, data


def test_feature_cache_trains_what_frozen_training_on_images_trains(frozen_runs):
    cached, plain, _ = frozen_runs
    # view v is the image path's epoch-v augmentation and the batch order is the same: the same head results
    for a, b in zip(cached.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
    _models_equal(cached, plain, atol=1e-5)
    losses = [row["val_loss"] for row in cached.history]
    assert losses[-1] < losses[0] < np.log(10)  # the head learns, from better than a uniform guess


def test_feature_cache_checkpoint_is_the_full_model_and_equals_head_of_features(frozen_runs):
    cached, _, data_dir = frozen_runs
    run = RunDir(cached.run_dir)
    recipe = Recipe.from_dict(run.config()["recipe"])
    model = models.build_model(recipe, 10)
    model.load_state_dict(run.load_checkpoint("best")["model"])  # strict: backbone and head, nothing missing
    model.eval()

    layout = open_layout(resolve("cifar10"), data_dir)
    stored = list((layout.work_dir / "features").glob("*.pt"))
    assert len(stored) == 1  # the plain run reads no features; the cached one wrote exactly one key
    features = torch.load(stored[0], weights_only=True)
    val_ids = json.loads(run.file("split.json").read_text())["val_ids"]
    assert features["train"].shape[:2] == (3, len(layout.train.ids) - len(val_ids))  # K views of each image

    position = {image_id: i for i, image_id in enumerate(layout.train.ids)}
    val_idx = np.sort([position[i] for i in val_ids])
    cache = load_images(layout, "train", 32)
    normalization = run.config()["normalization"]  # what the run normalised with (the recipe decides)
    transform = build_eval_transform(32, None, normalization["mean"], normalization["std"])
    images = torch.stack([transform(image=np.asarray(cache[i]))["image"] for i in val_idx])
    with torch.no_grad():
        full = model(images)
        from_features = models.forward_head(model, features["val"].float())
    assert features["val"].shape[0] == len(val_idx)
    torch.testing.assert_close(full, from_features, atol=1e-4, rtol=1e-4)
    # and the saved validation predictions are those logits
    saved = np.load(run.file("val_predictions.npz"))
    assert (full.argmax(1).numpy() == saved["logits"].argmax(1)).all()


def test_feature_cache_is_read_back_from_disk(frozen_runs, tmp_path):
    cached, _, data_dir = frozen_runs
    again = train(
        "cifar10",
        data_dir,
        out=tmp_path / "again",
        recipe="paper",
        freeze=True,
        aug="modern",
        epochs=3,
        lr=0.05,
        workers=0,
        feature_cache_views=3,
        **TINY,
    )
    _models_equal(cached, again)


def test_head_only_run_checkpoints_after_its_last_epoch_and_keeps_its_best_on_ctrl_c(fresh_sample, tmp_path):
    from kaggle_kit.training import fit

    comp = resolve("cifar10")
    recipe = comp.recipe("paper").replace(
        freeze=True, aug="modern", epochs=4, lr=0.05, workers=0, feature_cache_views=2, **TINY
    )
    layout = open_layout(comp, fresh_sample("cifar10"))
    whole = RunDir(tmp_path / "whole")
    fit(comp, layout, recipe, whole)
    assert whole.load_checkpoint("last")["epoch"] == 3 and not (whole.path / "last.prev.pt").exists()  # one write

    def stop_after_second_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    stopped = RunDir(tmp_path / "stopped")
    result = fit(comp, layout, recipe, stopped, on_epoch=stop_after_second_epoch)
    assert result.interrupted and result.epochs_run == 2
    best = stopped.load_checkpoint("best")
    assert best["epoch"] == result.best_epoch and best["metric"] == pytest.approx(result.best_metric)
    assert (stopped.path / "curves.png").is_file() and (stopped.path / "val_predictions.npz").is_file()


@pytest.mark.parametrize(
    "settings, needle",
    [
        (dict(feature_cache_views=2), "needs a frozen backbone"),
        (dict(feature_cache_views=2, freeze=True, unfreeze_after=1), "add --unfreeze-after none"),
        (dict(feature_cache_views=-1, freeze=True), "feature_cache_views=-1"),
    ],
)
def test_feature_cache_settings_that_cannot_work_are_refused(settings, needle):
    with pytest.raises(KitError, match=needle):
        check_recipe(Recipe(**settings))


def test_feature_cache_without_freeze_is_a_one_line_error(fresh_sample, tmp_path):
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        fresh_sample("cifar10"),
        "--out",
        tmp_path / "run",
        "--arch",
        "test_resnet",
        "--device",
        "cpu",
        "--feature-cache-views",
        "2",
        "--no-freeze",
    )
    assert_one_line_error(result, "--feature-cache-views 2 needs a frozen backbone")


def test_unfreeze_after_none_lets_the_best_recipe_use_the_feature_cache(fresh_sample, tmp_path):
    """Dog's `best` recipe unfreezes after 2 epochs; `--unfreeze-after none` clears that from the command line."""
    run = tmp_path / "run"
    result = run_cli(
        "train",
        "dog_breed",
        "--data-dir",
        fresh_sample("dog_breed"),
        "--out",
        run,
        "--arch",
        "test_resnet",
        "--device",
        "cpu",
        "--img-size",
        "32",
        "--eval-resize",
        "36",
        "--no-pretrained",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--feature-cache-views",
        "2",
        "--unfreeze-after",
        "none",
    )
    assert result.returncode == 0, result.stderr
    recipe = json.loads((run / "config.json").read_text())["recipe"]
    assert recipe["name"] == "best" and recipe["unfreeze_after"] is None and recipe["feature_cache_views"] == 2
    assert recipe["freeze"] is True


def test_a_nullable_number_flag_still_checks_its_type(fresh_sample, tmp_path):
    result = run_cli(
        "train",
        "dog_breed",
        "--data-dir",
        fresh_sample("dog_breed"),
        "--out",
        tmp_path / "run",
        "--arch",
        "test_resnet",
        "--device",
        "cpu",
        "--unfreeze-after",
        "soon",
    )
    assert_one_line_error(result, "invalid setting unfreeze_after='soon': expected int")
    assert not (tmp_path / "run").exists()


# ---- GPU-resident data path, forced on CPU tensors ----------------------------------------------------------------


def test_gpu_data_path_on_cpu_learns_and_is_reproducible(fresh_sample, tmp_path):
    data = fresh_sample("cifar10")
    kwargs = dict(recipe="fast", gpu_data=True, epochs=3, lr=0.05, warmup_epochs=1, **TINY)
    first = train("cifar10", data, out=tmp_path / "a", **kwargs)
    second = train("cifar10", data, out=tmp_path / "b", **kwargs)
    _models_equal(first, second)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert first.history[-1]["val_metric"] >= 0.6  # 10 classes: chance is 0.1
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]


def test_gpu_data_path_trains_photos_of_different_sizes(fresh_sample, tmp_path):
    """Dog Breed's photos keep their aspect in the cache, so they sit on the device back to back (RaggedImages)
    and are cropped there; the run is reproducible and records which pipeline drew its augmentations."""
    data = fresh_sample("dog_breed")
    kwargs = dict(
        gpu_data=True,
        epochs=2,
        lr=0.05,
        pretrained=False,
        freeze=False,
        unfreeze_after=None,
        aug="paper",
        **(TINY | dict(img_size=48, batch_size=16)),
    )
    first = train("dog_breed", data, out=tmp_path / "a", eval_resize=56, **kwargs)
    second = train("dog_breed", data, out=tmp_path / "b", eval_resize=56, **kwargs)
    cache = load_images(open_layout(resolve("dog_breed"), data), "train", 56)
    assert not cache.is_uniform()  # the point of the test: photos of several sizes
    _models_equal(first, second)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in first.history)
    config = json.loads((first.run_dir / "config.json").read_text())
    assert config["recipe"]["gpu_data"] is True
    assert config["data_path"].startswith(f"{len(cache)} images resident on cpu")


# ---- persistent workers ---------------------------------------------------------------------------------------------


class _Pids(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, key):
        return os.getpid()


def _epoch_batches(loader, epoch):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch)]


def test_epoch_loader_replays_any_epoch_whatever_the_workers(fresh_sample):
    layout = open_layout(resolve("cifar10"), fresh_sample("cifar10"))
    cache = load_images(layout, "train", 32)
    spec = resolve("cifar10").augmentation("paper")  # random crop, flip and noise: every kind of draw
    indices = np.arange(0, 96)

    def make(workers):
        dataset = CachedImages(cache, indices, layout.train_labels, build_train_transform(spec, 32, MEAN, STD, seed=0))
        return EpochLoader(
            dataset, 16, shuffle=True, seed=11, workers=workers, device=torch.device("cpu"), drop_last=True
        )

    with_workers = make(2)
    through = [_epoch_batches(with_workers, e) for e in range(3)]
    resumed = _epoch_batches(make(2), 2)  # a fresh loader started at epoch 2, as a resumed run starts
    in_process = _epoch_batches(make(0), 2)
    for batches in (resumed, in_process):
        assert len(batches) == len(through[2]) == 6
        for (x, y), (x2, y2) in zip(through[2], batches):
            torch.testing.assert_close(x, x2, atol=0, rtol=0)
            assert torch.equal(y, y2)
    assert not torch.equal(through[0][0][0], through[1][0][0])  # epochs differ


def test_epoch_loader_keeps_its_workers_across_epochs():
    loader = EpochLoader(_Pids(), 2, shuffle=False, seed=0, workers=2, device=torch.device("cpu"))
    pids = [set(torch.cat(list(loader.epoch(e))).tolist()) for e in range(3)]
    assert pids[0] == pids[1] == pids[2] and os.getpid() not in pids[0] and len(pids[0]) == 2


def test_two_runs_with_two_persistent_workers_are_equal(fresh_sample, tmp_path):
    data = fresh_sample("cifar10")
    kwargs = dict(recipe="paper", aug="paper", epochs=2, lr=0.05, workers=2, **TINY)
    first = train("cifar10", data, out=tmp_path / "a", **kwargs)
    second = train("cifar10", data, out=tmp_path / "b", **kwargs)
    _models_equal(first, second)
    assert [r["val_loss"] for r in first.history] == [r["val_loss"] for r in second.history]


# ---- GPU augmentation and the Albumentations reference: same distribution --------------------------------------------


@pytest.mark.parametrize("aug", ["modern", "paper"])
def test_gpu_and_albumentations_paths_average_to_the_same_image(aug):
    """Same parameter ranges and sampling rules on both paths, checked as a whole: over many draws the mean
    augmented image of one picture agrees (test_augment checks each parameter on its own)."""
    spec = resolve("cifar10").augmentation(aug)
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 60, (32, 32, 3)), 0, 255).astype(np.uint8)
    n = 3000
    pipeline = build_train_transform(spec, 32, MEAN, STD, seed=0)
    reference = torch.stack([pipeline(image=image)["image"] for _ in range(n)])
    gpu = GpuAugment(spec, 32, MEAN, STD, seed=0)(torch.from_numpy(image).expand(n, -1, -1, -1).contiguous())
    difference = (reference.mean(0) - gpu.mean(0)).abs()
    spread = reference.std(0) / np.sqrt(n)  # standard error of each mean pixel
    assert difference.mean() < 3 * spread.mean()
    assert (reference.std(0).mean() - gpu.std(0).mean()).abs() < 0.05 * reference.std(0).mean()


@pytest.mark.parametrize("name, aug", [("dog_breed", "modern"), ("dog_breed", "paper"), ("cifar10", "modern")])
def test_workers_without_normalisation_plus_device_normalise_equal_the_reference_pipeline(name, aug):
    """The trainer's DataLoader path: workers stop before normalising (uint8 out, or float in [0, 1] with noise
    or cutout) and the batch is normalised on the device - the same images as the one-piece pipeline."""
    spec = resolve(name).augmentation(aug)
    image = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    size = 48 if name == "dog_breed" else 32
    if name == "cifar10":
        image = image[:32, :32]
    whole = build_train_transform(spec, size, MEAN, STD, seed=5)
    split = build_train_transform(spec, size, MEAN, STD, seed=5, normalize=False)
    for _ in range(5):
        reference, part = whole(image=image)["image"], split(image=image)["image"]
        assert part.dtype == (torch.float32 if spec.noise_std or spec.cutout else torch.uint8)
        finished = DeviceNormalize(MEAN, STD)(part[None])[0]
        torch.testing.assert_close(finished, reference, atol=1e-5, rtol=1e-5)


def test_translate_and_cutout_positions_cover_the_same_range_on_both_paths():
    spec = resolve("cifar10").augmentation("modern")
    pipeline = build_train_transform(spec, 32, MEAN, STD, seed=0)
    crop = next(t for t in pipeline.transforms if type(t).__name__ == "RandomCrop")
    dropout = next(t for t in pipeline.transforms if type(t).__name__ == "CoarseDropout")
    padded = (32 + 2 * spec.translate, 32 + 2 * spec.translate, 3)
    offsets = np.array(
        [crop.get_params_dependent_on_data({"shape": padded}, {})["crop_coords"][:2] for _ in range(3000)]
    )
    holes = np.array(
        [dropout.get_params_dependent_on_data({"shape": (32, 32, 3)}, {})["holes"][0][:2] for _ in range(3000)]
    )
    params = GpuAugment(spec, 32, MEAN, STD, seed=0).sample_params(3000, 32, 32)
    for reference, gpu in ((offsets, params["shift"].numpy()), (holes, params["cutout"].numpy())):
        assert reference.min() == gpu.min() == 0
        assert reference.max() == gpu.max()
        assert reference.mean() == pytest.approx(gpu.mean(), abs=0.3)
    assert offsets.max() == 2 * spec.translate and holes.max() == 32 - spec.cutout


# ---- 7z members streamed straight from the archive -------------------------------------------------------------------


def _small_7z(path):
    import py7zr

    rng = np.random.default_rng(0)
    members = {f"test/{i}.png": rng.integers(0, 256, 700 + 37 * i, dtype=np.uint8).tobytes() for i in range(40)}
    members["test/empty.png"] = b""
    with py7zr.SevenZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return members


def test_7z_stream_hands_over_every_member_as_py7zr_extracts_it(tmp_path, monkeypatch):
    from kaggle_kit.core import archive

    members = _small_7z(tmp_path / "test.7z")
    fast, general = [], []
    archive.stream_7z(tmp_path / "test.7z", lambda name, data: fast.append((name, data)))
    monkeypatch.setattr(archive, "_stream_folders", lambda *args: False)  # py7zr's own extract
    archive.stream_7z(tmp_path / "test.7z", lambda name, data: general.append((name, data)))
    assert dict(fast) == dict(general) == members
    assert [name for name, _ in fast if name != "test/empty.png"] == [n for n in members if n != "test/empty.png"]


@pytest.mark.parametrize("where", [0.3, 0.9])
def test_a_damaged_7z_stream_is_a_one_line_kit_error(tmp_path, where):
    from kaggle_kit.core import archive

    _small_7z(tmp_path / "test.7z")
    data = bytearray((tmp_path / "test.7z").read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    (tmp_path / "bad.7z").write_bytes(bytes(data))
    with pytest.raises(KitError, match="download"):
        archive.stream_7z(tmp_path / "bad.7z", lambda name, data: None)


# ---- the whole cache on the device, and single batches of it ------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "dog_breed"])
def test_device_images_and_cache_batches_hold_the_cached_pixels(sample_zips, name):
    from kaggle_kit.data.datasets import cache_batch, device_images
    from kaggle_kit.data.gpu_augment import RaggedImages

    cache = load_images(open_layout(resolve(name), sample_zips[name]), "train", 40)
    everything = device_images(cache, torch.device("cpu"))
    assert isinstance(everything, RaggedImages) != cache.is_uniform()
    for indices in (np.arange(3, 11), np.array([9, 2, 5, 5, 0])):  # one slice of the map; scattered, repeated
        batch = cache_batch(cache, indices, torch.device("cpu"))
        for k, i in enumerate(indices):
            expected = torch.from_numpy(np.array(cache[int(i)]))
            for images in (batch, everything[torch.as_tensor(indices)]):
                assert torch.equal(_image_of(images, k), expected), (name, indices, k)


def _image_of(images, k):
    from kaggle_kit.data.gpu_augment import RaggedImages

    if not isinstance(images, RaggedImages):
        return images[k]
    start, h, w = int(images.offsets[k]) * 3, int(images.heights[k]), int(images.widths[k])
    return images.pixels[start : start + h * w * 3].view(h, w, 3)


@pytest.mark.parametrize("drop_last", [False, True])
def test_gpu_batches_augment_several_batches_per_call_and_yield_each_image_once(monkeypatch, drop_last):
    from kaggle_kit.data import datasets as data_module
    from kaggle_kit.data.gpu_augment import GpuEval

    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8))
    labels = torch.arange(50) * 10
    order = np.random.default_rng(1).permutation(50)
    calls = []

    class Counting(GpuEval):
        def forward(self, batch):
            calls.append(len(batch))
            return super().forward(batch)

    monkeypatch.setitem(data_module.AUGMENT_BYTES, "cpu", 3 * 4 * (3 * 8 * 8 * 4))  # three batches of 4 per call
    batches = data_module.GpuBatches(
        images, labels, order, 4, Counting(8, None, (0, 0, 0), (1, 1, 1)), drop_last=drop_last
    )
    out = list(batches)
    assert len(out) == len(batches) == (12 if drop_last else 13)
    assert [len(y) for _, y in out] == [4] * 12 + ([] if drop_last else [2])
    assert calls == ([12, 12, 12, 12] if drop_last else [12, 12, 12, 12, 2])
    seen = order[: 48 if drop_last else 50]
    assert torch.equal(torch.cat([y for _, y in out]), labels[torch.from_numpy(seen)])
    expected = images[torch.from_numpy(seen)].permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(torch.cat([x for x, _ in out]), expected)


def test_gpu_data_is_chosen_for_photos_too_when_they_fit(sample_zips, monkeypatch):
    """The automatic rule on a GPU: the whole cache goes to the device when it takes under a quarter of the free
    memory, photos of different sizes included; a forced setting wins either way; a CPU never picks it."""
    from kaggle_kit.data.batches import use_array_path

    cache = load_images(open_layout(resolve("dog_breed"), sample_zips["dog_breed"]), "train", 40)
    assert not cache.is_uniform()
    recipe, cuda = Recipe(), torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * cache.nbytes() + 4, 80 << 30))
    assert use_array_path(cache, recipe, cuda)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * cache.nbytes() - 4, 80 << 30))
    assert not use_array_path(cache, recipe, cuda)
    assert use_array_path(cache, recipe.replace(gpu_data=True), cuda)
    assert not use_array_path(cache, recipe, torch.device("cpu"))


def _interrupt_after(out: Path, epochs: int, args: list) -> subprocess.CompletedProcess:
    """Start `kaggle-kit train *args` (a process forked from the worker's zygote), Ctrl-C it once `epochs` epochs
    are in history.csv."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zygote().launch(out.parent, {**os.environ, "PYTHONPATH": str(REPO)}, ["train", *args]) as child:
        deadline = time.monotonic() + 300
        while not ((out / "history.csv").is_file() and len(RunDir(out).history()) >= epochs):
            assert child.running() and time.monotonic() < deadline, child.said(child.stderr)
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        return child.wait(timeout=120, raise_on_timeout=True)


def test_ctrl_c_between_head_only_checkpoints_still_resumes_where_it_stopped(fresh_sample, tmp_path):
    """Head-only epochs are checkpointed every 30 s: a Ctrl-C before then held no last.pt, and the resume trained
    from epoch 1 again, replacing a better best.pt. The stop now waits for the epoch's end and checkpoints it."""
    data, out = fresh_sample("dog_breed"), tmp_path / "head"
    args = [
        "dog_breed",
        "--data-dir",
        data,
        "--out",
        out,
        "--recipe",
        "paper",
        "--no-pretrained",
        "--arch",
        "test_resnet",
        "--img-size",
        "32",
        "--eval-resize",
        "36",
        "--feature-cache-views",
        "2",
        "--epochs",
        "100000",
        "--batch-size",
        "16",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    stopped = _interrupt_after(out, 5, args)
    assert stopped.returncode == 130 and "resume with: kaggle-kit train --resume" in stopped.stderr, stopped.stderr
    finished = len(RunDir(out).history())
    assert RunDir(out).load_checkpoint("last")["epoch"] == finished - 1  # the last finished epoch, not an older one
    again = _interrupt_after(out, finished + 3, ["--resume", out])
    assert again.returncode == 130, again.stderr
    epochs = RunDir(out).history()["epoch"].tolist()
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= finished + 3  # went on, did not start over
