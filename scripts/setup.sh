#!/usr/bin/env bash
# Create .venv and install kaggle-kit with its test tools. Idempotent: a second run only checks.
# torch and torchvision are pinned so the installer takes the known-good build (served locally where a
# mirror exists) instead of resolving the newest multi-gigabyte CUDA release.
# uv installs the same pinned set as pip in a third of the time (it unpacks the CUDA wheels in parallel);
# pip is the fallback where uv cannot be installed. Both byte-compile: with PYTHONDONTWRITEBYTECODE set, as on
# some machines, an uncompiled torch costs every later import 15 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
quiet_pip() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
packages=("torch==2.14.1" "torchvision==0.29.1" -e ".[dev]")
if quiet_pip .venv/bin/python -m pip install -q uv && [ -x .venv/bin/uv ]; then
  .venv/bin/uv pip install -q --python .venv/bin/python --compile-bytecode "${packages[@]}"
else
  quiet_pip .venv/bin/python -m pip install -q "${packages[@]}"
fi
.venv/bin/python -c "import kaggle_kit, torch, timm, albumentations, cv2, py7zr, kagglesdk; print('kaggle-kit ready: torch', torch.__version__)"
