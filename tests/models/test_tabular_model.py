"""The tabular branch goes through the models factory: no columns builds exactly today's model (its checkpoints
load), columns build the backbone's pooled features joined to a small MLP over them, then the head."""

import torch

from kaggle_kit.config.recipe import Recipe
from kaggle_kit.models.factory import build_model, head_parameters, set_backbone_frozen
from kaggle_kit.models.tabular import TabularNet, forward


def test_no_columns_builds_todays_model_and_columns_add_a_branch():
    recipe = Recipe(arch="test_resnet", img_size=32)
    torch.manual_seed(0)
    plain = build_model(recipe, 3)
    torch.manual_seed(0)
    assert plain.state_dict().keys() == build_model(recipe, 3, 0).state_dict().keys()
    assert not isinstance(plain, TabularNet)

    model = build_model(recipe, 3, tabular_width=5).eval()
    assert isinstance(model, TabularNet) and model.tabular_width == 5
    x, tab = torch.randn(4, 3, 32, 32), torch.randn(4, 5)
    logits = forward(model, x, tab)
    assert logits.shape == (4, 3)
    assert not torch.allclose(logits, forward(model, x, tab + 1.0))  # the columns move the answer
    # the branch trains with the head: a frozen backbone keeps them learning
    set_backbone_frozen(model, True)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in head_parameters(model)}
    assert {id(p) for p in model.classifier.branch.parameters()} <= trainable
    mlp = build_model(Recipe(arch="test_resnet", head="mlp", head_hidden=16), 2, tabular_width=3)
    assert isinstance(mlp.classifier.head, torch.nn.Sequential) and mlp.classifier.head[0].out_features == 16
