"""The device a run trains or predicts on: which one, its autocast dtype, channels_last, the CUDA backend flags.

Shared by the trainer, predict and the benchmarks, so each picks a device, a precision and a memory format by
the same rules. Imports nothing of the trainer's.
"""

from __future__ import annotations

import torch

from ..config.recipe import Recipe
from ..core import distributed
from ..core.errors import KitError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if distributed.is_distributed() and torch.cuda.is_available():
            return torch.device("cuda", distributed.local_rank())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):  # the trainer's speed paths know these two
        raise KitError(f"invalid setting device={name!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KitError(f"device {name} asked for, but no CUDA GPU is visible; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise KitError(
            f"device {name} asked for, but {torch.cuda.device_count()} CUDA GPU(s) are visible "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); pick one of them or use --device auto"
        )
    return device


NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere and later; a T4 (7.5) runs bf16 emulated, far slower than its fp16


def autocast_dtype(device: torch.device, recipe: Recipe) -> torch.dtype | None:
    """The autocast dtype on `device`: None (fp32) on a CPU, where autocast slows convolutions down, or with
    --no-amp / --precision fp32; else the forced --precision, or bf16 where the GPU has bf16 units and fp16 below.
    `torch.cuda.is_bf16_supported()` is not asked: it also answers True where bf16 is only emulated."""
    if not recipe.amp or recipe.precision == "fp32" or device.type != "cuda":
        return None
    if recipe.precision in ("fp16", "bf16"):
        return torch.float16 if recipe.precision == "fp16" else torch.bfloat16
    native = torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY
    return torch.bfloat16 if native else torch.float16


def use_channels_last(recipe: Recipe, device: torch.device) -> bool:
    """channels_last for the model and its image batches: on CUDA only, where the convolutions gain from it."""
    return recipe.channels_last and device.type == "cuda"


def set_backend_flags(device: torch.device) -> None:
    """cuDNN autotuning and TF32 matmuls/convolutions on CUDA (fixed input sizes; TF32 is within AMP's error)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def images_to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:  # images; cached features (N, D) have no memory format
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool):
    """One (inputs, labels) batch on `device`, images in channels_last when asked."""
    return images_to_device(x, device, channels_last), y.to(device, non_blocking=True)
