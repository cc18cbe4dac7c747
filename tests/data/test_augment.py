"""Augmentation pipelines: effective parameters, both paths drawing from the same ranges, shapes, worker seeding."""

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from albumentations.augmentations.pixel import functional as pixel_functional

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.config.recipe import AugmentSpec
from kaggle_kit.core.errors import KitError
from kaggle_kit.data.augment import (
    WorkerSeededCompose,
    build_eval_transform,
    build_train_transform,
    effective_parameters,
    seed_worker,
)
from kaggle_kit.data.gpu_augment import (
    GpuAugment,
    GpuEval,
    RaggedImages,
    gpu_normalize,
    ragged_resized_crops,
    resized_crops,
)

torch.set_num_threads(1)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # "normalisation" that leaves [0, 1] pixel values readable
COMPETITIONS = ["cifar10", "dog_breed"]
# (competition, small img_size for the tests, input image shape)
SMALL = {"cifar10": (32, (32, 32, 3)), "dog_breed": (48, (60, 80, 3))}


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _step(pipeline, name):
    return next(step for step in pipeline.transforms if type(step).__name__ == name)


def _alb_batch(pipeline, image, n):
    return torch.stack([pipeline(image=image)["image"] for _ in range(n)])


# ---- effective parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPETITIONS)
def test_paper_pipeline_holds_exactly_the_spec(name):
    comp = resolve(name)
    spec, img_size = comp.augmentation("paper"), comp.recipe("paper").img_size
    params = effective_parameters(build_train_transform(spec, img_size, MEAN, STD, seed=0))

    crop = params["RandomResizedCrop"]
    assert crop["size"] == (img_size, img_size) and crop["p"] == 1.0
    assert crop["scale"] == pytest.approx(spec.crop_scale) and crop["ratio"] == pytest.approx(spec.crop_ratio)
    noise = params["GaussNoise"]
    assert noise["std_range"] == pytest.approx(spec.noise_std) and noise["p"] == 1.0
    assert noise["mean_range"] == (0.0, 0.0) and noise["per_channel"]
    if spec.pre_resize:
        assert (params["Resize"]["height"], params["Resize"]["width"]) == (spec.pre_resize, spec.pre_resize)
    assert ("HorizontalFlip" in params) == spec.hflip
    if spec.hflip:
        assert params["HorizontalFlip"]["p"] == 0.5
    if spec.brightness or spec.contrast or spec.saturation:
        jitter = params["ColorJitter"]
        for field in ("brightness", "contrast", "saturation"):
            amount = getattr(spec, field)
            assert jitter[field] == pytest.approx((max(0.0, 1 - amount), 1 + amount))
        assert jitter["hue"] == (0.0, 0.0) and jitter["p"] == 1.0
    assert params["Normalize"]["mean"] == MEAN and params["Normalize"]["std"] == STD
    # the spec's order: geometry, flip, colour, noise, normalise, tensor
    order = [
        key
        for key in params
        if key
        in ("Resize", "RandomResizedCrop", "HorizontalFlip", "ColorJitter", "GaussNoise", "Normalize", "ToTensorV2")
    ]
    assert order == sorted(
        order,
        key=[
            "Resize",
            "RandomResizedCrop",
            "HorizontalFlip",
            "ColorJitter",
            "GaussNoise",
            "Normalize",
            "ToTensorV2",
        ].index,
    )


def test_cifar_modern_pipeline_holds_translate_and_cutout():
    spec = resolve("cifar10").augmentation("modern")
    params = effective_parameters(build_train_transform(spec, 32, MEAN, STD, seed=0))
    pad = params["PadIfNeeded"]
    assert (pad["min_height"], pad["min_width"], pad["border_mode"]) == (40, 40, cv2.BORDER_REFLECT_101)
    assert (params["RandomCrop"]["height"], params["RandomCrop"]["width"]) == (32, 32)
    hole = params["CoarseDropout"]
    assert hole["hole_height_range"] == (12, 12) and hole["hole_width_range"] == (12, 12)
    assert hole["num_holes_range"] == (1, 1) and hole["p"] == 1.0 and hole["fill"] == MEAN


@pytest.mark.filterwarnings("ignore:Argument")
def test_wrong_argument_names_fail_instead_of_warning():
    with pytest.raises(ValueError, match="var_limit"):
        WorkerSeededCompose([A.GaussNoise(var_limit=(10, 50))], seed=0)


def test_invalid_spec_names_the_field():
    with pytest.raises(KitError, match="crop_scale"):
        build_train_transform(AugmentSpec(crop_scale=(0.5, 1.5)), 32, MEAN, STD)
    with pytest.raises(KitError, match="cutout"):
        GpuAugment(AugmentSpec(cutout=40), 32, MEAN, STD)
    with pytest.raises(KitError, match="eval_resize"):
        build_eval_transform(32, 24, MEAN, STD)


# ---- shapes, dtypes, normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPETITIONS)
@pytest.mark.parametrize("aug", ["none", "paper", "modern"])
def test_both_paths_give_normalised_float_images_of_img_size(name, aug):
    spec = resolve(name).augmentation(aug)
    img_size, shape = SMALL[name]
    image = _image(shape)
    out = build_train_transform(spec, img_size, MEAN, STD, seed=0)(image=image)["image"]
    assert out.shape == (3, img_size, img_size) and out.dtype == torch.float32
    for layout in ("nhwc", "nchw"):
        batch = torch.from_numpy(np.stack([image, image]))
        batch = batch if layout == "nhwc" else batch.permute(0, 3, 1, 2).contiguous()
        gpu = GpuAugment(spec, img_size, MEAN, STD, seed=0)(batch)
        assert gpu.shape == (2, 3, img_size, img_size) and gpu.dtype == torch.float32
        assert gpu.is_contiguous(memory_format=torch.channels_last)
    for values in (out, gpu):  # normalised: pixels in [0, 1] map into [-mean/std, (1-mean)/std]
        low = torch.tensor([-m / s for m, s in zip(MEAN, STD)]).view(-1, 1, 1)
        high = torch.tensor([(1 - m) / s for m, s in zip(MEAN, STD)]).view(-1, 1, 1)
        assert bool(((values >= low - 1e-4) & (values <= high + 1e-4)).all())


@pytest.mark.parametrize("name", COMPETITIONS)
def test_plain_pipeline_of_a_mean_coloured_image_is_zero(name):
    img_size, shape = SMALL[name]
    image = np.empty(shape, np.uint8)
    image[:] = [round(m * 255) for m in MEAN]
    tolerance = 0.5 / 255 / min(STD) + 1e-5
    out = build_train_transform(AugmentSpec(), img_size, MEAN, STD, seed=0)(image=image)["image"]
    assert out.abs().max() <= tolerance
    gpu = GpuAugment(AugmentSpec(), img_size, MEAN, STD)(torch.from_numpy(image[None]))
    assert gpu.abs().max() <= tolerance


def test_eval_pipeline_resizes_the_shorter_side_then_centre_crops():
    image = _image((40, 60, 3))
    out = build_eval_transform(32, 36, MEAN, STD)(image=image)["image"]
    resized = cv2.resize(image, (54, 36), interpolation=cv2.INTER_LINEAR)  # shorter side 40 -> 36
    expected = (resized[2:34, 11:43].astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_gpu_normalize_equals_the_eval_pipeline_at_native_size():
    images = np.stack([_image((32, 32, 3), seed) for seed in range(3)])
    eval_pipeline = build_eval_transform(32, None, MEAN, STD)
    expected = torch.stack([eval_pipeline(image=image)["image"] for image in images])
    out = gpu_normalize(torch.from_numpy(images), MEAN, STD)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


# ---- GPU and Albumentations paths draw from the same ranges -----------------------------------------------


@pytest.mark.parametrize("name, size", [("cifar10", (40, 40)), ("dog_breed", (64, 64)), ("dog_breed", (60, 80))])
def test_crop_boxes_cover_the_same_area_and_aspect_ranges(name, size):
    """Same sampling rule on both paths; on a square image every area and aspect of the spec is reachable."""
    spec = resolve(name).augmentation("paper")
    height, width = size
    n = 3000
    crop = _step(build_train_transform(spec, 32, MEAN, STD, seed=0), "RandomResizedCrop")
    alb = np.array(
        [crop.get_params_dependent_on_data({"shape": (height, width, 3)}, {})["crop_coords"] for _ in range(n)]
    )
    alb_w, alb_h = alb[:, 2] - alb[:, 0], alb[:, 3] - alb[:, 1]
    boxes = GpuAugment(spec, 32, MEAN, STD, seed=0).sample_crop_boxes(n, height, width).numpy()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= width).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 1] + boxes[:, 3] <= height).all()
    (scale_min, scale_max), (ratio_min, ratio_max) = spec.crop_scale, spec.crop_ratio
    areas, aspects = [], []
    for w, h in ((alb_w, alb_h), (boxes[:, 2], boxes[:, 3])):
        area, aspect = w * h / (height * width), w / h
        assert scale_min - 0.03 <= area.min() and area.max() <= scale_max
        assert ratio_min - 0.05 <= aspect.min() and aspect.max() <= ratio_max + 0.05
        if height == width:
            assert area.min() <= scale_min + 0.03 and area.max() >= scale_max - 0.03
            assert aspect.min() <= ratio_min + 0.05 and aspect.max() >= ratio_max - 0.05
        areas.append(area.mean())
        aspects.append(np.log(aspect).mean())
    assert areas[0] == pytest.approx(areas[1], abs=0.01)
    assert aspects[0] == pytest.approx(aspects[1], abs=0.02)


def test_flip_rate_is_one_half_on_both_paths():
    spec, n = AugmentSpec(hflip=True), 1000
    ramp = np.tile(np.arange(0, 240, 30, dtype=np.uint8)[None, :, None], (8, 1, 3))  # brighter to the right
    alb = _alb_batch(build_train_transform(spec, 8, *UNIT, seed=0), ramp, n)
    gpu = GpuAugment(spec, 8, *UNIT, seed=0)(torch.from_numpy(ramp).expand(n, -1, -1, -1).contiguous())
    for out in (alb, gpu):
        flipped = (out[:, 0, 0, 0] > out[:, 0, 0, -1]).float().mean().item()
        assert 0.45 <= flipped <= 0.55


def test_noise_std_lands_in_and_covers_the_spec_range_on_both_paths():
    spec, n = AugmentSpec(noise_std=(0.01, 0.05)), 300
    grey = np.full((16, 16, 3), 128, np.uint8)
    alb = _alb_batch(build_train_transform(spec, 16, *UNIT, seed=0), grey, n)
    gpu = GpuAugment(spec, 16, *UNIT, seed=0)(torch.from_numpy(grey).expand(n, -1, -1, -1).contiguous())
    means = []
    for out in (alb, gpu):
        stds = (out - 128 / 255).flatten(1).std(dim=1)
        assert stds.min() >= 0.009 and stds.max() <= 0.055
        assert stds.min() <= 0.012 and stds.max() >= 0.047
        means.append(stds.mean().item())
    assert means[0] == pytest.approx(0.03, abs=0.003) and means[1] == pytest.approx(0.03, abs=0.003)


def test_jitter_factors_share_ranges_and_formulas():
    spec = resolve("dog_breed").augmentation("paper")
    jitter = _step(build_train_transform(spec, 16, *UNIT, seed=0), "ColorJitter")
    alb = [jitter.get_params() for _ in range(2000)]
    gpu_aug = GpuAugment(spec, 16, *UNIT, seed=0)
    gpu = gpu_aug.sample_params(2000, 16, 16)
    for field in ("brightness", "contrast", "saturation"):
        low, high = 1 - getattr(spec, field), 1 + getattr(spec, field)
        for factors in (np.array([p[field] for p in alb]), gpu[field].numpy()):
            assert low <= factors.min() <= low + 0.01 and high - 0.01 <= factors.max() <= high
    # the same factor changes an image the same way on both paths (up to uint8 rounding)
    image = _image((16, 16, 3))
    adjust = {
        "brightness": pixel_functional.adjust_brightness_torchvision,
        "contrast": pixel_functional.adjust_contrast_torchvision,
        "saturation": pixel_functional.adjust_saturation_torchvision,
    }
    for field, function in adjust.items():
        for factor in (0.7, 1.3):
            expected = function(image, factor).astype(np.float32) / 255
            out = gpu_aug.apply(
                torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, {field: torch.tensor([factor])}
            )
            np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, atol=1.01 / 255)


def test_translate_pads_by_reflection_on_both_paths():
    spec = resolve("cifar10").augmentation("modern")
    image = _image((32, 32, 3))
    pad = _step(build_train_transform(spec, 32, MEAN, STD, seed=0), "PadIfNeeded")
    reflected = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(pad(image=image)["image"], reflected)
    gpu = GpuAugment(AugmentSpec(translate=4), 32, *UNIT, seed=0)
    shifts = gpu.sample_params(2000, 32, 32)["shift"]
    assert shifts.min() == 0 and shifts.max() == 8
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    out = gpu.apply(x, {"shift": torch.tensor([[1, 7]])})  # (dx, dy)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), reflected[7:39, 1:33] / 255, atol=1e-6)


def test_cutout_blanks_one_square_to_zero_on_both_paths():
    spec = resolve("cifar10").augmentation("modern")
    image = _image((32, 32, 3))
    outs = [build_train_transform(spec, 32, MEAN, STD, seed=seed)(image=image)["image"] for seed in range(3)]
    outs += list(GpuAugment(spec, 32, MEAN, STD, seed=0)(torch.from_numpy(image).expand(3, -1, -1, -1).contiguous()))
    for out in outs:
        hole = (out.abs() < 1e-4).all(dim=0)
        rows, cols = hole.any(dim=1).nonzero().flatten(), hole.any(dim=0).nonzero().flatten()
        assert hole.sum() == 144 and rows.max() - rows.min() == 11 and cols.max() - cols.min() == 11


def test_gpu_resized_crop_matches_cv2_crop_and_resize():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (5, 5), 2)
    expected = cv2.resize(image[5:35, 3:33], (32, 32), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    out = resized_crops(x, torch.tensor([[3.0, 5.0, 30.0, 30.0]]), 32)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - expected)[1:-1, 1:-1].max() <= 1.0  # uint8 rounding inside; edges sample the neighbours
    assert np.abs(out - expected).mean() <= 0.5


def test_gpu_path_is_reproducible_with_a_seed():
    spec = resolve("cifar10").augmentation("paper")
    batch = torch.from_numpy(np.stack([_image((32, 32, 3), s) for s in range(4)]))
    first, second = (GpuAugment(spec, 32, MEAN, STD, seed=7)(batch) for _ in range(2))
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, GpuAugment(spec, 32, MEAN, STD, seed=8)(batch))


# ---- photos of different sizes on the GPU path (RaggedImages) -------------------------------------------

# landscape, portrait, smaller than every crop, exactly the cache's short side, a panorama
PHOTO_SHAPES = [(256, 341), (341, 256), (60, 45), (256, 256), (120, 360)]


def _photos(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in PHOTO_SHAPES]


def test_ragged_crops_equal_cv2_cropping_then_resizing():
    """RandomResizedCrop's geometry: crop the integer box, resize it with cv2's bilinear - up and down."""
    photos = _photos()
    ragged = RaggedImages.from_arrays(photos)
    rng = np.random.default_rng(1)
    for trial in range(40):
        k = trial % len(photos)
        height, width = photos[k].shape[:2]
        w, h = int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        size = 48 if trial % 2 else 224
        expected = cv2.resize(photos[k][y0 : y0 + h, x0 : x0 + w], (size, size), interpolation=cv2.INTER_LINEAR)
        box = torch.tensor([[x0, y0, w, h]], dtype=torch.float32)
        got = ragged_resized_crops(ragged[torch.tensor([k])], box, size, clamp_to_box=True)[0].permute(1, 2, 0)
        # cv2 blends uint8 in fixed point: at most one level apart
        np.testing.assert_allclose(got.numpy() * 255, expected.astype(np.float32), atol=1.0, err_msg=str((k, box)))


def test_gpu_eval_on_photos_of_any_size_equals_the_eval_pipeline():
    photos = _photos(2)
    out = GpuEval(224, 256, *UNIT)(RaggedImages.from_arrays(photos))
    assert out.shape == (len(photos), 3, 224, 224) and out.is_contiguous(memory_format=torch.channels_last)
    pipeline = build_eval_transform(224, 256, *UNIT)
    for k, photo in enumerate(photos):
        expected = pipeline(image=photo)["image"]
        tolerance = 0.0 if min(photo.shape[:2]) == 256 else 1.0  # no resize: the very same pixels
        np.testing.assert_allclose(
            out[k].numpy() * 255, expected.numpy() * 255, atol=tolerance + 1e-3, err_msg=str(photo.shape)
        )


def test_ragged_crop_boxes_stay_in_their_own_image_and_follow_albumentations():
    spec = resolve("dog_breed").augmentation("modern")
    shapes = np.array(PHOTO_SHAPES * 600)
    heights, widths = torch.from_numpy(shapes[:, 0]), torch.from_numpy(shapes[:, 1])
    boxes = GpuAugment(spec, 224, MEAN, STD, seed=0).sample_crop_boxes(len(shapes), heights, widths).numpy()
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= shapes[:, 1]).all() and (boxes[:, 1] + boxes[:, 3] <= shapes[:, 0]).all()
    crop = _step(build_train_transform(spec, 224, MEAN, STD, seed=0), "RandomResizedCrop")
    for height, width in PHOTO_SHAPES:
        mine = (shapes[:, 0] == height) & (shapes[:, 1] == width)
        alb = np.array(
            [crop.get_params_dependent_on_data({"shape": (height, width, 3)}, {})["crop_coords"] for _ in range(600)]
        )
        alb_area = (alb[:, 2] - alb[:, 0]) * (alb[:, 3] - alb[:, 1]) / (height * width)
        area = boxes[mine, 2] * boxes[mine, 3] / (height * width)
        assert area.mean() == pytest.approx(alb_area.mean(), abs=0.03), (height, width)
        assert area.min() >= spec.crop_scale[0] - 0.03 and area.max() <= 1.0


def test_ragged_and_stacked_batches_augment_alike():
    """Everything after the crop - resize, flip, jitter, noise, cutout - is one code path: the same seed gives the
    same output whether the images arrive stacked or back to back."""
    spec = AugmentSpec(hflip=True, brightness=0.3, contrast=0.3, saturation=0.3, noise_std=(0.01, 0.05), cutout=8)
    photos = [_image((40, 52, 3), seed) for seed in range(6)]
    stacked = GpuAugment(spec, 32, MEAN, STD, seed=5)(torch.from_numpy(np.stack(photos)))
    ragged = GpuAugment(spec, 32, MEAN, STD, seed=5)(RaggedImages.from_arrays(photos))
    torch.testing.assert_close(ragged, stacked, atol=1e-4, rtol=0)


def test_gpu_augment_crops_photos_of_any_size():
    spec = resolve("dog_breed").augmentation("paper")
    photos = RaggedImages.from_arrays(_photos(3))
    out = GpuAugment(spec, 64, *UNIT, seed=0)(photos)
    assert out.shape == (len(PHOTO_SHAPES), 3, 64, 64) and torch.isfinite(out).all()
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    again = GpuAugment(spec, 64, *UNIT, seed=0)(photos)
    torch.testing.assert_close(out, again, atol=0, rtol=0)


def test_ragged_images_must_start_on_whole_pixels():
    with pytest.raises(ValueError, match="whole pixel"):
        RaggedImages.from_flat(torch.zeros(30, dtype=torch.uint8), np.array([0, 4]), np.array([[1, 1], [2, 3]]))


# ---- DataLoader workers ----------------------------------------------------------------------------------


class SameImageDataset(torch.utils.data.Dataset):
    """Four copies of one image: any difference between outputs comes from the augmentation's randomness."""

    def __init__(self, transform):
        self.transform = transform
        self.image = _image((16, 16, 3))

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.transform(image=self.image)["image"], np.random.random()


def _worker_batches(transform, worker_init_fn):
    loader = torch.utils.data.DataLoader(
        SameImageDataset(transform), batch_size=2, num_workers=2, worker_init_fn=worker_init_fn
    )
    (images_0, draws_0), (images_1, draws_1) = list(loader)  # batch 0 from worker 0, batch 1 from worker 1
    return images_0, images_1, draws_0, draws_1


SPEC = AugmentSpec(crop_scale=(0.5, 1.0), hflip=True, noise_std=(0.01, 0.05))


def test_seed_worker_gives_each_worker_its_own_augmentations_and_numpy_stream():
    torch.manual_seed(0)
    images_0, images_1, draws_0, draws_1 = _worker_batches(build_train_transform(SPEC, 16, MEAN, STD), seed_worker)
    assert not torch.allclose(images_0, images_1)
    assert not torch.allclose(draws_0, draws_1)
    torch.manual_seed(0)
    again = _worker_batches(build_train_transform(SPEC, 16, MEAN, STD), seed_worker)
    torch.testing.assert_close(again[0], images_0)  # and a seed reproduces them
    torch.testing.assert_close(again[1], images_1)


def test_seed_worker_reseeds_a_plain_compose_found_on_the_dataset():
    plain = A.Compose([A.RandomResizedCrop(size=(16, 16), scale=(0.5, 1.0)), A.GaussNoise(std_range=(0.01, 0.05), p=1)])
    images_0, images_1, _, _ = _worker_batches(plain, seed_worker)
    assert not torch.allclose(torch.as_tensor(images_0).float(), torch.as_tensor(images_1).float())


def test_kit_pipelines_reseed_in_workers_even_without_seed_worker():
    images_0, images_1, _, _ = _worker_batches(build_train_transform(SPEC, 16, MEAN, STD), None)
    assert not torch.allclose(images_0, images_1)


def test_a_plain_compose_repeats_itself_across_workers_without_seeding():
    """The failure the two tests above guard against (kaggle-facts section 6)."""
    plain = A.Compose([A.RandomResizedCrop(size=(16, 16), scale=(0.5, 1.0)), A.GaussNoise(std_range=(0.01, 0.05), p=1)])
    images_0, images_1, _, _ = _worker_batches(plain, None)
    assert torch.equal(torch.as_tensor(images_0), torch.as_tensor(images_1))
