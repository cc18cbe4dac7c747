"""kaggle-kit: train, predict and submit for Kaggle image-classification competitions."""

__version__ = "0.1.0"
