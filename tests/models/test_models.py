"""timm models: stems, heads, local weights files, freezing, normalisation, clear errors."""

import copy

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from kaggle_kit.config.recipe import Recipe
from kaggle_kit.core.errors import KitError
from kaggle_kit.models.factory import (
    backbone_parameters,
    build_model,
    forward_features_pooled,
    forward_head,
    head_parameters,
    normalization,
    set_backbone_frozen,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def source_resnet18():
    torch.manual_seed(0)
    return timm.create_model("resnet18").eval()  # random weights stand in for ImageNet ones (no downloads)


@pytest.fixture(scope="module")
def weights_files(source_resnet18, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    state = source_resnet18.state_dict()
    save_file(state, folder / "resnet18.safetensors")
    torch.save(state, folder / "resnet18.pth")
    torch.save({"model": state, "epoch": 3}, folder / "resnet18_checkpoint.pt")
    torch.save(timm.create_model("resnet10t").state_dict(), folder / "resnet10t.pth")
    return folder


def test_cifar_stem_is_a_3x3_stride_1_conv_without_max_pool():
    model = build_model(Recipe(arch="resnet18", stem="cifar"), 10).eval()
    assert isinstance(model.conv1, nn.Conv2d) and model.conv1.bias is None
    assert (model.conv1.kernel_size, model.conv1.stride, model.conv1.out_channels) == ((3, 3), (1, 1), 64)
    assert isinstance(model.maxpool, nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (4, 4)  # not 1x1 as with 7x7 + pool


def test_cifar_stem_on_an_arch_without_one_is_a_clear_error():
    with pytest.raises(KitError, match="--stem cifar.*convnext_atto.*--stem imagenet"):
        build_model(Recipe(arch="convnext_atto", stem="cifar"), 10)


def test_mlp_head_is_linear_relu_linear_on_the_pooled_features():
    model = build_model(Recipe(arch="resnet18", head="mlp", head_hidden=32), 7).eval()
    head = model.get_classifier()
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (512, 32, 7)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = forward_features_pooled(model, x)
        assert features.shape == (2, 512)
        torch.testing.assert_close(forward_head(model, features), model(x))
        assert model(x).shape == (2, 7)


@pytest.mark.parametrize("file", ["resnet18.safetensors", "resnet18.pth", "resnet18_checkpoint.pt"])
def test_weights_file_loads_the_backbone_and_recreates_the_head(file, weights_files, source_resnet18):
    model = build_model(Recipe(arch="resnet18", weights=str(weights_files / file)), 10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(forward_features_pooled(model, x), forward_features_pooled(source_resnet18, x))
    assert model.get_classifier().out_features == 10
    assert model.pretrained_cfg["file"] == str(weights_files / file)  # timm's own loading path was used
    assert normalization(model) == (source_resnet18.pretrained_cfg["mean"], source_resnet18.pretrained_cfg["std"])


def test_weights_file_with_the_cifar_stem_and_mlp_head_keeps_the_rest(weights_files, source_resnet18):
    model = build_model(
        Recipe(arch="resnet18", stem="cifar", head="mlp", weights=str(weights_files / "resnet18.pth")), 10
    )
    assert model.conv1.kernel_size == (3, 3)
    for name in ("layer1.0.conv1.weight", "layer4.1.bn2.running_var"):
        torch.testing.assert_close(model.state_dict()[name], source_resnet18.state_dict()[name])
    assert model.get_classifier()[2].out_features == 10


def test_a_cifar_stem_checkpoint_reloads_with_its_stem(tmp_path):
    trained = build_model(Recipe(arch="resnet18", stem="cifar"), 10)
    torch.save({"model": trained.state_dict()}, tmp_path / "best.pt")
    model = build_model(Recipe(arch="resnet18", stem="cifar", weights=str(tmp_path / "best.pt")), 10)
    torch.testing.assert_close(model.conv1.weight, trained.conv1.weight)
    with pytest.raises(KitError, match="best.pt.*conv1.weight.*add --stem cifar"):
        build_model(Recipe(arch="resnet18", weights=str(tmp_path / "best.pt")), 10)


def test_weights_of_another_arch_name_the_file_and_the_mismatch(weights_files):
    with pytest.raises(KitError) as error:
        build_model(Recipe(arch="resnet18", weights=str(weights_files / "resnet10t.pth")), 10)
    message = str(error.value)
    assert "resnet10t.pth" in message and "does not fit --arch resnet18" in message and "\n" not in message
    assert "missing" in message and "unknown to resnet18" in message
    with pytest.raises(KitError, match="resnet18.safetensors does not fit --arch resnet34.*missing"):
        build_model(Recipe(arch="resnet34", weights=str(weights_files / "resnet18.safetensors")), 10)


def test_missing_or_unreadable_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(KitError, match="nope.pth not found"):
        build_model(Recipe(weights=str(tmp_path / "nope.pth")), 10)
    (tmp_path / "junk.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(KitError, match="cannot read weights file .*junk.safetensors"):
        build_model(Recipe(weights=str(tmp_path / "junk.safetensors")), 10)


def test_pretrained_offline_points_to_weights_flag(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(KitError, match="ImageNet weights for --arch resnet18.*--weights FILE"):
        build_model(Recipe(arch="resnet18", pretrained=True), 10)


def test_unknown_arch_suggests_close_names():
    with pytest.raises(KitError, match="unknown architecture --arch resnet33: did you mean .*resnet34"):
        build_model(Recipe(arch="resnet33"), 10)


def test_any_timm_name_builds():
    model = build_model(Recipe(arch="mobilenetv3_small_050"), 5)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_frozen_backbone_trains_only_the_head_and_keeps_batchnorm_in_eval():
    model = build_model(Recipe(arch="resnet18", head="mlp", head_hidden=16), 4)
    set_backbone_frozen(model, True)
    model.train()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
    assert {id(p) for p in head_parameters(model)} == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(head_parameters(model)) + len(backbone_parameters(model)) == len(list(model.parameters()))
    assert not model.bn1.training and not model.layer3[1].bn2.training
    running_mean = model.bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    torch.testing.assert_close(model.bn1.running_mean, running_mean)  # the frozen backbone is a fixed function
    assert model.conv1.weight.grad is None and model.fc[0].weight.grad is not None
    assert not copy.deepcopy(model).train().bn1.training  # an EMA copy keeps the behaviour

    set_backbone_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())
    assert model.bn1.training
    model.eval()
    model.train()
    assert model.bn1.training


def test_normalization_comes_from_the_pretrained_config():
    model = build_model(Recipe(arch="resnet18"), 10)
    assert normalization(model) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # timm's resnet18 config
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    assert normalization(model) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
