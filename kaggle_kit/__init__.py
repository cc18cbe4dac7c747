"""kaggle-kit: train, predict and submit for Kaggle image-classification competitions."""

import os

__version__ = "0.1.0"

# OpenCV prints its own warnings for every broken image; kaggle-kit reports those files itself, in one line.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
# albumentations checks for updates over the network at import time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
