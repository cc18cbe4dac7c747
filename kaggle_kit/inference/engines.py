"""Inference engines: the run's model in PyTorch eager, or exported once to ONNX and run in ONNX Runtime.

Both engines take the same normalised NCHW float batches: the cache, the evaluation transform and the TTA views
stay in torch (`streaming`), so an engine changes only who computes the logits and no second preprocessing path
can drift from the trainer's. The ONNX model is a `torch.nn.Module` (`OnnxModel`) standing in for the network, so
calibration, fold groups, ensembles and pseudo-labels predict through it unchanged.

The export is cached in the run folder (`onnx/<checkpoint>-<weights digest>-<size>px.onnx`: a new checkpoint or
input size exports again) and checked against torch on a batch before use: probabilities within 1e-4.
`auto` measures both engines on a few batches of the device once and records the faster in `engines.json`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..competitions.metrics import softmax
from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.errors import KitError
from .loading import LoadedRun, load_run

ENGINES = ("torch", "onnx", "auto")
EXPORT_TOLERANCE = 1e-4  # the largest probability difference an export may show against torch
CHECK_BATCH = 8
OPSET = 17
ENGINES_FILE = "engines.json"
INSTALL_HINT = "pip install onnxruntime (GPU: onnxruntime-gpu), or use --engine torch"


class OnnxRuntimeMissing(KitError):
    """`--engine onnx` where onnxruntime cannot be imported."""


@dataclass(frozen=True)
class EngineChoice:
    """The engine a prediction ran on, and why (a fallback or a measurement is said in `note`)."""

    name: str  # "torch" or "onnx"
    note: str | None = None
    onnx_path: Path | None = None


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session behind the module interface streaming calls: NCHW float in, logits out."""

    def __init__(self, session: Any, device: torch.device):
        super().__init__()
        self.session, self.device = session, device
        self.input_name = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())  # channels_last batches come back NCHW
        logits = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(logits).to(x.device)


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of the weights themselves (not of a file: a torn newest checkpoint falls back to its copy)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def onnx_file(loaded: LoadedRun) -> Path:
    size = loaded.recipe.img_size
    return loaded.run.file("onnx") / f"{loaded.checkpoint}-{weights_digest(loaded.model)}-{size}px.onnx"


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _export_bytes(model: torch.nn.Module, size: int) -> bytes:
    example = torch.zeros(1, 3, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is not the user's to act on
        torch.onnx.export(
            model, example, buffer, input_names=["images"], output_names=["logits"], opset_version=OPSET,
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def _session(ort, model_bytes_or_path, device: torch.device):
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are noise to a competitor
    source = str(model_bytes_or_path) if isinstance(model_bytes_or_path, Path) else model_bytes_or_path
    return ort.InferenceSession(source, options, providers=providers)


def _largest_difference(model: torch.nn.Module, session, size: int) -> float:
    batch = torch.from_numpy(np.random.default_rng(0).normal(size=(CHECK_BATCH, 3, size, size)).astype(np.float32))
    with torch.inference_mode():
        expected = model(batch).float().numpy()
    got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    # softmax of one output is 1 whatever it is: a value's or a label set's outputs are checked through a sigmoid
    sigmoid = np.abs(1 / (1 + np.exp(-expected.astype(np.float64))) - 1 / (1 + np.exp(-got.astype(np.float64))))
    return float(max(np.abs(softmax(expected, 1.0) - softmax(got, 1.0)).max(), sigmoid.max()))


def export_onnx(loaded: LoadedRun) -> Path:
    """The run's ONNX model for its checkpoint and input size: exported once, checked, cached in the run folder.
    Raises KitError when onnxruntime is missing, the architecture does not export, or the check fails."""
    ort = _import_onnxruntime()
    if ort is None:
        raise OnnxRuntimeMissing(f"onnxruntime is not installed: {INSTALL_HINT}")
    path = onnx_file(loaded)
    if path.is_file():
        return path
    size = loaded.recipe.img_size
    model = copy.deepcopy(loaded.model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    try:
        data = _export_bytes(model, size)
    except Exception as error:  # any exporter failure is the architecture's, and torch still predicts
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise KitError(f"{loaded.recipe.arch} does not export to ONNX ({first})") from None
    difference = _largest_difference(model, _session(ort, data, torch.device("cpu")), size)
    if difference > EXPORT_TOLERANCE:
        raise KitError(
            f"the ONNX export of {loaded.recipe.arch} differs from torch by {difference:.2e} in probability "
            f"(more than {EXPORT_TOLERANCE:g})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def with_onnx(loaded: LoadedRun, path: Path) -> LoadedRun:
    """`loaded` predicting through ONNX Runtime (fp32: autocast does not reach the session)."""
    session = _session(_import_onnxruntime(), path, loaded.device)
    return replace(loaded, model=OnnxModel(session, loaded.device))


def use_engine(loaded: LoadedRun, engine: str) -> tuple[LoadedRun, EngineChoice]:
    """`loaded` on the asked engine. `onnx` falls back to torch with a note when the architecture does not export;
    `auto` takes the faster of the two on this device, measured once and remembered in the run folder."""
    if engine not in ENGINES:
        raise KitError(f"unknown engine {engine!r}: use --engine torch, onnx or auto")
    if engine == "torch":
        return loaded, EngineChoice("torch")
    if getattr(loaded.model, "tabular_width", 0):  # the ONNX export feeds images alone
        return loaded, EngineChoice("torch", f"engine {engine}: a model with tabular columns predicts with torch")
    if engine == "auto" and _import_onnxruntime() is None:
        return loaded, EngineChoice("torch", "engine auto: onnxruntime is not installed, so torch predicts")
    try:
        path = export_onnx(loaded)
    except OnnxRuntimeMissing:
        raise
    except KitError as error:
        return loaded, EngineChoice("torch", f"{error}: torch predicts instead")
    onnx_loaded = with_onnx(loaded, path)
    if engine == "onnx":
        return onnx_loaded, EngineChoice("onnx", onnx_path=path)
    return _faster(loaded, onnx_loaded, path)


def load_for_inference(
    run_dir: Path | str,
    checkpoint: str = "best",
    device: str = "auto",
    engine: str = "torch",
    precision: str | None = None,
) -> tuple[LoadedRun, EngineChoice]:
    """`load_run` with the engine and, where given, the autocast precision that override the recipe's."""
    loaded = load_run(run_dir, checkpoint, device)
    if precision is not None:
        loaded = replace(loaded, recipe=loaded.recipe.replace(precision=precision).validate())
    return use_engine(loaded, engine)


def _images_per_s(model: torch.nn.Module, batch: torch.Tensor, repeats: int = 3) -> float:
    with torch.inference_mode():
        model(batch)  # warm-up: allocations, cuDNN's choice, ONNX Runtime's first run
        started = time.perf_counter()
        for _ in range(repeats):
            model(batch)
        if batch.device.type == "cuda":
            torch.cuda.synchronize(batch.device)
    return repeats * len(batch) / max(time.perf_counter() - started, 1e-9)


def _faster(torch_loaded: LoadedRun, onnx_loaded: LoadedRun, path: Path) -> tuple[LoadedRun, EngineChoice]:
    record_path = torch_loaded.run.file(ENGINES_FILE)
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    key = f"{torch_loaded.device}|{path.name}"
    if key not in records:
        size = torch_loaded.recipe.img_size
        batch = torch.zeros(torch_loaded.recipe.batch_size, 3, size, size, device=torch_loaded.device)
        speeds = {"torch": _images_per_s(torch_loaded.model, batch), "onnx": _images_per_s(onnx_loaded.model, batch)}
        records[key] = {**{k: round(v, 1) for k, v in speeds.items()}, "batch": len(batch)}
        records[key]["chosen"] = max(speeds, key=speeds.get)
        atomic_write_text(record_path, json.dumps(records, indent=2, sort_keys=True))
    record = records[key]
    note = (
        f"engine auto: {record['chosen']} ({record['onnx']:.0f} img/s onnx vs {record['torch']:.0f} torch on "
        f"{torch_loaded.device}, measured once, {ENGINES_FILE})"
    )
    chosen = onnx_loaded if record["chosen"] == "onnx" else torch_loaded
    return chosen, EngineChoice(record["chosen"], note, path if record["chosen"] == "onnx" else None)


GPU_BATCH_CEILING = 2048
# a CPU runs a batch's convolutions across its cores: enough images per core keeps each one busy, while a larger
# batch only adds memory (every activation times the batch) and cache misses, not throughput
CPU_IMAGES_PER_CORE = 32
CPU_BATCH_CEILING = 256


def largest_fitting_batch(fits, ceiling: int = GPU_BATCH_CEILING) -> int:
    """The largest power of two up to `ceiling` for which `fits(batch)` is True (1 when none is)."""
    batch = ceiling
    while batch > 1 and not fits(batch):
        batch //= 2
    return batch


def cpu_batch_size(cores: int) -> int:
    """The largest power of two up to CPU_IMAGES_PER_CORE images per core (at most CPU_BATCH_CEILING)."""
    return largest_fitting_batch(lambda batch: batch <= CPU_IMAGES_PER_CORE * max(cores, 1), CPU_BATCH_CEILING)


def batch_choice(loaded: LoadedRun, given: int | None, views: int = 1) -> tuple[int, str]:
    """The batch predict streams in, and why: `given` (--batch-size), else the GPU's memory probe, else the cores
    torch computes on."""
    if given:
        return given, "--batch-size"
    if loaded.device.type == "cuda":
        return inference_batch_size(loaded, views), f"free memory, probed once ({ENGINES_FILE})"
    cores = torch.get_num_threads()
    return cpu_batch_size(cores), f"{cores} CPU core{'s' if cores > 1 else ''} x {CPU_IMAGES_PER_CORE} images"


def inference_batch_size(loaded: LoadedRun, views: int = 1) -> int:
    """On a GPU: the largest power of two whose forward pass (all views of a batch stay in memory at once) fits
    in free memory, probed once per run, device and input size and remembered in engines.json. On a CPU: from the
    cores torch computes on (`cpu_batch_size`)."""
    if loaded.device.type != "cuda":
        return cpu_batch_size(torch.get_num_threads())
    record_path = loaded.run.file(ENGINES_FILE)
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    size = loaded.recipe.img_size
    key = f"batch|{torch.cuda.get_device_name(loaded.device)}|{size}px|{views} views"
    if key not in records:

        def fits(batch: int) -> bool:
            try:
                with torch.inference_mode(), torch.autocast("cuda", enabled=loaded.recipe.amp):
                    x = torch.zeros(batch, 3, size, size, device=loaded.device)
                    outputs = [loaded.model(x) for _ in range(min(views, 2))]
                torch.cuda.synchronize(loaded.device)
                del x, outputs
                return True
            except torch.cuda.OutOfMemoryError:
                return False
            finally:
                torch.cuda.empty_cache()

        records[key] = largest_fitting_batch(fits)
        atomic_write_text(record_path, json.dumps(records, indent=2, sort_keys=True))
    return int(records[key])
