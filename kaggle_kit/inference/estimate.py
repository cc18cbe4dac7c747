"""How long a code competition's notebook will take: the run's exact inference measured here, scaled to the
hidden test set and set against the competition's time limit.

Measured, not modelled: every member (a run, each fold of a group) streams a slice of the real test images with
its own TTA views, image size, batch and engine, after a warm-up batch, and the images per second of that pass
give the seconds each hidden image costs. Loading a member (its checkpoint, its engine) is timed and added once.
The notebook also pays, before its first batch, a fresh interpreter's imports (torch, kaggle-kit, onnxruntime for
that engine: measured here in a child interpreter) and the decoding of every hidden test image into the cache
(a sample of the local test images decoded as the cache decodes them, spread over the same processes); both are
in the estimate, which the notebook's measured wall time showed it needs (benchmarks/bench_notebook.py). Not in it:
the notebook's pip install of the dataset's wheels (seconds) and Kaggle's own queue.
Where predict splits the test set across devices (both of a notebook's T4s, `sharding`), the probe runs through that
same split, every device warmed and given at least a batch, so the figure is the devices' joint throughput.
The figure is for this machine; a Kaggle notebook (2 x T4, or 4 CPU cores) differs, which is why a warning starts
at half the limit rather than at the limit.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import KitError
from ..data.cache import decode_seconds, load_images
from .calibration import current_calibration
from .engines import batch_choice, load_for_inference
from .loading import open_run_layout, tabular_rows
from .predict import decide_tta
from .sharding import inference_devices, replicate, sharded_logits
from .streaming import IDENTITY, tta_views

KAGGLE_USUAL_LIMIT_HOURS = 9.0  # Code Requirements pages: CPU <= 9 h and GPU <= 9 h is the common limit
WARN_WITHIN = 2.0  # warn when the estimate is within this factor of the limit
PROBE_IMAGES = 256


@dataclass
class MemberSpeed:
    name: str
    views: int
    images_per_s: float
    load_seconds: float
    engine: str


@dataclass
class RuntimeEstimate:
    images: int
    images_source: str  # "declared", "--test-images" or "the local test set"
    limit_hours: float
    limit_declared: bool
    device: str
    members: list[MemberSpeed] = field(default_factory=list)
    startup_seconds: float = 0.0  # a fresh interpreter importing what the notebook imports before predicting
    decode_per_image: float | None = None  # seconds the test cache's build costs per image (None: not measured)

    @property
    def seconds(self) -> float:
        per_image = sum(1.0 / max(m.images_per_s, 1e-9) for m in self.members) + (self.decode_per_image or 0.0)
        return self.startup_seconds + self.images * per_image + sum(m.load_seconds for m in self.members)

    @property
    def too_close(self) -> bool:
        return self.seconds * WARN_WITHIN >= self.limit_hours * 3600

    def lines(self) -> list[str]:
        speeds = ", ".join(
            f"{m.name} {m.images_per_s:,.0f} img/s ({m.views} view{'s' if m.views > 1 else ''}, {m.engine})"
            for m in self.members
        )
        limit = f"limit {self.limit_hours:g} h" + ("" if self.limit_declared else " (Kaggle's usual; not declared)")
        decoding = "not measured (a 7z archive)"
        if self.decode_per_image is not None:
            decoding = f"{self.decode_per_image * 1e3:.1f} ms per test image into the cache"
        split = self.device.count(",") + 1
        where = f"{self.device}: the test set split across {split} devices" if split > 1 else self.device
        lines = [
            f"runtime estimate on this machine ({where}): {_duration(self.seconds)} for {self.images:,} test "
            f"images ({self.images_source}); {limit}",
            f"  measured: {speeds}",
            f"  and: start-up {self.startup_seconds:.1f} s (a fresh interpreter's imports), decoding {decoding}",
        ]
        if self.too_close:
            lines.append(
                f"warning: the estimate is within {WARN_WITHIN:g}x of the {self.limit_hours:g} h limit: a slower "
                "Kaggle machine may time out and score nothing; predict with fewer TTA views, a smaller image "
                "size, fewer folds, or --engine onnx on a CPU notebook"
            )
        return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def measure_member(run_dir: Path | str, data_dir=None, *, device="auto", engine="torch", batch_size=None, devices=None):
    """One member's images per second on a slice of the real test set, with the views its predict submits, split
    across the devices predict would use."""
    started = time.perf_counter()
    on = inference_devices(devices, device)
    loaded, choice = load_for_inference(run_dir, "best", str(on[0]), engine)
    replicas = replicate(loaded, choice, on)
    layout = open_run_layout(loaded, data_dir)
    load_seconds = time.perf_counter() - started
    use_tta, _ = decide_tta(loaded, None, current_calibration(loaded))
    views = tta_views(loaded.competition, loaded.recipe) if use_tta else (IDENTITY,)
    cache = load_images(layout, "test", loaded.recipe.cache_side, skip_bad=True)
    if len(cache) == 0:
        raise KitError(f"{layout.root} has no test images to measure inference on")
    batch, _ = batch_choice(loaded, batch_size, len(views))  # the batch predict streams in
    warm = np.arange(min(batch * len(on), len(cache)))  # a batch for each device
    probe = np.arange(min(max(PROBE_IMAGES, 2 * batch * len(on)), len(cache)))
    common = (loaded.recipe, loaded.mean, loaded.std, views, batch)
    rows = tabular_rows(loaded, layout, "test", cache.ids)
    warm_rows, probe_rows = (None, None) if rows is None else (rows[warm], rows[probe])
    sharded_logits(replicas, cache, warm, *common, description="warming up", rows=warm_rows)
    speed = sharded_logits(replicas, cache, probe, *common, description="measuring", rows=probe_rows).images_per_s
    member = MemberSpeed(loaded.run.name, len(views), speed, load_seconds, choice.name)
    decoding = decode_seconds(layout, "test", loaded.recipe.cache_side)
    return member, loaded.competition, len(layout.test.ids), ",".join(str(d) for d in on), decoding


@functools.cache
def startup_seconds(engine: str) -> float:
    """A fresh interpreter importing what the packaged notebook imports before its first batch (once a process:
    it costs what it measures)."""
    modules = "import kaggle_kit.inference.predict, safetensors.torch" + (", onnxruntime" if engine == "onnx" else "")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", modules], capture_output=True, text=True)
    if done.returncode != 0:
        raise KitError(f"a fresh interpreter could not import kaggle-kit: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def estimate_runtime(
    run_dirs: list[Path | str],
    data_dir=None,
    *,
    test_images: int | None = None,
    device: str = "auto",
    engine: str = "torch",
    batch_size: int | None = None,
    devices=None,
) -> RuntimeEstimate:
    """The expected wall time of predicting the hidden test set with every member of `run_dirs`, split across
    `devices` (default: every visible GPU, as predict and the packaged notebook split it)."""
    members, comp, local, where, decoding = [], None, 0, "cpu", None
    for run_dir in run_dirs:
        member, comp, local, where, decoding = measure_member(
            run_dir, data_dir, device=device, engine=engine, batch_size=batch_size, devices=devices
        )
        members.append(member)
    if test_images is not None:
        images, source = test_images, "--test-images"
    elif comp.hidden_test_images:
        images, source = comp.hidden_test_images, "declared hidden_test_images"
    else:
        images, source = local, "the local test set"
    limit = comp.time_limit_hours or KAGGLE_USUAL_LIMIT_HOURS
    estimate = RuntimeEstimate(images, source, limit, comp.time_limit_hours is not None, where, members)
    estimate.startup_seconds, estimate.decode_per_image = startup_seconds(engine), decoding
    return estimate
