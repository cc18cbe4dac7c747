#!/usr/bin/env bash
# Create .venv and install kaggle-kit with its test tools. Idempotent: a second run only checks.
# torch and torchvision are pinned first so pip takes the known-good build (served locally where a
# mirror exists) instead of resolving the newest multi-gigabyte CUDA release.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | { grep -v "^WARNING: Location" || true; }
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | { grep -v "^WARNING: Location" || true; }
.venv/bin/python -c "import kaggle_kit, torch, timm, albumentations, cv2, py7zr, kagglesdk; print('kaggle-kit ready: torch', torch.__version__)"
