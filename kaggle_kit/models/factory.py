"""timm models for kaggle-kit: any timm architecture, the CIFAR stem, the study's MLP head, weights, freezing.

`build_model` turns a Recipe into a ready `torch.nn.Module`:

- `arch`: any `timm.create_model` name (tags such as `resnet18.tv_in1k` included); unknown names get close ones.
- `pretrained`: ImageNet weights from the hub through timm; offline this fails with a hint to use `--weights`.
- `weights`: a local .safetensors / .pth / .pt file loaded through timm's own mechanism
  (`pretrained_cfg_overlay=dict(file=...)`), which keeps the model's config (mean/std) and re-creates the
  classifier when the class count differs. Every tensor outside the head must fit, or a one-line error says
  which ones do not.
- `stem="cifar"`: a 3x3 stride-1 first conv and no max-pool (ResNet family), so 32x32 images keep their
  resolution into the first stage (kaggle-facts section 5).
- `head="mlp"`: the study's output network Linear(features, hidden)-ReLU-Linear(hidden, classes) in place of
  the classifier. It sits on the pooled features (timm's `num_features`), not on the 1000 ImageNet logits as in
  Dive into Deep Learning's fine-tuning chapter.

Freezing: `set_backbone_frozen(model, True)` stops gradients for everything but the classifier and keeps the
backbone's BatchNorm layers in eval mode even across `model.train()`: their running statistics stay the
pretrained ones, so the frozen backbone is a fixed function (what the study fine-tunes on, and what makes a
cached feature of an image stay valid).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import timm
import timm.data
import torch
from torch import nn

from ..config.recipe import Recipe
from ..core.errors import KitError

HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


def build_model(recipe: Recipe, num_classes: int, tabular_width: int = 0) -> nn.Module:
    """The recipe's architecture with `num_classes` outputs, its stem, head and weights; with `tabular_width`
    inputs, a tabular branch beside the pooled image features (models/tabular.py)."""
    arch = resolve_arch(recipe.arch)
    if recipe.weights:
        model = _model_from_file(arch, Path(recipe.weights), num_classes, recipe.stem)
    elif recipe.pretrained:
        model = _model_from_hub(arch, num_classes)
    else:
        model = _create(arch, num_classes=num_classes)
    if recipe.stem == "cifar" and not _has_cifar_stem(model):
        use_cifar_stem(model)
    if tabular_width:
        from .tabular import TabularNet

        return TabularNet(model, tabular_width, num_classes, recipe.head_hidden if recipe.head == "mlp" else None)
    if recipe.head == "mlp":
        use_mlp_head(model, recipe.head_hidden, num_classes)
    return model


def resolve_arch(name: str) -> str:
    """`name` when timm knows it; otherwise a KitError listing the closest timm names."""
    if name.startswith(HUB_PREFIXES) or timm.is_model(name):
        return name
    base = name.split(".", 1)[0]
    close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names"
    raise KitError(f"unknown architecture --arch {name}: {hint}")


def normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel from the model's pretrained config, the statistics its weights expect."""
    config = timm.data.resolve_model_data_config(model)
    return tuple(float(v) for v in config["mean"]), tuple(float(v) for v in config["std"])


# ---- stem and head -------------------------------------------------------------------------------------


def use_cifar_stem(model: nn.Module) -> None:
    """Replace `conv1` by a 3x3 stride-1 conv without bias and `maxpool` by Identity (ResNet family only)."""
    conv1, maxpool, bn1 = (getattr(model, name, None) for name in ("conv1", "maxpool", "bn1"))
    if not all(isinstance(m, nn.Module) for m in (conv1, maxpool, bn1)):
        raise KitError(
            f"--stem cifar needs a ResNet-family architecture (with conv1, bn1 and maxpool); "
            f"{_arch_name(model)} has no such stem: use --stem imagenet or an arch such as resnet18"
        )
    first_conv = next(m for m in conv1.modules() if isinstance(m, nn.Conv2d))  # conv1 itself, or a deep stem's first
    stem = nn.Conv2d(first_conv.in_channels, bn1.num_features, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")  # as timm initialises ResNet convs
    model.conv1 = stem
    model.maxpool = nn.Identity()


def use_mlp_head(model: nn.Module, hidden: int, num_classes: int) -> None:
    """Put Linear(features, hidden)-ReLU-Linear(hidden, num_classes) where timm's classifier was."""
    classifier = model.get_classifier()
    in_features = getattr(classifier, "in_features", None) or getattr(model, "head_hidden_size", model.num_features)
    head = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
    model.set_submodule(_module_name(model, classifier), head)


def _has_cifar_stem(model: nn.Module) -> bool:
    conv1, maxpool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    return isinstance(conv1, nn.Conv2d) and conv1.kernel_size == (3, 3) and isinstance(maxpool, nn.Identity)


# ---- head / backbone split, freezing, feature cache --------------------------------------------------------


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the classifier (timm's `get_classifier()`: the linear layer or the MLP head)."""
    return list(model.get_classifier().parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that is not in the classifier."""
    head_ids = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head_ids]


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) everything but the classifier; frozen BatchNorm layers stay in eval mode."""
    for param in backbone_parameters(model):
        param.requires_grad_(not frozen)
    for norm in _backbone_batchnorms(model):
        if frozen:
            # An instance-level train() that always means eval: the trainer's model.train() cannot switch the
            # frozen layers back to batch statistics, and deepcopy (EMA) re-binds it to the copy.
            norm.train = types.MethodType(_train_stays_eval, norm)
            norm.eval()
        else:
            norm.__dict__.pop("train", None)
            norm.train(model.training)


def forward_features_pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled pre-classifier features (N, features): what a frozen-backbone feature cache stores."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def forward_head(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Logits from pooled features: `model(x) == forward_head(model, forward_features_pooled(model, x))`."""
    return model.get_classifier()(features)


def _train_stays_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def _backbone_batchnorms(model: nn.Module) -> Iterator[nn.Module]:
    head_modules = {id(m) for m in model.get_classifier().modules()}
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and id(module) not in head_modules:
            yield module


# ---- weights ---------------------------------------------------------------------------------------------


def _create(arch: str, **kwargs: Any) -> nn.Module:
    try:
        return timm.create_model(arch, **kwargs)
    except RuntimeError as error:
        if "pretrained tag" in str(error) or "Unknown model" in str(error):
            raise KitError(f"unknown architecture or tag --arch {arch}: {_one_line(error)}") from None
        raise


def _model_from_hub(arch: str, num_classes: int) -> nn.Module:
    try:
        return _create(arch, pretrained=True, num_classes=num_classes)
    except (OSError, RuntimeError) as error:  # offline/DNS/cache misses are OSErrors; no weights: RuntimeError
        raise KitError(
            f"cannot download ImageNet weights for --arch {arch} ({type(error).__name__}: {_one_line(error)}): "
            f"without internet pass --weights FILE (a .safetensors or .pth state dict) or use --no-pretrained"
        ) from None


def _model_from_file(arch: str, path: Path, num_classes: int, stem: str) -> nn.Module:
    """Load `path` through timm (`pretrained_cfg_overlay=dict(file=...)`); the classifier is re-created."""
    state = read_state_dict(path)
    overlay = dict(file=str(path))
    try:
        if stem == "cifar" and _is_cifar_stem_state(state):
            # a kaggle-kit CIFAR checkpoint: the 3x3 stem must be in place before timm loads the file
            model = _create(arch, num_classes=num_classes, pretrained_cfg_overlay=overlay)
            use_cifar_stem(model)
            timm.models.load_pretrained(model, num_classes=num_classes)
        else:
            model = _create(arch, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
    except RuntimeError as error:  # shape mismatches: describe them against a model built without weights
        reference = _create(arch, num_classes=num_classes)
        if stem == "cifar" and _is_cifar_stem_state(state):
            use_cifar_stem(reference)
        message = (
            _mismatch_message(path, arch, state, reference) or f"cannot load weights file {path}: {_one_line(error)}"
        )
        if stem != "cifar" and _is_cifar_stem_state(state):
            message += " (the file has the 3x3 CIFAR stem: add --stem cifar)"
        raise KitError(message) from None
    # timm loads non-strictly once it has dropped the classifier: check that the rest really fitted
    message = _mismatch_message(path, arch, state, model)
    if message:
        raise KitError(message)
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read as timm reads it (safetensors, or torch.load with weights_only=True;
    a dict holding "state_dict", "model" or an EMA copy is unwrapped)."""
    if not path.is_file():
        raise KitError(f"weights file {path} not found: give --weights an existing .safetensors or .pth file")
    try:
        state = timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as error:  # safetensors, pickle and zip errors have no common base class
        raise KitError(
            f"cannot read weights file {path} ({type(error).__name__}: {_one_line(error)}): "
            f"give a .safetensors file or a state dict saved with torch.save"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise KitError(f"weights file {path} holds no state dict of tensors: save model.state_dict(), not the model")
    return state


def _is_cifar_stem_state(state: dict[str, torch.Tensor]) -> bool:
    conv1 = state.get("conv1.weight")
    return conv1 is not None and tuple(conv1.shape[-2:]) == (3, 3)


def _mismatch_message(path: Path, arch: str, state: dict[str, torch.Tensor], model: nn.Module) -> str | None:
    """One line naming what in `state` does not fit `model` outside the classifier, or None when all fits."""
    head = _module_name(model, model.get_classifier()) + "."
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    given = {k: v for k, v in state.items() if not k.startswith(head)}
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    reshaped = [k for k in given if k in expected and given[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors of {arch} missing from the file (first {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors unknown to {arch} (first {unexpected[0]})")
    if reshaped:
        k = reshaped[0]
        shapes = f"file {tuple(given[k].shape)}, {arch} {tuple(expected[k].shape)}"
        problems.append(f"{len(reshaped)} tensors of another shape (first {k}: {shapes})")
    if not problems:
        return None
    return (
        f"weights file {path} does not fit --arch {arch}: {'; '.join(problems)} - "
        f"pass the --arch the file was saved from, or a file saved from {arch}"
    )


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, candidate in model.named_modules() if candidate is module)


def _arch_name(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


__all__ = [
    "backbone_parameters",
    "build_model",
    "forward_features_pooled",
    "forward_head",
    "head_parameters",
    "normalization",
    "read_state_dict",
    "resolve_arch",
    "set_backbone_frozen",
    "use_cifar_stem",
    "use_mlp_head",
]
