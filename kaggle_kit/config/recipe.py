"""Every training setting in typed dataclasses, with overrides and a JSON round-trip.

A run saves its resolved `Recipe` (augmentation spec included) as JSON, so any run can be
re-run exactly from its `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, get_args, get_origin, get_type_hints

from ..core.errors import KitError


@dataclass(frozen=True)
class AugmentSpec:
    """Parameters of one augmentation pipeline, shared by the Albumentations and GPU paths.

    Train-time order: optional pre-resize to `pre_resize` (square), random resized crop with
    `crop_scale` (area fraction) and `crop_ratio` (aspect), or a padded random translate of up to
    `translate` pixels, horizontal flip, a RandAugment-style policy (`policy_ops` ops per image at up to
    `policy_magnitude` of their strength), colour jitter, Gaussian noise (std in [0, 1] pixel units), cutout,
    random erasing (probability `erasing`), normalisation. All off means resize/crop and normalise only.
    The policy and erasing run in the Albumentations pipeline alone: a run with them trains through DataLoader
    workers (`augment.WORKERS_ONLY`).
    """

    pre_resize: int | None = None
    crop_scale: tuple[float, float] | None = None
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    translate: int = 0
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    noise_std: tuple[float, float] | None = None
    cutout: int = 0
    policy_ops: int = 0  # RandAugment-style: this many ops per image from a standard list; 0 = off
    policy_magnitude: float = 0.5  # each op's strength drawn up to this fraction of its maximum, in (0, 1]
    erasing: float = 0.0  # probability of random erasing (a box of 2-33% of the image, any aspect 0.3-3.3)

    @property
    def is_identity(self) -> bool:
        return self == AugmentSpec()


@dataclass
class Recipe:
    """All settings of one training run. Field names double as CLI flags (`--lr`, `--batch-size`)."""

    name: str = "custom"
    # model
    arch: str = "resnet18"
    stem: str = "imagenet"  # imagenet | cifar
    head: str = "linear"  # linear | mlp (the study's Linear-ReLU-Linear output network)
    head_hidden: int = 256
    normalize: str = "model"  # "model": the mean/std the model's weights expect; "dataset": the competition's
    pretrained: bool = False
    weights: str | None = None
    freeze: bool = False
    unfreeze_after: int | None = None
    # data
    img_size: int = 224
    eval_resize: int | None = None  # shorter side before the centre crop; None = img_size
    # cache_side, aug_scale and val_batch_size (and eval_resize) are left None by a named recipe and filled in
    # once, where the recipe is resolved (competitions.resolution.settle), so no module derives them again
    cache_side: int | None = None  # shorter side of the decoded cache: the larger of img_size and eval_resize
    aug_scale: float | None = None  # factor on the augmentation's pixel sizes: img_size / the competition's native
    aug: str = "none"
    val_fraction: float = 0.1
    full_train: bool = False  # train on train+valid (the final model); no validation metric
    skip_bad_images: bool = False
    feature_cache_views: int = 0  # frozen backbone: cache features of K augmented views
    tabular: bool = True  # feed the declaration's tabular columns (features) to the model; off: the images alone
    gpu_data: bool | None = None  # None = auto (GPU-resident uint8 data when it fits)
    workers: int | None = None  # None = auto
    # optimisation
    epochs: int = 10
    early_stop_patience: int | None = None  # epochs without a better validation metric before stopping; None = off
    batch_size: int = 128
    val_batch_size: int | None = None  # validation batch while training (no gradients kept): twice batch_size
    accum_steps: int = 1  # gradient accumulation: one optimizer step per this many batches
    lr_scaling: str = "linear"  # how lr follows a batch shrunk for small data: linear | sqrt | keep
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    layer_decay: float | None = None  # fine-tuning: each layer's lr this times the one above it (head: lr); None = off
    schedule: str = "cosine"  # constant | step | cosine | onecycle
    step_period: int = 4
    step_gamma: float = 0.9
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) blend of image pairs; 0 = off
    cutmix_alpha: float = 0.0  # Beta(alpha, alpha) area of a pasted box; 0 = off
    mix_prob: float = 1.0  # fraction of batches mixed
    mix_off_epoch: int | None = None  # 1-based, as history.csv counts: no mixing from this epoch on; None = never off
    grad_clip: float | None = None
    ema: float | None = None  # EMA decay of weights, e.g. 0.999
    swa_epochs: int | None = None  # average the weights of the last N epochs into swa.pt; None = off
    # engine
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    precision: str = "auto"  # auto | fp32 | fp16 | bf16: the CUDA autocast dtype (auto: by the GPU's bf16 units)
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False
    tta: str = "auto"  # auto | on | off (auto: on when it improves the validation metric)

    def replace(self, **overrides: Any) -> Recipe:
        return apply_overrides(self, overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        return apply_overrides(cls(), data)

    def validate(self) -> Recipe:
        checks = [
            (self.epochs >= 1, "epochs", f"{self.epochs}", "give --epochs 1 or more"),
            (self.batch_size >= 1, "batch_size", f"{self.batch_size}", "give --batch-size 1 or more"),
            (self.accum_steps >= 1, "accum_steps", f"{self.accum_steps}", "give --accum-steps 1 (off) or more"),
            (self.lr > 0 and self.lr < 100, "lr", f"{self.lr}", "give a learning rate such as --lr 0.05"),
            (self.weight_decay >= 0, "weight_decay", f"{self.weight_decay}", "give --weight-decay 0 or more"),
            (
                self.layer_decay is None or 0 < self.layer_decay <= 1,
                "layer_decay",
                f"{self.layer_decay}",
                "use a factor in (0, 1], e.g. 0.7, or none",
            ),
            (0 <= self.val_fraction < 1, "val_fraction", f"{self.val_fraction}", "use a fraction in [0, 1), e.g. 0.1"),
            (self.img_size >= 8, "img_size", f"{self.img_size}", "give --img-size 8 or more"),
            (self.stem in ("imagenet", "cifar"), "stem", self.stem, "use --stem imagenet or --stem cifar"),
            (self.head in ("linear", "mlp"), "head", self.head, "use --head linear or --head mlp"),
            (
                self.normalize in ("model", "dataset"),
                "normalize",
                self.normalize,
                "use --normalize model or --normalize dataset",
            ),
            (self.optimizer in ("sgd", "adamw"), "optimizer", self.optimizer, "use --optimizer sgd or adamw"),
            (self.precision in PRECISIONS, "precision", self.precision, "use --precision auto, fp32, fp16 or bf16"),
            (self.schedule in SCHEDULES, "schedule", self.schedule, f"use one of: {', '.join(SCHEDULES)}"),
            (self.step_period >= 1, "step_period", f"{self.step_period}", "give --step-period 1 or more"),
            (0 < self.step_gamma <= 1, "step_gamma", f"{self.step_gamma}", "use a gamma in (0, 1]"),
            (0 <= self.label_smoothing < 1, "label_smoothing", f"{self.label_smoothing}", "use a value in [0, 1)"),
            (self.mixup_alpha >= 0, "mixup_alpha", f"{self.mixup_alpha}", "give 0 (off) or more, e.g. 0.2"),
            (self.cutmix_alpha >= 0, "cutmix_alpha", f"{self.cutmix_alpha}", "give 0 (off) or more, e.g. 1.0"),
            (0 < self.mix_prob <= 1, "mix_prob", f"{self.mix_prob}", "use a probability in (0, 1]"),
            (
                self.mix_off_epoch is None or self.mix_off_epoch >= 1,
                "mix_off_epoch",
                f"{self.mix_off_epoch}",
                "give an epoch from 1 (as history.csv counts), or none to mix to the end",
            ),
            (self.ema is None or 0 < self.ema < 1, "ema", f"{self.ema}", "use a decay in (0, 1), e.g. 0.999"),
            (
                self.swa_epochs is None or self.swa_epochs >= 1,
                "swa_epochs",
                f"{self.swa_epochs}",
                "give 1 or more epochs to average, or none",
            ),
            (self.tta in ("auto", "on", "off"), "tta", self.tta, "use auto, on or off"),
            (self.lr_scaling in ("linear", "sqrt", "keep"), "lr_scaling", self.lr_scaling, "use linear, sqrt or keep"),
            (self.warmup_epochs >= 0, "warmup_epochs", f"{self.warmup_epochs}", "give 0 or more"),
            (self.head_hidden >= 1, "head_hidden", f"{self.head_hidden}", "give --head-hidden 1 or more, e.g. 256"),
            (
                self.workers is None or self.workers >= 0,
                "workers",
                f"{self.workers}",
                "give --workers 0 or more (none: automatic)",
            ),
            (0 <= self.momentum < 1, "momentum", f"{self.momentum}", "use a momentum in [0, 1), e.g. 0.9"),
            (
                self.grad_clip is None or self.grad_clip > 0,
                "grad_clip",
                f"{self.grad_clip}",
                "give a positive norm such as --grad-clip 1, or none to turn clipping off",
            ),
            (0 <= self.seed < 2**32, "seed", f"{self.seed}", "give a seed in [0, 2^32)"),
            (
                self.unfreeze_after is None or self.unfreeze_after >= 0,
                "unfreeze_after",
                f"{self.unfreeze_after}",
                "give 0 or more epochs, or none",
            ),
            (
                self.early_stop_patience is None or self.early_stop_patience >= 1,
                "early_stop_patience",
                f"{self.early_stop_patience}",
                "give 1 or more epochs, or none to train every epoch",
            ),
        ]
        for ok, name, value, fix in checks + self._size_checks():
            if not ok:
                raise KitError(f"invalid setting {name}={value}: {fix}")
        return self

    def _size_checks(self) -> list[tuple[bool, str, str, str]]:
        """The sizes resolution settles (competitions.resolution.settle), checked as validate checks the rest."""
        return [
            (
                self.eval_resize is None or self.eval_resize >= self.img_size,
                "eval_resize",
                f"{self.eval_resize}",
                f"give --eval-resize {self.img_size} or more "
                f"(the evaluation crop of --img-size {self.img_size} is cut from it)",
            ),
            (
                self.cache_side is None or self.cache_side >= max(self.img_size, self.eval_resize or 0),
                "cache_side",
                f"{self.cache_side}",
                f"give --cache-side {max(self.img_size, self.eval_resize or 0)} or more (the crops are cut from it)",
            ),
            (self.aug_scale is None or self.aug_scale > 0, "aug_scale", f"{self.aug_scale}", "give a factor above 0"),
            (
                self.val_batch_size is None or self.val_batch_size >= 1,
                "val_batch_size",
                f"{self.val_batch_size}",
                "give --val-batch-size 1 or more",
            ),
        ]

    def warmup_length(self) -> float:
        """The warmup in epochs that training uses: the recipe's, unless it would not end before the run does (a
        recipe's warmup with a shortened --epochs), then 30% of the run, as the one-cycle default."""
        return self.warmup_epochs if self.warmup_epochs < self.epochs else 0.3 * self.epochs

    def notes(self) -> list[str]:
        """Settings that are valid but do not do what they seem to: said once when training starts."""
        said = []
        if self.warmup_length() != self.warmup_epochs:
            said.append(
                f"warmup_epochs={self.warmup_epochs:g} would not end within --epochs {self.epochs}: warming "
                f"up for {self.warmup_length():g} epochs (30% of the run) instead, so the rate still comes down"
            )
        if self.unfreeze_after is not None and not self.freeze:
            # most often a recipe's unfreeze_after meeting --no-freeze: point the way the user went, not back
            said.append(
                f"unfreeze_after={self.unfreeze_after} has no effect: the backbone is not frozen, so every "
                f"layer trains from epoch 1 (add --unfreeze-after none to say so)"
            )
        elif self.unfreeze_after is not None and self.unfreeze_after >= self.epochs:
            said.append(
                f"unfreeze_after={self.unfreeze_after} is not before --epochs {self.epochs}: the backbone "
                f"stays frozen for the whole run"
            )
        if self.swa_epochs is not None and self.swa_epochs > self.epochs:
            said.append(f"swa_epochs={self.swa_epochs} is more than --epochs {self.epochs}: every epoch is averaged")
        mixing = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if self.mix_off_epoch is not None and not mixing:
            said.append(f"mix_off_epoch={self.mix_off_epoch} has no effect: --mixup-alpha and --cutmix-alpha are 0")
        if self.early_stop_patience is not None and self.full_train:
            said.append(
                f"early_stop_patience={self.early_stop_patience} has no effect: --full-train keeps no validation "
                "images to stop on, so every epoch trains"
            )
        if self.mix_prob != 1 and not mixing:
            said.append(f"mix_prob={self.mix_prob:g} has no effect: --mixup-alpha and --cutmix-alpha are 0")
        if self.layer_decay is not None and not (self.pretrained or self.weights):
            # layer decay keeps pretrained lower layers close to their weights; random ones just learn slower
            said.append(
                f"layer_decay={self.layer_decay:g} without pretrained weights: the lower layers of a random network "
                f"train at a fraction of --lr (add --layer-decay none to train every layer at --lr)"
            )
        elif mixing and self.mix_off_epoch is not None and self.mix_off_epoch > self.epochs:
            said.append(f"mix_off_epoch={self.mix_off_epoch} is after --epochs {self.epochs}: every epoch mixes")
        if mixing and self.freeze and self.feature_cache_views:
            said.append(
                "mixup/CutMix mix images: the epochs trained on cached features (--feature-cache-views) are not mixed"
            )
        return said


SCHEDULES = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn JSON or CLI values into the field's type, with a one-line error when impossible."""
    if value is None:
        return None
    nullable = type(None) in get_args(hint)
    if nullable and isinstance(value, str) and value.lower() == "none":
        return None  # the command line's way to clear a setting a recipe gives (e.g. --unfreeze-after none)
    # X | None: the X; any other hint (tuple[float, float] has args too) is the type itself
    target = next(arg for arg in get_args(hint) if arg is not type(None)) if nullable else hint
    try:
        if get_origin(target) is tuple:
            return tuple(float(v) for v in value)
        if target is bool:
            if isinstance(value, str):
                return {
                    "1": True,
                    "true": True,
                    "yes": True,
                    "on": True,
                    "0": False,
                    "false": False,
                    "no": False,
                    "off": False,
                }[value.lower()]
            return bool(value)
        if target is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if target is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError, KeyError):
        raise KitError(f"invalid setting {name}={value!r}: expected {getattr(target, '__name__', target)}") from None


def apply_overrides(base: Any, overrides: dict[str, Any]) -> Any:
    """A copy of dataclass `base` with `overrides` applied; unknown keys are an error with a hint."""
    hints = get_type_hints(type(base))
    names = {f.name for f in fields(base)}
    changes = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in names:
            import difflib

            close = difflib.get_close_matches(key, sorted(names), n=3)
            hint = f" - did you mean {', '.join(close)}?" if close else ""
            raise KitError(f"unknown setting '{key}' for {type(base).__name__}{hint}")
        if key == "aug_spec":
            continue
        changes[key] = _coerce(key, hints[key], value)
    return dataclasses.replace(base, **changes)


def augment_spec_from_dict(data: dict[str, Any]) -> AugmentSpec:
    return apply_overrides(AugmentSpec(), data)


__all__ = ["AugmentSpec", "Recipe", "SCHEDULES", "apply_overrides", "augment_spec_from_dict"]


FIELD_HELP = {
    "arch": "any timm model name, e.g. resnet18, resnet34, resnet50",
    "stem": "imagenet (timm's 7x7 stride-2 stem + max-pool) or cifar (3x3 stride-1, no max-pool)",
    "head": "linear (timm's) or mlp (the study's Linear-ReLU-Linear output network)",
    "head_hidden": "hidden width of the mlp head",
    "normalize": "per-channel mean/std: model (what its pretrained weights expect) or dataset (the competition's own)",
    "pretrained": "start from ImageNet weights (downloads through timm)",
    "weights": "local weights file (.safetensors or .pth state dict); the head is re-created",
    "freeze": "train the head only (the study's fine-tuning mode)",
    "unfreeze_after": "with --freeze: train all layers from this epoch on",
    "img_size": "training and evaluation crop size",
    "eval_resize": "shorter side before the evaluation centre crop",
    "cache_side": "shorter side of the decoded image cache (default: the larger of img-size and eval-resize)",
    "aug_scale": "factor on the augmentation's pixel sizes (default: img-size / the competition's native size)",
    "val_batch_size": "validation batch while training (default: twice batch-size)",
    "aug": "augmentation pipeline: none, paper (the study's), modern, or policy (modern + RandAugment-style ops and "
    "random erasing)",
    "val_fraction": "fraction of each class held out for validation",
    "full_train": "train on train+validation (the final model)",
    "skip_bad_images": "skip images that do not decode (recorded in the run) instead of stopping",
    "feature_cache_views": "frozen backbone: cache features of K augmented views per image",
    "tabular": "feed the declaration's tabular columns (features) to the model beside the images; "
    "--no-tabular trains on the images alone (an ablation)",
    "gpu_data": (
        "keep the decoded images on the GPU and augment there "
        "(default: when they take under a quarter of free GPU memory)"
    ),
    "workers": "DataLoader worker processes (default: by device and core count)",
    "epochs": "number of epochs",
    "early_stop_patience": "stop after this many epochs without a better validation metric (default: none, off)",
    "batch_size": "images per batch (per process with --nproc)",
    "accum_steps": "gradient accumulation: one optimizer step per this many batches (effective batch = batch x steps)",
    "lr_scaling": "how --lr follows a batch shrunk for a small dataset: linear, sqrt or keep",
    "optimizer": "sgd or adamw",
    "lr": "peak learning rate (mean loss over the batch)",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum",
    "weight_decay": "weight decay (not applied to biases and norm weights)",
    "layer_decay": "layer-wise lr decay for fine-tuning: head at --lr, each layer below this times the one above",
    "schedule": "constant, step, cosine or onecycle",
    "step_period": "step schedule: epochs between lr drops",
    "step_gamma": "step schedule: factor of each drop",
    "warmup_epochs": "linear warmup length in epochs (onecycle: the rising part)",
    "label_smoothing": "label smoothing of the training loss",
    "mixup_alpha": "mixup: Beta(alpha, alpha) blend of image pairs with soft targets (0: off; e.g. 0.2)",
    "cutmix_alpha": "CutMix: Beta(alpha, alpha) share of a pasted box (0: off; e.g. 1.0); with mixup: one or the other",
    "mix_prob": "fraction of batches mixed by mixup/CutMix",
    "mix_off_epoch": "mixup/CutMix stop from this epoch on (1-based, as history.csv counts; none: never)",
    "grad_clip": "clip gradient norm to this value",
    "ema": "keep an exponential moving average of weights with this decay (e.g. 0.999)",
    "swa_epochs": "average the last N epochs' weights (BatchNorm recomputed) into swa.pt (predict --checkpoint swa)",
    "seed": "random seed: same seed, same CPU run",
    "device": "auto, cpu, cuda or cuda:N",
    "amp": "mixed precision autocast on CUDA (--no-amp: fp32)",
    "precision": "CUDA autocast dtype: auto (bf16 on GPUs with bf16 units, compute capability 8.0+; fp16 with a grad "
    "scaler below, e.g. Kaggle's T4), fp32, fp16 or bf16",
    "channels_last": "channels_last memory format on CUDA",
    "compile": "torch.compile the model",
    "sync_bn": "with --nproc: SyncBatchNorm",
    "tta": "test-time augmentation: auto (when it helps validation), on, off",
}
