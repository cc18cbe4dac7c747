"""kaggle-kit: train, predict and submit for Kaggle image-classification competitions.

`import kaggle_kit as kk` gives the Python API: `kk.train`, `kk.predict`, `kk.score`, `kk.runs()` and the rest
(see `kk.__all__`), each imported on first use so that importing the package stays cheap (no torch).
"""

import importlib
import os

__version__ = "0.1.0"

# OpenCV prints its own warnings for every broken image; kaggle-kit reports those files itself, in one line.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
# albumentations checks for updates over the network at import time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# public name -> the kaggle_kit.api module defining it
_CALLS = {
    "train": "training",
    "predict": "inference",
    "score": "inference",
    "validate": "inference",
    "analyze": "inference",
    "ensemble": "inference",
    "submit": "remote",
    "download": "remote",
    "package": "remote",
    "push": "remote",
    "init": "competitions",
    "sample": "competitions",
    "lr_find": "tuning",
    "tune": "tuning",
    "experiment": "study",
    "runs": "study",
    "Run": "results",
    "FoldGroup": "results",
    "Submission": "results",
    "Hook": "hooks",
}

__all__ = sorted(_CALLS)


def __getattr__(name: str):
    if name not in _CALLS:
        raise AttributeError(f"module 'kaggle_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kaggle_kit.api.{_CALLS[name]}"), name)
    if not isinstance(value, type):  # a call shows its progress bars; the commands call the plain function
        value = importlib.import_module("kaggle_kit.api.console").with_progress(value)
    globals()[name] = value  # found once: later uses skip this function
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
