"""Mixup and CutMix: a batch stage that blends images in pairs and returns soft targets.

`BatchMix(x, y)` -> (x, targets): with probability `prob` a batch is mixed, by mixup (a convex blend of two
images, weight drawn from Beta(alpha, alpha)) or CutMix (a box of the partner pasted in, its area fraction the
partner's weight); with both alphas set each mixed batch picks one of the two at even odds. Targets are then
probability rows (label smoothing folded in) that sum to one; an unmixed batch keeps its class indices, so the
loss is the plain one. Image i is paired with image n-1-i (the batch reversed), as timm does.

Why not `timm.data.Mixup`: it refuses a batch of odd size, and the trainer keeps an epoch's last short batch
when the data is smaller than a batch; its targets and loss are otherwise the same as here.
Draws come from numpy's global generator, which the trainer seeds from (seed, epoch): a resumed epoch mixes
exactly as the uninterrupted one did.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class BatchMix:
    def __init__(self, mixup_alpha: float, cutmix_alpha: float, prob: float, num_classes: int, smoothing: float):
        self.mixup_alpha, self.cutmix_alpha, self.prob = mixup_alpha, cutmix_alpha, prob
        self.num_classes, self.smoothing = num_classes, smoothing
        self.active = mixup_alpha > 0 or cutmix_alpha > 0  # switched off by the MixBatches hook at its epoch

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active or x.ndim != 4 or np.random.rand() >= self.prob:
            return x, y  # images only: head-only epochs train on cached feature vectors
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or np.random.rand() < 0.5)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(np.random.beta(alpha, alpha))
        partner = x.flip(0)
        if use_cutmix:
            x, lam = paste_box(x, partner, lam)
        else:
            x = x * lam + partner * (1 - lam)
        targets = self.soft_targets(y)
        return x, targets * lam + targets.flip(0) * (1 - lam)

    def soft_targets(self, y: torch.Tensor) -> torch.Tensor:
        off = self.smoothing / self.num_classes
        return F.one_hot(y, self.num_classes).float() * (1 - self.smoothing) + off


def paste_box(x: torch.Tensor, partner: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """`x` with a box of `partner` pasted in (area about 1 - lam, centre uniform, clipped to the image), and the
    weight of `x` that the clipped box really leaves."""
    height, width = x.shape[-2:]
    cut = np.sqrt(1 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy, cx = np.random.randint(height), np.random.randint(width)
    top, bottom = np.clip([cy - box_h // 2, cy + box_h // 2], 0, height)
    left, right = np.clip([cx - box_w // 2, cx + box_w // 2], 0, width)
    mixed = x.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return mixed, 1 - float((bottom - top) * (right - left)) / (height * width)


def batch_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy against class indices (smoothed) or against probability rows (smoothing already in them)."""
    return F.cross_entropy(logits, targets, label_smoothing=0.0 if targets.is_floating_point() else smoothing)
