"""The accuracy levers (issue 17): mixup/CutMix, augmentation policy and erasing, layer-wise lr decay, gradient
accumulation and weight averaging, each tested alone and through one tiny real `train`."""

import numpy as np
import pytest
import torch
from helpers import TINY_CPU_ARGS

from kaggle_kit.data.mixing import BatchMix
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.training.hooks.mixing import MixBatches
from kaggle_kit.training.state import TrainState

TINY_TRAIN = [*TINY_CPU_ARGS, "--tta", "off"]  # the smallest real run, its predict without TTA


def tiny_state() -> TrainState:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return TrainState(model, model, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=False))


@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
@pytest.mark.parametrize("batch", [8, 7])  # an epoch's last batch may be odd
def test_mixed_targets_are_probability_rows_matching_the_mixed_images(mixup, cutmix, batch):
    np.random.seed(3)
    classes, smoothing = 5, 0.1
    mix = BatchMix(mixup, cutmix, prob=1.0, num_classes=classes, smoothing=smoothing)
    # each image a constant plane of its own value: the share of the partner in a mixed image is readable
    values = torch.arange(1, batch + 1, dtype=torch.float32) * 10
    x = values.view(-1, 1, 1, 1).expand(batch, 3, 16, 16).contiguous()
    y = torch.arange(batch) % classes
    for _ in range(20):
        mixed, targets = mix(x, y)
        assert targets.shape == (batch, classes) and targets.dtype == torch.float32
        assert torch.allclose(targets.sum(1), torch.ones(batch)) and (targets >= 0).all()
        own = mixed.mean((1, 2, 3))  # lam * v_i + (1 - lam) * v_partner, whether blended or pasted
        lam = (own - values.flip(0)) / (values - values.flip(0))
        pairs = values != values.flip(0)  # the middle image of an odd batch is its own partner
        smooth = mix.soft_targets(y)
        expected = smooth * lam.view(-1, 1) + smooth.flip(0) * (1 - lam.view(-1, 1))
        assert torch.allclose(targets[pairs], expected[pairs], atol=1e-5)
        assert torch.allclose(targets[~pairs], smooth[~pairs])
    assert x.mean() == values.mean()  # the input batch is left as it was


def test_mixing_is_off_from_the_declared_epoch_and_replays_per_seed():
    mix = BatchMix(0.4, 0.0, prob=1.0, num_classes=3, smoothing=0.0)
    state, switch = tiny_state(), MixBatches(mix, off_epoch=3)  # 1-based: epochs 1 and 2 mix
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    seen = []
    for epoch in range(4):
        state.epoch = epoch
        switch.before_epoch(state)
        _, targets = mix(x, y)
        seen.append(targets.is_floating_point())
    assert seen == [True, True, False, False]
    state.epoch = 0  # a resumed run at an early epoch mixes again
    switch.before_epoch(state)
    assert mix.active
    np.random.seed(5)
    first = mix(x, y)
    np.random.seed(5)
    again = mix(x, y)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    half = BatchMix(0.4, 0.0, prob=0.5, num_classes=3, smoothing=0.0)
    np.random.seed(0)
    share = np.mean([half(x, y)[1].is_floating_point() for _ in range(400)])
    assert 0.4 < share < 0.6


def test_averaged_weights_equal_the_mean_of_the_saved_per_epoch_weights():
    from torch.optim.swa_utils import AveragedModel

    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.training.hooks.averaging import WeightAveraging

    torch.manual_seed(0)
    state = tiny_state()
    state.swa = AveragedModel(state.model)
    hook, saved = WeightAveraging(Recipe(epochs=5, swa_epochs=3)), []
    for epoch in range(5):
        state.epoch = epoch
        with torch.no_grad():  # what an epoch of training leaves: new weights
            for param in state.model.parameters():
                param.copy_(torch.randn_like(param))
        saved.append({k: v.clone() for k, v in state.model.state_dict().items()})
        hook.after_epoch(state, None)
    averaged = state.swa.module.state_dict()
    for key in averaged:
        assert torch.allclose(averaged[key], torch.stack([s[key] for s in saved[2:]]).mean(0), atol=1e-6)
    assert int(state.swa.n_averaged) == 3
    # last.pt's copy of the average comes back whole: a resumed run goes on averaging from it
    copy = AveragedModel(torch.nn.Linear(2, 2))
    copy.load_state_dict({k: v.detach().cpu() for k, v in state.swa.state_dict().items()})
    assert int(copy.n_averaged) == 3 and torch.equal(copy.module.weight, state.swa.module.weight)


def test_a_real_train_with_the_levers_writes_swa_pt_and_resumes_exactly(tiny_cifar, tmp_path):
    """One tiny run with mixup/CutMix (off from epoch 3), accumulation and SWA over the last two epochs."""
    import shutil

    from helpers import assert_one_line_error, run_cli

    out, data = tmp_path / "run", tiny_cifar
    levers = ["--mixup-alpha", "0.4", "--cutmix-alpha", "1.0", "--mix-off-epoch", "3", "--accum-steps", "2"]
    args = [*TINY_TRAIN, "--epochs", "3", "--swa-epochs", "2", "--lr", "0.05", *levers, "--aug", "policy", "--gpu-data"]
    result = run_cli("train", "cifar10", "--data-dir", data, "--out", out, *args, env={"KAGGLE_KIT_PROGRESS": "1"})
    assert result.returncode == 0, result.stderr
    assert "swa.pt: weights of epochs 2-3 averaged, BatchNorm statistics recomputed" in result.stderr
    assert "epoch 1:" in result.stderr and "| effective batch 64" in result.stderr
    # the policy and erasing exist in the Albumentations pipeline alone: the forced GPU-resident path gives way
    assert "note: augmentation 'policy' has policy_ops and erasing" in result.stderr
    assert "DataLoader" in RunDir(out).read_config().data_path
    run = RunDir(out)
    assert run.read_config().effective_batch == 64
    history = run.load_checkpoint("last")["train_state"]["history"]
    assert [row["mixed"] for row in history] == [1.0, 1.0, 0.0]  # mixing is off from epoch 3

    swa = run.load_checkpoint("swa")
    # last.pt holds epoch 3's weights, the copy it replaced (last.prev.pt) epoch 2's
    third = run.load_checkpoint("last")["train_state"]["model"]
    second = torch.load(out / "last.prev.pt", weights_only=True)["train_state"]["model"]
    assert swa["averaged_epochs"] == 2 and swa["epoch"] == 2
    stats = ("running_mean", "running_var", "num_batches_tracked")
    weights = [k for k in third if not k.endswith(stats)]
    assert weights and all(torch.allclose(swa["model"][k], (second[k] + third[k]) / 2, atol=1e-6) for k in weights)
    variances = [k for k in third if k.endswith("running_var")]
    assert variances and not any(torch.equal(swa["model"][k], third[k]) for k in variances)  # measured anew
    predicted = run_cli("predict", out, "--checkpoint", "swa", "--out", tmp_path / "swa.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert "swa.pt" in predicted.stdout and (tmp_path / "swa.csv").is_file()

    # killed after epoch 2: last.pt is the one before; the resume replays epoch 3, its mixing and its average
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    (killed / "last.prev.pt").replace(killed / "last.pt")
    (killed / "swa.pt").unlink()
    history_csv = killed / "history.csv"
    history_csv.write_text("".join(history_csv.read_text().splitlines(keepends=True)[:3]))  # header, epochs 1-2
    resumed = run_cli("train", "--resume", killed)
    assert resumed.returncode == 0, resumed.stderr
    again = RunDir(killed)
    assert all(torch.equal(v, again.load_checkpoint("last")["model"][k]) for k, v in third.items())
    assert all(torch.equal(v, again.load_checkpoint("swa")["model"][k]) for k, v in swa["model"].items())

    refused = run_cli("train", "cifar10", "--data-dir", data, "--out", tmp_path / "bad", *TINY_TRAIN, "--mix-prob", "0")
    assert_one_line_error(refused, "invalid setting mix_prob=0", "(0, 1]")


class NoBar:
    def advance(self, steps, postfix=""):
        pass


def one_epoch(batches, accum_steps: int, seed: int = 0) -> torch.nn.Module:
    """A tiny BatchNorm-free model (BatchNorm sees each batch alone, so it could not match) after one epoch of
    the trainer's own `train_one_epoch` (with the accumulation hook `fit` adds), in float64 on the CPU."""
    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.training.epoch import EpochOutcome, train_one_epoch
    from kaggle_kit.training.hooks.accumulation import Accumulation

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model = model.double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    recipe = Recipe(batch_size=len(batches[0][1]), accum_steps=accum_steps, grad_clip=1.0, label_smoothing=0.1)
    state = TrainState(model, model, optimizer, scheduler, scaler)
    hooks = [Accumulation(accum_steps, recipe.batch_size)] if accum_steps > 1 else []
    row = train_one_epoch(state, batches, (torch.device("cpu"), None, False), recipe, NoBar(), hooks)
    for hook in hooks:
        hook.after_epoch(state, EpochOutcome(row, False, False))
    return model, scheduler, row


def test_accumulating_two_batches_of_b_steps_like_one_batch_of_2b():
    torch.manual_seed(1)
    x, y = torch.randn(16, 3, 2, 2, dtype=torch.float64), torch.randint(0, 3, (16,))
    whole = [(x[:8], y[:8]), (x[8:], y[8:])]  # two updates at batch 8
    halves = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4)]  # batch 4, two batches per update
    big, big_schedule, _ = one_epoch(whole, accum_steps=1)
    accumulated, schedule, row = one_epoch(halves, accum_steps=2)
    for a, b in zip(big.parameters(), accumulated.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert schedule.last_epoch == big_schedule.last_epoch == 2  # the schedule moves per update, not per batch
    assert row["effective_batch"] == 8
    # an odd count: the last group of one batch is its own update, its loss not halved
    odd, odd_schedule, _ = one_epoch(halves[:3], accum_steps=2)
    reference, _, _ = one_epoch([(x[:8], y[:8]), (x[8:12], y[8:12])], accum_steps=1)
    assert odd_schedule.last_epoch == 2
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(odd.parameters(), reference.parameters()))


def test_accumulation_gives_way_before_the_batch_on_small_data():
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.resolution import resolve_recipe
    from kaggle_kit.config.recipe import Recipe

    comp = resolve("cifar10")
    asked = comp.recipe("fast").replace(batch_size=64, accum_steps=4, lr=0.2, lr_scaling="linear")
    res = resolve_recipe(comp, asked, {"batch_size", "accum_steps"}, n_train=100_000)
    assert (res.recipe.batch_size, res.recipe.accum_steps, res.recipe.lr) == (64, 4, 0.2)  # enough steps: kept
    res = resolve_recipe(comp, asked, {"batch_size"}, n_train=1600)  # 6 steps at 256: 64 wanted, one batch
    assert (res.recipe.batch_size, res.recipe.accum_steps) == (64, 1)
    assert res.recipe.lr == pytest.approx(0.2 * 64 / 256)
    assert "accum_steps" in res.derived and "batch_size" not in res.derived
    # accumulation given on tiny data: kept, the batch shrinks, and the one update an epoch is said
    res = resolve_recipe(comp, comp.recipe("fast").replace(accum_steps=8), {"accum_steps"}, n_train=108)
    assert (res.recipe.batch_size, res.recipe.accum_steps) == (16, 8)
    assert "1 at 16 x 8 steps" in res.derived["batch_size"]["why"]
    assert any("give 1 optimizer steps" in w and "--accum-steps 1 would give 6" in w for w in res.warnings)
    assert Recipe(accum_steps=2).validate().accum_steps == 2


@pytest.mark.parametrize("freeze", [False, True])
def test_layer_decay_groups_lrs_decay_by_layer_and_keep_a_frozen_backbone(freeze):
    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.models import factory as models
    from kaggle_kit.training.hooks.unfreeze import Unfreeze
    from kaggle_kit.training.schedules import build_scheduler
    from kaggle_kit.training.setup import build_optimizer

    recipe = Recipe(arch="resnet18", layer_decay=0.5, lr=0.1, freeze=freeze, unfreeze_after=1, epochs=4)
    model = models.build_model(recipe, num_classes=5)
    models.set_backbone_frozen(model, freeze)
    optimizer = build_optimizer(model, recipe, torch.device("cpu"))
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert sorted(group_of) == sorted(id(p) for p in model.parameters())  # every one, frozen ones too, once
    # resnet18 in timm's grouping: stem, the blocks of layer1..layer4, head - lr halves at each step down
    rates = sorted({g["lr"] for g in optimizer.param_groups}, reverse=True)
    assert rates[0] == 0.1 and all(b == pytest.approx(a * 0.5) for a, b in zip(rates, rates[1:]))
    assert len(rates) >= 5
    assert {group_of[id(p)]["lr"] for p in models.head_parameters(model)} == {0.1}
    assert group_of[id(model.conv1.weight)]["lr"] == pytest.approx(rates[-1])
    assert group_of[id(model.layer1[0].conv1.weight)]["lr"] < group_of[id(model.layer4[0].conv1.weight)]["lr"]
    assert group_of[id(model.bn1.weight)]["weight_decay"] == 0 and group_of[id(model.conv1.weight)]["weight_decay"]
    assert all(p.requires_grad != freeze for p in models.backbone_parameters(model))  # the freeze is kept
    scheduler = build_scheduler(optimizer, recipe.replace(schedule="cosine"), steps_per_epoch=2)
    for _ in range(3):
        optimizer.step()  # no gradients: nothing moves, but the schedule is stepped in the trainer's order
        scheduler.step()
    after = sorted({g["lr"] for g in optimizer.param_groups}, reverse=True)
    assert all(b / a == pytest.approx(0.5) for a, b in zip(after, after[1:]))  # the schedule scales all alike
    state = tiny_state()
    state.model, state.epoch = model, 1
    Unfreeze(recipe, torch.device("cpu")).before_epoch(state)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen: already in the optimizer, decayed


def test_policy_and_erasing_change_images_deterministically_per_seed():
    from kaggle_kit.config.recipe import AugmentSpec
    from kaggle_kit.core.errors import KitError
    from kaggle_kit.data.augment import POLICY_OPS, build_train_transform

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)

    def outputs(spec, seed, n=6):
        transform = build_train_transform(spec, 32, mean, std, seed=seed)
        return [transform(image=image)["image"] for _ in range(n)]

    plain = outputs(AugmentSpec(), 0)[0]
    policy = AugmentSpec(policy_ops=2, policy_magnitude=1.0)
    erasing = AugmentSpec(erasing=1.0)
    for spec in (policy, erasing):
        first, again, other = outputs(spec, 1), outputs(spec, 1), outputs(spec, 2)
        assert all(torch.equal(a, b) for a, b in zip(first, again))  # the same seed, the same images
        assert any(not torch.equal(a, b) for a, b in zip(first, other))  # another seed, others
        assert sum(not torch.equal(a, plain) for a in first) >= 4  # most images changed
    # erasing fills a box with the mean: zero in every channel once normalised, unlike the random image
    erased = outputs(erasing, 3)
    assert all(((e == 0).all(0).float().mean() >= 0.02 - 1e-6) for e in erased)
    assert ((plain == 0).all(0).float().mean()) < 0.01
    import albumentations as A

    drawn = [t for t in build_train_transform(policy, 32, mean, std, seed=0).transforms if isinstance(t, A.SomeOf)]
    assert len(drawn) == 1 and drawn[0].n == 2 and len(drawn[0].transforms) == len(POLICY_OPS)
    with pytest.raises(KitError, match="invalid augmentation setting policy_magnitude=0"):
        build_train_transform(AugmentSpec(policy_ops=1, policy_magnitude=0), 32, mean, std)
