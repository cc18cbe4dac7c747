"""The image model with a tabular branch: the backbone's pooled features concatenated with a small MLP over the
encoded tabular columns (data/tabular.py), then the head (SIIM-ISIC and PetFinder winners' "metadata branch").

`get_classifier()` is the tabular branch and the head together: both start untrained, so freezing the backbone
(`set_backbone_frozen`) keeps them training, and head-only parameter groups include them.
"""

from __future__ import annotations

import torch
from torch import nn

BRANCH_WIDTH = 64  # the tabular branch's output: small next to a backbone's 512+ pooled features


class TabularHead(nn.Module):
    """MLP(tabular) concatenated to the pooled image features, then the classifier."""

    def __init__(self, image_features: int, tabular_width: int, outputs: int, head_hidden: int | None):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Linear(tabular_width, BRANCH_WIDTH),
            nn.ReLU(inplace=True),
            nn.Linear(BRANCH_WIDTH, BRANCH_WIDTH),
            nn.ReLU(inplace=True),
        )
        joined = image_features + BRANCH_WIDTH
        if head_hidden:  # the recipe's MLP head (head = "mlp"), on the joined features
            layers = (nn.Linear(joined, head_hidden), nn.ReLU(inplace=True), nn.Linear(head_hidden, outputs))
            self.head = nn.Sequential(*layers)
        else:
            self.head = nn.Linear(joined, outputs)

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([image, self.branch(tabular.to(image.dtype))], dim=1))


class TabularNet(nn.Module):
    """`backbone` (a timm model whose classifier is removed, so it returns pooled features) and a `TabularHead`."""

    def __init__(self, backbone: nn.Module, tabular_width: int, outputs: int, head_hidden: int | None):
        super().__init__()
        backbone.reset_classifier(0)
        self.backbone = backbone
        self.classifier = TabularHead(backbone.num_features, tabular_width, outputs, head_hidden)
        self.tabular_width = tabular_width
        self.pretrained_cfg = getattr(backbone, "pretrained_cfg", {})  # timm's data config reads it (normalisation)

    def forward(self, x: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x), tabular)

    def get_classifier(self) -> nn.Module:
        return self.classifier


def forward(model: nn.Module, x: torch.Tensor, tabular: torch.Tensor | None) -> torch.Tensor:
    """`model`'s logits for images `x` and their tabular rows (None: an image-only model)."""
    return model(x) if tabular is None else model(x, tabular)
