"""Dog Breed Identification (https://www.kaggle.com/competitions/dog-breed-identification)."""

from pathlib import Path

from kaggle_kit.competition import Competition
from kaggle_kit.metrics import LOG_LOSS
from kaggle_kit.recipe import AugmentSpec, Recipe

from .breeds import BREEDS

AUGMENTATIONS = {
    "none": AugmentSpec(),
    # the study: random resized crop over 0.64-1 of the area (aspect 3/4-4/3), brightness/contrast/saturation, noise
    "paper": AugmentSpec(
        crop_scale=(0.64, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        noise_std=(0.01, 0.05),
    ),
    "modern": AugmentSpec(
        crop_scale=(0.25, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        hflip=True,
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
    ),
    # modern + a RandAugment-style policy and random erasing (Albumentations workers only; see kaggle_kit/augment.py)
    "policy": AugmentSpec(
        crop_scale=(0.25, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        hflip=True,
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
        policy_ops=2,
        policy_magnitude=0.5,
        erasing=0.25,
    ),
}

# Dive into Deep Learning's fine-tuning: frozen pretrained backbone, Linear(1000,256)-ReLU-Linear(256,120)
# head in the study; summed-loss lr 1e-4 at batch 128 is mean-loss lr 0.0128.
PAPER = Recipe(
    name="paper",
    arch="resnet34",
    pretrained=True,
    freeze=True,
    head="mlp",
    head_hidden=256,
    img_size=224,
    eval_resize=256,
    aug="paper",
    epochs=10,
    batch_size=128,
    optimizer="sgd",
    lr=0.0128,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="step",
    step_period=2,
    step_gamma=0.9,
    tta="off",
)

# Head first, then the whole network at a gentle rate; log loss is then calibrated at predict time.
BEST = Recipe(
    name="best",
    arch="resnet34",
    pretrained=True,
    freeze=True,
    unfreeze_after=2,
    head="linear",
    img_size=224,
    eval_resize=256,
    aug="modern",
    epochs=10,
    batch_size=64,
    optimizer="sgd",
    lr=0.01,
    momentum=0.9,
    nesterov=True,
    weight_decay=1e-4,
    schedule="cosine",
    warmup_epochs=1,
    tta="auto",
)

# Without pretrained weights both recipes would fine-tune a random network: a from-scratch rate (ten times the
# fine-tuning one, as the bare from-scratch loop uses) and the study's milder crops (0.64-1 of the area; modern's
# 0.25 are too strong for ten epochs from scratch). Freezing is dropped by the resolver, not here.
FROM_SCRATCH = {
    "best": {"lr": 0.1, "weight_decay": 5e-4, "aug": "paper"},
    "paper": {"lr": 0.1, "weight_decay": 5e-4, "schedule": "cosine"},
}

COMPETITION = Competition(
    name="dog_breed",
    slug="dog-breed-identification",
    title="Dog Breed Identification",
    aliases=("dog_breed", "dog-breed", "dogs", "dog-breed-identification"),
    label_file="labels.csv",
    label_column="breed",
    sample_file="sample_submission.csv",
    id_kind="hex",
    image_ext=".jpg",
    metric=LOG_LOSS,
    submission_kind="probabilities",
    class_source="sample_columns",
    declared_classes=BREEDS,
    recipes={"best": BEST, "paper": PAPER},
    default_recipe="best",
    from_scratch=FROM_SCRATCH,
    augmentations=AUGMENTATIONS,
    nested_archives={
        "train.zip": "train",
        "test.zip": "test",
        "labels.csv.zip": "labels.csv",
        "sample_submission.csv.zip": "sample_submission.csv",
    },
    package_dir=Path(__file__).parent,
)
