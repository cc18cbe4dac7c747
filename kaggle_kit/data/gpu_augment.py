"""The training augmentation and evaluation transform as batched torch operations on the device, equal in
distribution to the Albumentations pipelines of `augment` (geometry exactly, for the crops cv2 computes).

Fixed-size images come as one (N, H, W, 3) uint8 tensor; photos cached with their aspect kept come back to
back as `RaggedImages` (pixels + per-image offset, height, width), and every output pixel is sampled straight
from its own image in one batched gather, so no per-image kernel launches and no padding to one canvas."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # otherwise importing albumentations checks PyPI

import functools  # noqa: E402
import math  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from ..config.recipe import AugmentSpec  # noqa: E402
from .augment import CROP_ATTEMPTS, RGB_TO_GRAY, check_spec


class RaggedImages:
    """Images of different sizes, RGB HxWx3 uint8 each, back to back in one flat tensor on one device.

    Why: photos cached with their aspect kept (Dog Breed) cannot stack into one (N, H, W, 3) tensor, yet all of
    them fit on a GPU (10,222 photos at a shorter side of 256: about 2.7 GB). Indexing with image numbers gives
    a batch that shares the pixels; `GpuAugment` and `GpuEval` sample each output pixel straight from its
    image (`ragged_resized_crops`), so a batch is never copied, stacked or padded.
    `offsets` are in pixels (byte offset / 3), `heights` and `widths` int64; all on the pixels' device.
    """

    def __init__(self, pixels: torch.Tensor, offsets: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor):
        if pixels.dtype != torch.uint8 or pixels.ndim != 1 or pixels.numel() % 3:
            raise ValueError(
                f"expected a flat uint8 tensor of whole RGB pixels, got {pixels.dtype} {tuple(pixels.shape)}"
            )
        self.pixels, self.offsets, self.heights, self.widths = pixels, offsets, heights, widths

    @classmethod
    def from_arrays(cls, images: Sequence[np.ndarray], device: torch.device | str = "cpu") -> RaggedImages:
        """HxWx3 uint8 arrays of any sizes, copied back to back onto `device`."""
        sizes = np.array([image.shape[0] * image.shape[1] for image in images], dtype=np.int64)
        flat = np.concatenate([np.ascontiguousarray(image, dtype=np.uint8).reshape(-1) for image in images])
        return cls.from_flat(
            torch.from_numpy(flat).to(device),
            np.concatenate([[0], np.cumsum(sizes)[:-1]]) * 3,
            np.array([image.shape[:2] for image in images], dtype=np.int64).reshape(-1, 2),
        )

    @classmethod
    def from_flat(cls, pixels: torch.Tensor, byte_starts: np.ndarray, sizes_hw: np.ndarray) -> RaggedImages:
        """A flat uint8 tensor + each image's byte offset and (height, width), as an image cache stores them."""
        byte_starts = np.asarray(byte_starts, dtype=np.int64)
        if (byte_starts % 3).any():
            raise ValueError("every image must start on a whole pixel (a byte offset divisible by 3)")
        device = pixels.device
        sizes_hw = np.asarray(sizes_hw, dtype=np.int64).reshape(-1, 2)
        return cls(
            pixels,
            torch.as_tensor(byte_starts // 3, device=device),
            torch.as_tensor(sizes_hw[:, 0], device=device),
            torch.as_tensor(sizes_hw[:, 1], device=device),
        )

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: torch.Tensor) -> RaggedImages:
        return RaggedImages(self.pixels, self.offsets[index], self.heights[index], self.widths[index])

    @property
    def device(self) -> torch.device:
        return self.pixels.device


def ragged_resized_crops(
    images: RaggedImages, boxes: torch.Tensor, size: int, *, clamp_to_box: bool, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Each image's (x0, y0, w, h) box, in its own pixels, resampled to size x size -> float NCHW in [0, 1]
    (channels_last memory), bilinear with cv2's half-pixel convention.

    `clamp_to_box`: sample positions stop at the box's edge pixels, as cv2 resizing a cropped image does
    (RandomResizedCrop); otherwise at the image's edges, as resizing the whole image then cropping does.
    `flip` (n,) bool: mirror those outputs left-right, by reading their columns in reverse (no extra pass).
    Rows and columns are separable: positions and weights are computed per (image, row) and (image, column),
    and only the four neighbour gathers and their blend touch every output pixel.
    """
    x0, y0, w, h = boxes.to(torch.float32).unbind(1)
    heights, widths = images.heights, images.widths
    cols0, cols1, fx = _sample_axis(x0, w, widths, size, clamp_to_box)
    rows0, rows1, fy = _sample_axis(y0, h, heights, size, clamp_to_box)
    if flip is not None:
        mirror = flip.view(-1, 1)
        cols0, cols1, fx = (torch.where(mirror, v.flip(1), v) for v in (cols0, cols1, fx))
    pixels = images.pixels.view(-1, 3)
    # pixel numbers in int32 while they fit: the four index tensors are the largest temporaries here
    index_type = torch.int32 if len(pixels) < 2**31 else torch.int64
    first = images.offsets[:, None]
    row_top = (first + rows0 * widths[:, None]).to(index_type)  # (n, size) pixel numbers
    row_bottom = (first + rows1 * widths[:, None]).to(index_type)
    cols0, cols1 = cols0.to(index_type), cols1.to(index_type)

    def gather(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        # index_select takes int32 as it is (advanced indexing converts it to int64 first) and is faster
        picked = torch.index_select(pixels, 0, (rows[:, :, None] + cols[:, None, :]).view(-1))
        return picked.view(len(rows), size, size, 3)  # uint8

    # uint8 times float weights (with the 1/255 folded in) gives float in the same pass: no conversion passes
    fx, fy = fx[:, None, :, None], fy[:, :, None, None]
    left, right = (1 - fx) / 255.0, fx / 255.0
    top = (gather(row_top, cols0) * left).addcmul_(gather(row_top, cols1), right)
    bottom = (gather(row_bottom, cols0) * left).addcmul_(gather(row_bottom, cols1), right)
    return torch.lerp(top, bottom, fy).permute(0, 3, 1, 2)  # NHWC memory: channels_last


def _sample_axis(start: torch.Tensor, length: torch.Tensor, limit: torch.Tensor, size: int, clamp_to_box: bool):
    """Along one axis: the two neighbouring source indices and the blend weight for each of `size` outputs."""
    centres = torch.arange(size, device=start.device, dtype=torch.float32) + 0.5
    position = start[:, None] + centres[None, :] * (length / size)[:, None] - 0.5
    last = (limit - 1).to(torch.float32)[:, None]
    if clamp_to_box:
        low, high = start[:, None], torch.minimum(start + length - 1, last[:, 0])[:, None]
    else:
        low, high = torch.zeros_like(last), last
    position = torch.maximum(torch.minimum(position, high), low)
    lower = position.floor()
    upper = torch.minimum(lower + 1, last)
    return lower.to(torch.int64), upper.to(torch.int64), position - lower


def centre_crop_boxes(heights: torch.Tensor, widths: torch.Tensor, short_side: int, crop: int) -> torch.Tensor:
    """(n, 4) boxes (x0, y0, w, h) in each image's pixels of `resize_centre_crop`: shorter side to `short_side`,
    then the centre crop x crop - so one resampling of the box does both."""
    heights, widths = heights.to(torch.float64), widths.to(torch.float64)  # exact integer sizes, as in Python
    scale = short_side / torch.minimum(heights, widths)
    new_h = torch.where(heights <= widths, float(short_side), torch.floor(heights * scale))
    new_w = torch.where(widths <= heights, float(short_side), torch.floor(widths * scale))
    top, left = torch.floor((new_h - crop) / 2), torch.floor((new_w - crop) / 2)
    to_h, to_w = heights / new_h, widths / new_w
    return torch.stack([left * to_w, top * to_h, crop * to_w, crop * to_h], dim=1).to(torch.float32)


class GpuAugment(nn.Module):
    """The AugmentSpec applied to a uint8 batch (NHWC or NCHW) on the batch's device -> normalised float NCHW.

    `sample_params` draws every random choice for a batch; `apply` uses them; `forward` does both. The output
    has channels_last memory layout. `seed` fixes the stream (one generator per device); None uses torch's
    global generator, so `torch.manual_seed` makes it reproducible.
    """

    def __init__(
        self,
        spec: AugmentSpec,
        img_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int | None = None,
        resize: int | None = None,
    ):
        super().__init__()
        check_spec(spec, img_size)
        self.spec, self.img_size, self.seed = spec, img_size, seed
        self.resize = resize or img_size  # as build_train_transform's: the shorter side when nothing crops at random
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._generators: dict[torch.device, torch.Generator] = {}

    def forward(self, batch: torch.Tensor | RaggedImages) -> torch.Tensor:
        if isinstance(batch, RaggedImages):
            params = self.sample_params(len(batch), batch.heights, batch.widths, batch.device)
            return self.apply(batch, params)
        images = to_float_nchw(batch)
        params = self.sample_params(images.shape[0], images.shape[-2], images.shape[-1], images.device)
        return self.apply(images, params)

    # -- sampling

    def sample_params(
        self, n: int, height: int | torch.Tensor, width: int | torch.Tensor, device: torch.device | str = "cpu"
    ) -> dict[str, torch.Tensor]:
        """Per-sample random choices for a batch of n images of height x width (ints, or (n,) tensors of each
        image's own size)."""
        spec, device = self.spec, torch.device(device)
        params: dict[str, torch.Tensor] = {}
        if spec.crop_scale is not None:
            size = (spec.pre_resize, spec.pre_resize) if spec.pre_resize else (height, width)
            params["crop"] = self.sample_crop_boxes(n, *size, device)
        if spec.translate:
            params["shift"] = self._randint(0, 2 * spec.translate + 1, (n, 2), device)
        if spec.hflip:
            params["flip"] = self._uniform(0, 1, n, device) < 0.5
        for name in ("brightness", "contrast", "saturation"):
            amount = getattr(spec, name)
            if amount:
                params[name] = self._uniform(max(0.0, 1 - amount), 1 + amount, n, device)
        if spec.noise_std is not None:
            params["noise_std"] = self._uniform(*spec.noise_std, n, device)
        if spec.cutout:
            params["cutout"] = self._randint(0, self.img_size - spec.cutout + 1, (n, 2), device)
        return params

    def sample_crop_boxes(
        self, n: int, height: int | torch.Tensor, width: int | torch.Tensor, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """(n, 4) float boxes (x0, y0, w, h) drawn exactly as albumentations' RandomResizedCrop draws them, each
        inside its own image (`height`, `width`: ints, or (n,) tensors)."""
        device = torch.device(device)
        height, width = _per_image(height, n, device), _per_image(width, n, device)
        (scale_min, scale_max), (ratio_min, ratio_max) = self.spec.crop_scale, self.spec.crop_ratio
        area = (height * width)[:, None] * self._uniform(scale_min, scale_max, (n, CROP_ATTEMPTS), device)
        aspect = torch.exp(self._uniform(math.log(ratio_min), math.log(ratio_max), (n, CROP_ATTEMPTS), device))
        w, h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
        fits = (w > 0) & (w <= width[:, None]) & (h > 0) & (h <= height[:, None])
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first box that fits, as in the loop
        found = fits.any(dim=1)
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        x0 = torch.floor((width - w + 1) * self._uniform(0, 1, n, device))
        y0 = torch.floor((height - h + 1) * self._uniform(0, 1, n, device))
        fallback_w, fallback_h = _fallback_crop(height, width, ratio_min, ratio_max)
        w = torch.where(found, w, fallback_w)
        h = torch.where(found, h, fallback_h)
        x0 = torch.where(found, x0, torch.div(width - fallback_w, 2, rounding_mode="floor"))
        y0 = torch.where(found, y0, torch.div(height - fallback_h, 2, rounding_mode="floor"))
        return torch.stack([x0, y0, w, h], dim=1)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def _uniform(self, low: float, high: float, shape: int | tuple[int, ...], device: torch.device) -> torch.Tensor:
        shape = (shape,) if isinstance(shape, int) else shape
        return low + (high - low) * torch.rand(shape, device=device, generator=self._generator(device))

    def _randint(self, low: int, high: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.randint(low, high, shape, device=device, generator=self._generator(device))

    # -- applying

    def apply(self, images: torch.Tensor | RaggedImages, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """float NCHW in [0, 1] (or `RaggedImages`) + sampled params -> augmented, normalised float NCHW
        (channels_last)."""
        # Each step below reads and writes the whole float batch once or twice: on a GPU they are bound by
        # memory traffic, so the flip is folded into the last step that picks columns, and in-place ops are
        # used on tensors this method made itself.
        x, flipped = self._geometry(images, params)
        if "flip" in params and not flipped:
            x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        x = _colour_jitter(x, params)
        if "noise_std" in params:
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=self._generator(x.device))
            x = noise.mul_(params["noise_std"].view(-1, 1, 1, 1)).add_(x).clamp_(0, 1)
        if "cutout" in params:
            x = _cut_out(x, params["cutout"], self.spec.cutout, self.mean)
        return _normalize(x, self.mean, self.std)

    def _geometry(self, x: torch.Tensor | RaggedImages, params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """Crop or resize, then translate -> (images, whether the flip was already applied)."""
        spec, size = self.spec, self.img_size
        flip = params.get("flip")
        if isinstance(x, RaggedImages):
            x = self._ragged_geometry(x, params, None if "shift" in params else flip)
            flipped = "shift" not in params
        else:
            if spec.pre_resize:
                x = F.interpolate(x, size=(spec.pre_resize, spec.pre_resize), mode="bilinear", align_corners=False)
            x = resized_crops(x, params["crop"], size) if "crop" in params else resize_centre_crop(x, self.resize, size)
            flipped = False
        if "shift" in params:
            x, flipped = _translate(x, params["shift"], spec.translate, flip), True
        return x, flipped

    def _ragged_geometry(
        self, images: RaggedImages, params: dict[str, torch.Tensor], flip: torch.Tensor | None
    ) -> torch.Tensor:
        """Crop (or resize and centre-crop) every image to img_size in one resampling from its own pixels."""
        heights, widths = images.heights.to(torch.float32), images.widths.to(torch.float32)
        if self.spec.pre_resize:
            side = torch.full_like(heights, float(self.spec.pre_resize))
            frame_h, frame_w, to_source = side, side, torch.stack([widths, heights] * 2, 1) / side[:, None]
        else:
            frame_h, frame_w, to_source = heights, widths, None
        if "crop" in params:
            boxes, clamp_to_box = params["crop"], self.spec.pre_resize is None
        else:
            boxes, clamp_to_box = centre_crop_boxes(frame_h, frame_w, self.resize, self.img_size), False
        if to_source is not None:
            boxes = boxes * to_source  # pre-resized coordinates back onto the stored pixels
        return ragged_resized_crops(images, boxes, self.img_size, clamp_to_box=clamp_to_box, flip=flip)


def to_float_nchw(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC or NCHW (3 channels) -> float32 NCHW in [0, 1]; an NHWC input stays channels_last in memory."""
    if batch.dtype != torch.uint8 or batch.ndim != 4:
        raise ValueError(f"expected a uint8 image batch of 4 dims, got {batch.dtype} of shape {tuple(batch.shape)}")
    if batch.shape[-1] == 3:
        batch = batch.permute(0, 3, 1, 2)
    elif batch.shape[1] != 3:
        raise ValueError(f"expected 3 channels first or last, got shape {tuple(batch.shape)}")
    return batch.float().div_(255.0)


def gpu_normalize(batch_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Evaluation on the GPU: uint8 NHWC/NCHW -> normalised float NCHW (channels_last), no augmentation."""
    return _normalize(to_float_nchw(batch_uint8), mean, std)


def resized_crops(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's (x0, y0, w, h) box resized to size x size, bilinear with cv2's half-pixel convention."""
    n, _, height, width = x.shape
    x0, y0, w, h = boxes.to(x.dtype).unbind(1)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    # output [-1, 1] maps onto the box's outer pixel edges [x0, x0 + w] in align_corners=False coordinates
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize_centre_crop(x: torch.Tensor, short_side: int, crop: int) -> torch.Tensor:
    """Shorter side to `short_side` (bilinear, like SmallestMaxSize), then the centre crop x crop."""
    height, width = x.shape[-2:]
    if min(height, width) != short_side:
        scale = short_side / min(height, width)
        new_h = short_side if height <= width else int(height * scale)
        new_w = short_side if width <= height else int(width * scale)
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        height, width = new_h, new_w
    top, left = (height - crop) // 2, (width - crop) // 2
    return x[..., top : top + crop, left : left + crop]


def _per_image(value: int | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """(n,) float32 on `device`; a Python number is filled in place there (a host-to-GPU copy of a scalar from
    pageable memory would make the host wait for the GPU's queue)."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float32).expand(n)
    return torch.full((n,), float(value), device=device)


def _fallback_crop(
    height: torch.Tensor, width: torch.Tensor, ratio_min: float, ratio_max: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """albumentations' centre crop when no random box fits: the whole image, clamped to the aspect range."""
    aspect = width / height  # below ratio_min and above ratio_max exclude each other: one test per side
    fallback_w = torch.where(aspect > ratio_max, torch.round(height * ratio_max), width)
    fallback_h = torch.where(aspect < ratio_min, torch.round(width / ratio_min), height)
    return fallback_w, fallback_h


def _translate(x: torch.Tensor, shifts: torch.Tensor, pad: int, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Reflect-pad by `pad` and cut each image's window at its (dx, dy) offset in [0, 2 * pad]; images with
    `flip` set come out mirrored left-right (their window read in reverse: the flip costs no extra pass)."""
    n, _, height, width = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect").permute(0, 2, 3, 1)  # NHWC for one gather
    rows = shifts[:, 1, None] + torch.arange(height, device=x.device)
    cols = shifts[:, 0, None] + torch.arange(width, device=x.device)
    if flip is not None:
        cols = torch.where(flip.view(-1, 1), cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=64)
def _per_channel(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A (1, C, 1, 1) constant, made once per device: a fresh host-to-GPU copy per batch would cost a sync."""
    return torch.tensor(values, device=device, dtype=dtype).view(1, -1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(n, 1, h, w) luma: three strided reads, no full-size product tensor."""
    r, g, b = RGB_TO_GRAY
    return (x[:, 0:1] * r).add_(x[:, 1:2], alpha=g).add_(x[:, 2:3], alpha=b)


def _colour_jitter(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """torchvision-style factors, as albumentations' ColorJitter applies them (blend with black, grey mean, grey)."""
    if "brightness" in params:
        x = (x * params["brightness"].view(-1, 1, 1, 1)).clamp_(0, 1)
    if "contrast" in params:
        # the mean of the grey image is the luma of the channel means: one reduction, no grey image
        channel_means = x.mean(dim=(-2, -1), keepdim=True)
        grey_mean = _gray(channel_means)
        x = torch.lerp(grey_mean, x, params["contrast"].view(-1, 1, 1, 1)).clamp_(0, 1)
    if "saturation" in params:
        x = torch.lerp(_gray(x), x, params["saturation"].view(-1, 1, 1, 1)).clamp_(0, 1)
    return x


def _cut_out(x: torch.Tensor, corners: torch.Tensor, hole: int, fill: Sequence[float]) -> torch.Tensor:
    """One hole x hole square per image at its (x0, y0) corner, filled with the mean (zero once normalised)."""
    height, width = x.shape[-2:]
    ys, xs = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
    in_rows = (ys >= corners[:, 1, None]) & (ys < corners[:, 1, None] + hole)
    in_cols = (xs >= corners[:, 0, None]) & (xs < corners[:, 0, None] + hole)
    inside = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    colour = _per_channel(tuple(fill), x.device, x.dtype)
    return torch.where(inside, colour, x)


def _normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    # one pass: x * (1 / std) + (-mean / std)
    scale = _per_channel(tuple(1.0 / float(s) for s in std), x.device, x.dtype)
    shift = _per_channel(tuple(-float(m) / float(s) for m, s in zip(mean, std)), x.device, x.dtype)
    return torch.addcmul(shift, x, scale).contiguous(memory_format=torch.channels_last)


class DeviceNormalize(nn.Module):
    """The normalisation `build_train_transform(normalize=False)` leaves out, on a whole batch on its device:
    uint8 (0-255) or float ([0, 1]) NCHW -> normalised float NCHW (channels_last on a GPU)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected an NCHW batch of 3 channels, got shape {tuple(batch.shape)}")
        # one new tensor, scaled and shifted in place: x * (1 / (range * std)) - mean / std
        pixel_range = 255.0 if batch.dtype == torch.uint8 else 1.0
        scale = _per_channel(tuple(1.0 / (pixel_range * s) for s in self.std), batch.device, torch.float32)
        shift = _per_channel(tuple(-m / s for m, s in zip(self.mean, self.std)), batch.device, torch.float32)
        memory_format = torch.channels_last if batch.is_cuda else torch.contiguous_format  # a CPU keeps NCHW
        x = batch.to(dtype=torch.float32, memory_format=memory_format)
        return x.mul_(scale).add_(shift)


class GpuEval(nn.Module):
    """The evaluation pipeline on the batch's device: shorter side to `eval_resize`, centre crop, normalise."""

    def __init__(self, img_size: int, eval_resize: int | None, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.img_size, self.short_side = img_size, eval_resize or img_size
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def forward(self, batch: torch.Tensor | RaggedImages) -> torch.Tensor:
        # the same geometry as build_eval_transform; resize_centre_crop skips work already done
        if isinstance(batch, RaggedImages):
            boxes = centre_crop_boxes(batch.heights, batch.widths, self.short_side, self.img_size)
            x = ragged_resized_crops(batch, boxes, self.img_size, clamp_to_box=False)
        else:
            x = resize_centre_crop(to_float_nchw(batch), self.short_side, self.img_size)
        return _normalize(x, self.mean, self.std)


__all__ = [
    "DeviceNormalize",
    "GpuAugment",
    "GpuEval",
    "RaggedImages",
    "centre_crop_boxes",
    "gpu_normalize",
    "ragged_resized_crops",
    "resize_centre_crop",
    "resized_crops",
    "to_float_nchw",
]
