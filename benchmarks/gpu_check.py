"""One GPU check: training, data-bound ratios, prediction and the demo loop on a lent card, against issue 20's targets.

To run on a lent card (one H200: about 4-6 minutes), from the repository root; it writes the JSON
and, beside it, its plot (benchmarks/results/h200/gpu_check.png, `plot.py`):

    .venv/bin/python benchmarks/gpu_check.py --json benchmarks/results/h200/gpu_check.json --plot

    .venv/bin/python benchmarks/gpu_check.py --quick --json /tmp/cpu.json      # CPU smoke run of the same code

Synthetic data with the real shapes (random pixels: augmentation and model cost do not depend on content):
- CIFAR-10: ResNet-18 with the 3x3 stem, the `fast` recipe, batch 512, 50,000 uint8 32x32 images resident on
  the GPU and augmented there (`GpuAugment`: flip, translate 4, cutout 12);
- Dog Breed: ResNet-34 at 224, the `best` recipe's optimiser fully trainable, batch 256, bf16 autocast,
  channels_last; photos cached at a shorter side of 256 (the longer side varying) and augmented (random
  resized crop, flip, colour) on the GPU from the device-resident photos (`RaggedImages`, what the trainer
  picks when the cache fits) and, for comparison, in persistent DataLoader workers (`EpochLoader`, the
  trainer's worker count: the path for caches too large for the GPU).
(b) `bench_train.compare_train`: kaggle-kit's loop vs a plain eager fp32 loop on the same staged batches.
(c) `bench_databound.compare_databound`: an epoch with the real augmentation vs the same batches pre-staged;
CIFAR-10's three times over (three consecutive runs, each reported), Dog's on both data paths.
Predict: `predict.stream_logits` (what `kaggle-kit predict` runs, no TTA) over 300,000 CIFAR-10-shaped test
images and 10,357 Dog-shaped photos of varying sizes: images/s and peak GPU memory.
End to end: Dog's `best` recipe trained for one epoch on a generated download by
`kaggle_kit.training.train` itself (which
must put the photos on the GPU), then `predict_run` on its test set; and the whole `kaggle-kit demo` loop
(`demo.run_demo`: generated CIFAR-10 download -> train -> predict -> validated submission -> local score), wall
seconds from the generated download to the validated submission.
Split: the same run predicted on one device and split across every visible GPU (`predict_split`).
Sanity: every loss finite; a bf16 forward close to the fp32 one; torch.compile's eval outputs equal eager's
within tolerance, and a compiled training run's throughput (CIFAR-10); one EMA update equals
decay * ema + (1 - decay) * weights.
Targets (issue 20, H200): CIFAR-10 ResNet-18 >= 40,000 training images/s with the real augmentation and a
data-bound ratio <= 1.10, in three runs of three; Dog ResNet-34 at 224 >= 7,000 images/s with the real
augmentation on the device-resident path, ratio <= 1.10; predict >= 50,000 images/s on CIFAR-10's test set.
Each target is reported met or missed; on CUDA a missed one gets a torch.profiler profile of its workload (top
kernels, top host operations, the device's busy fraction) in the JSON and the printout. --quick profiles every
such workload for one step, so the code path runs on a CPU, and every part trains timm's tiny `test_resnet`
(Dog at 64 px) in place of ResNet-18/34: the same code at a cost a CPU test can pay.
Results: tables, and JSON at --json.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
import traceback
from pathlib import Path

import bench_augment_calls
from bench_databound import compare_databound
from bench_train import case_recipe, case_spec, compare_train
from common import (
    best_of,
    build_model,
    kit_engine,
    kit_epoch,
    print_machine,
    profile_table,
    profile_top,
    staged_batches,
    sync,
    synthetic_cache,
    table,
    write_json,
)

# issue 20's targets on an H200: (value's key, bound, higher is better)
TARGETS = {
    "cifar_train_images_per_s": 40_000,
    "cifar_databound_ratio": 1.10,
    "dog_train_images_per_s": 7_000,
    "dog_databound_ratio": 1.10,
    "predict_cifar_images_per_s": 50_000,
}
CIFAR_RUNS = 3  # CIFAR-10's (c) in three consecutive runs: the target must hold in all three

# Full sizes, by the targets' rates on an H200: a CIFAR-10 (c) run makes ~12 passes over 50,000 images (~15 s at
# 40,000/s), three runs ~45 s; 300,000 CIFAR-10 predictions ~6 s at 50,000/s; 10,357 Dog photos at 224 a few s.
FULL = dict(
    models={"cifar": None, "dog": None},  # each case's own model (bench_train.CASES)
    engine_batch=256,
    cifar_batch=512,
    cifar_steps=30,
    cifar_images=50_000,
    dog_batch=256,
    dog_steps=12,
    dog_images=4096,
    warmup=5,
    repeats=3,
    compile_steps=20,
    e2e_train=960,
    e2e_test=200,
    e2e_overrides={},
    predict_cifar=300_000,
    predict_dog=10_357,
    demo_train=None,
    demo_test=None,
    demo_overrides={},
    profile_steps=10,
)
QUICK = dict(
    # the same code paths with a tiny model: a ResNet-18/34 costs the CPU a minute and --quick reads no figure
    models={"cifar": ("test_resnet", 32), "dog": ("test_resnet", 64)},
    engine_batch=4,
    cifar_batch=16,
    cifar_steps=2,
    cifar_images=32,
    dog_batch=4,
    dog_steps=2,
    dog_images=16,
    warmup=1,
    repeats=1,
    compile_steps=2,
    e2e_train=48,
    e2e_test=8,
    e2e_overrides={"arch": "test_resnet", "img_size": 64},  # the same path; ResNet-34 at 224 costs CPU minutes
    predict_cifar=64,
    predict_dog=8,
    demo_train=100,
    demo_test=20,
    demo_overrides={"epochs": 1, "arch": "test_resnet"},
    profile_steps=1,
)


def relative_error(a, b) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def cifar_model(sizes):
    """A fresh CIFAR-10 case model (ResNet-18 with the 3x3 stem; --quick: its tiny stand-in)."""
    _, _, arch, stem, _, classes = case_spec("cifar", sizes["models"]["cifar"])
    return build_model(arch, stem, classes)


def bf16_sanity(device, sizes) -> dict:
    """A bf16-autocast forward of CIFAR-10's model (ResNet-18, 3x3 stem) against the fp32 one: finite and close."""
    import torch

    model = cifar_model(sizes).to(device).eval()
    x = torch.randn(sizes["cifar_batch"], 3, 32, 32, device=device)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            low = model(x)
    error = relative_error(low, reference)
    return {
        "finite": bool(torch.isfinite(low).all()),
        "relative_error": error,
        "ok": bool(torch.isfinite(low).all()) and error < 0.05,
    }


def compile_sanity(device, sizes) -> dict:
    """torch.compile: eval outputs equal eager's (under the kit's autocast) and a compiled training run of the
    `fast` recipe keeps finite losses; its throughput is measured on staged batches."""
    import torch

    from kaggle_kit.training.device import autocast_dtype

    recipe = case_recipe("cifar", device, sizes["cifar_batch"], compile=True, arch_size=sizes["models"]["cifar"])
    dtype = autocast_dtype(device, recipe)
    model = cifar_model(sizes).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    compiled = torch.compile(copy.deepcopy(model))
    x = torch.randn(sizes["cifar_batch"], 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        eager_out, compiled_out = model(x), compiled(x)
        started = time.perf_counter()
        compiled(x)  # already compiled: a second call must not recompile
        second_call_s = time.perf_counter() - started
    tolerance = 0.03 if dtype is not None else 1e-3
    error = relative_error(compiled_out, eager_out)

    train_model = cifar_model(sizes)
    steps = sizes["compile_steps"]
    engine = kit_engine(train_model, recipe, device, steps_per_epoch=steps)
    batches = staged_batches(steps, sizes["cifar_batch"], 32, 10, device)
    started = time.perf_counter()
    kit_epoch(engine, batches[:1])  # compiles forward and backward
    compile_s = time.perf_counter() - started
    losses, rates = [], []
    for epoch in range(sizes["repeats"]):
        seconds, images, loss = kit_epoch(engine, batches, epoch)
        losses.append(loss)
        rates.append(images / seconds)
    finite = all(math.isfinite(v) for v in losses)
    return {
        "eval_relative_error": error,
        "tolerance": tolerance,
        "second_call_s": second_call_s,
        "compile_s": compile_s,
        "train_losses": losses,
        "compiled_train_images_per_s": max(rates),
        "ok": error <= tolerance and finite,
    }


def ema_sanity(device, sizes) -> dict:
    """One training step with EMA: the EMA weights move to decay * ema + (1 - decay) * weights, losses finite."""
    import torch

    decay = 0.9
    recipe = case_recipe("cifar", device, sizes["cifar_batch"], ema=decay, arch_size=sizes["models"]["cifar"])
    engine = kit_engine(cifar_model(sizes), recipe, device, steps_per_epoch=2)
    batches = staged_batches(2, sizes["cifar_batch"], 32, 10, device)
    kit_epoch(engine, batches[:1])
    before = {k: v.detach().clone() for k, v in engine.ema.module.state_dict().items()}
    _, _, loss = kit_epoch(engine, batches[1:], epoch=1)
    weights = engine.model.state_dict()
    worst = 0.0
    for name, old in before.items():
        if not old.is_floating_point():
            continue
        expected = decay * old + (1 - decay) * weights[name].float()
        worst = max(worst, float((engine.ema.module.state_dict()[name].float() - expected).abs().max()))
    with torch.no_grad():
        engine.ema.module.eval()
        out = engine.ema.module(batches[0][0])
    finite = math.isfinite(loss) and bool(torch.isfinite(out).all())
    return {"decay": decay, "max_update_error": worst, "loss": loss, "finite": finite, "ok": finite and worst < 1e-4}


def dog_end_to_end(device, sizes, folder: Path) -> dict:
    """What the trainer itself picks on this card: Dog's `best` recipe (ResNet-34 at 224, random init) for one
    epoch on a generated download whose photos vary in size, then a prediction of its test set. On a GPU the
    photos must go to the device (`gpu_data` auto) and the predictor must take its array path. --quick trains a
    tiny model at 64 pixels on the same path."""
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.resolution import settle
    from kaggle_kit.competitions.samples import write_sample
    from kaggle_kit.data.batches import use_array_path
    from kaggle_kit.data.cache import load_images
    from kaggle_kit.data.layout import open_layout
    from kaggle_kit.inference.predict import predict_run
    from kaggle_kit.training import train

    comp = resolve("dog_breed")
    data = write_sample(comp, folder / "dog-e2e", n_train=sizes["e2e_train"], n_test=sizes["e2e_test"]).parent
    recipe = comp.recipe("best").replace(pretrained=False, epochs=1, device=str(device), **sizes["e2e_overrides"])
    cache = load_images(open_layout(comp, data), "train", settle(comp, recipe).cache_side)
    chosen = use_array_path(cache, recipe, device)
    trained = train(comp, data, recipe, out=folder / "dog-e2e-run")
    predicted = predict_run(trained.run_dir, data, out=folder / "dog-e2e.csv", device=str(device))
    finite = all(math.isfinite(row["train_loss"]) for row in trained.history)
    return {
        "gpu_data_chosen": chosen,
        "photos_of_several_sizes": not cache.is_uniform(),
        "train_images_per_s": trained.history[-1]["images_per_s"],
        "val_log_loss": trained.final_metric,
        "predict_images_per_s": predicted.images_per_s,
        "rows": predicted.rows,
        "finite": finite,
        "ok": finite and chosen == (device.type == "cuda") and predicted.rows == sizes["e2e_test"],
    }


def predict_split(device, folder: Path) -> dict:
    """dog_end_to_end's run predicted on one device and split across every visible GPU (both of a Kaggle notebook's
    T4s; a one-GPU card runs the split on the same card twice, a CPU on cpu,cpu): the two files' largest difference
    and images/s. Only on two or more GPUs is a speed-up expected."""
    import numpy as np
    import pandas as pd
    import torch

    from kaggle_kit.inference.predict import predict_run

    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    split = [f"cuda:{i}" for i in range(gpus)] if gpus > 1 else [str(device), str(device)]
    run, data = folder / "dog-e2e-run", folder / "dog-e2e"
    one = predict_run(run, data, out=folder / "split-one.csv", devices=[str(device)])
    both = predict_run(run, data, out=folder / "split-both.csv", devices=split)
    frames = [pd.read_csv(r.path) for r in (one, both)]
    difference = float(np.abs(frames[0].iloc[:, 1:].to_numpy() - frames[1].iloc[:, 1:].to_numpy()).max())
    return {
        "gpus": gpus,
        "devices": both.device,
        "one_device_images_per_s": one.images_per_s,
        "split_images_per_s": both.images_per_s,
        "speedup": both.images_per_s / one.images_per_s,
        "max_difference": difference,
        "ok": difference <= 1e-4 and frames[0].iloc[:, 0].equals(frames[1].iloc[:, 0]),
    }


def predict_throughput(
    case: str, device, n_images: int, batch_size: int, folder: Path, profile, arch_size: tuple[str, int] | None
) -> dict:
    """`predict.stream_logits` (the code `kaggle-kit predict` runs, no TTA, its batch: twice the training batch) on
    n synthetic test images of the case's shape: CIFAR-10 32x32, or Dog photos at the cache's shorter side of
    256 with the longer side varying. Images/s and peak GPU memory (allocated and reserved, from a reset after a
    warm-up). `profile(row)` true: a few batches again under torch.profiler. `arch_size`: bench_train.case_spec."""
    import numpy as np
    import torch

    from kaggle_kit.inference.streaming import stream_logits
    from kaggle_kit.models.factory import normalization
    from kaggle_kit.training.device import set_backend_flags, use_channels_last

    _, _, arch, stem, img_size, classes = case_spec(case, arch_size)
    recipe = case_recipe(case, device, batch_size // 2, arch_size=arch_size)
    cache = synthetic_cache(folder / f"predict-{case}", n_images, (32, 32) if case == "cifar" else None)
    set_backend_flags(device)
    model = build_model(arch, stem, classes).to(device).eval()
    if use_channels_last(recipe, device):
        model = model.to(memory_format=torch.channels_last)
    mean, std = normalization(model)

    def run(indices):
        return stream_logits(model, cache, indices, recipe, mean, std, device, batch_size=batch_size)

    run(np.arange(min(n_images, 2 * batch_size)))  # warm-up: cudnn autotuning, the allocator's first blocks
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    logits = run(np.arange(n_images))
    assert logits.mean.shape == (n_images, classes) and np.isfinite(logits.mean).all()
    row = {
        "case": case,
        "model": f"{arch}{' 3x3 stem' if stem == 'cifar' else ''} @{img_size}, batch {batch_size}",
        "path": logits.path,
        "images": n_images,
        "seconds": logits.seconds,
        "images_per_s": logits.images_per_s,
        "peak_gpu_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "peak_gpu_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30 if cuda else None,
        "ok": True,
    }
    if profile(row):
        row["profile"] = profile_top(lambda: run(np.arange(min(n_images, 4 * batch_size))), device)
    return row


def predict_engines(device, sizes) -> list[dict]:
    """Inference through each engine of `predict --engine` on synthetic batches at the Dog size: torch with each
    autocast precision the device has (fp32 on a CPU) and ONNX Runtime (its CUDA provider where installed, else
    the CPU provider, which is skipped on a GPU). Images/s, peak GPU memory, and the probability difference
    against fp32 torch."""
    import numpy as np
    import torch

    from kaggle_kit.competitions.metrics import softmax
    from kaggle_kit.inference import engines

    arch, size = sizes["models"]["dog"] or ("resnet34", 224)
    batch, repeats = sizes["engine_batch"], sizes["repeats"] + 2
    model = build_model(arch, "imagenet", 120).to(device).eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)).to(device)
    with torch.inference_mode():
        reference = model(x).float().cpu().numpy()
    cuda = device.type == "cuda"
    rows = []

    def measure(name, forward):
        forward()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        seconds = best_of(repeats, forward, device)
        out = forward().float().cpu().numpy()
        rows.append({
            "engine": name, "model": f"{arch} @{size}, batch {batch}", "images_per_s": batch / seconds,
            "peak_gpu_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
            "max_prob_difference": float(np.abs(softmax(out, 1.0) - softmax(reference, 1.0)).max()), "ok": True,
        })  # fmt: skip

    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if dtype is not None and not cuda:
            continue

        def forward(dtype=dtype):
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                return model(x)

        measure(f"torch {precision}", forward)
    ort = engines._import_onnxruntime()
    if ort is not None and (not cuda or "CUDAExecutionProvider" in ort.get_available_providers()):
        session = engines._session(ort, engines._export_bytes(model.float().cpu().eval(), size), device)
        model.to(device)
        onnx_model = engines.OnnxModel(session, device)
        measure(f"onnxruntime {'cuda' if cuda else 'cpu'}", lambda: onnx_model(x))
    return rows


def demo_end_to_end(device, sizes, folder: Path) -> dict:
    """The whole `kaggle-kit demo` loop (`demo.run_demo`, its own settings: CIFAR-10 sample, 4 epochs) on this
    device: wall seconds from generating the download to the validated, scored submission. --quick generates a
    smaller sample and trains a tiny model for one epoch."""
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.samples import write_sample
    from kaggle_kit.data.layout import open_layout
    from kaggle_kit.submissions.files import validate
    from kaggle_kit.workflows.demo import run_demo

    comp = resolve("cifar10")
    out = folder / "demo"
    started = time.perf_counter()
    if sizes["demo_train"]:  # else run_demo generates the demo's own sample, inside the timed span
        write_sample(comp, out / "data" / comp.slug, n_train=sizes["demo_train"], n_test=sizes["demo_test"])
    result = run_demo("cifar10", out, device=str(device), **sizes["demo_overrides"])
    wall_s = time.perf_counter() - started
    problems = validate(result.submission, comp, open_layout(comp, result.data_dir).sample_path)
    return {
        "wall_s": wall_s,
        "demo_seconds": result.seconds,
        "test_score": result.test_score,
        "best_val_metric": result.best_val_metric,
        "submission_problems": problems,
        "ok": not problems and math.isfinite(result.test_score),
    }


def guarded(name: str, fn, results: dict) -> None:
    """Run one part; a failure is recorded (and printed) instead of ending the whole check."""
    try:
        started = time.perf_counter()
        results[name] = fn()
        print(f"[{time.perf_counter() - started:6.1f}s] {name}: done", flush=True)
    except Exception as error:  # each part independent: report every failure, not only the first
        results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)


def evaluate_targets(results: dict) -> dict:
    """Each issue-20 target: its value, met or not, and where the profiles of its workload are ("part#row")."""

    def entry(key: str, values: list[float], higher: bool, where: list[str], rows: list[dict]) -> dict:
        bound = TARGETS[key]
        met = [v >= bound if higher else v <= bound for v in values]
        value = min(values) if higher else max(values)  # the worst run decides
        out = {
            "value": value,
            "target": f"{'>=' if higher else '<='} {bound:g}",
            "met": all(met),
            "profiles": [w for w, r in zip(where, rows) if "profile" in r],
        }
        if len(values) > 1:
            out["runs"] = f"{sum(met)} of {len(values)} met: " + ", ".join(f"{v:,.3g}" for v in values)
        return out

    targets = {}
    if isinstance(results.get("cifar_databound"), list):
        rows = results["cifar_databound"]
        where = [f"cifar_databound#{i}" for i in range(len(rows))]
        targets["cifar_train_images_per_s"] = entry(
            "cifar_train_images_per_s", [r["images_per_s_real"] for r in rows], True, where, rows
        )
        targets["cifar_databound_ratio"] = entry(
            "cifar_databound_ratio", [r["ratio"] for r in rows], False, where, rows
        )
    if isinstance(results.get("dog_databound"), list):
        rows = results["dog_databound"]
        targets["dog_train_images_per_s"] = entry(
            "dog_train_images_per_s", [rows[0]["images_per_s_real"]], True, ["dog_databound#0"], rows
        )
        targets["dog_databound_ratio"] = entry(
            "dog_databound_ratio", [rows[0]["ratio"]], False, ["dog_databound#0"], rows
        )
    if "images_per_s" in results.get("predict_cifar", {}):
        row = results["predict_cifar"]
        targets["predict_cifar_images_per_s"] = entry(
            "predict_cifar_images_per_s", [row["images_per_s"]], True, ["predict_cifar"], [row]
        )
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke run of every part")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile part")
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--plot", nargs="?", const="", help="also plot the JSON (plot.py): here, or beside the JSON")
    args = parser.parse_args()

    import torch

    from kaggle_kit.core import progress
    from kaggle_kit.training.device import resolve_device

    progress.enable(False)
    started = time.perf_counter()
    if args.plot is not None and not args.json:
        parser.error("--plot plots the JSON: give --json too")
    device = resolve_device(args.device)
    sizes = QUICK if args.quick else FULL
    info = print_machine("GPU check (issue 20): training, data-bound ratios, predict, demo loop, bf16/compile/EMA")
    print(f"device {device}{' (quick sizes)' if args.quick else ''}", flush=True)
    results: dict = {}
    cuda = device.type == "cuda"

    def profiler(missed):
        """When a part's workload is profiled: on CUDA, when it misses its target; --quick: always (one step)."""
        return lambda row: bool(args.quick or (cuda and missed(row)))

    cifar_missed = profiler(
        lambda r: (
            r["images_per_s_real"] < TARGETS["cifar_train_images_per_s"]
            or r["ratio"] > TARGETS["cifar_databound_ratio"]
        )
    )
    dog_missed = profiler(
        lambda r: (
            r["images_per_s_real"] < TARGETS["dog_train_images_per_s"] or r["ratio"] > TARGETS["dog_databound_ratio"]
        )
    )
    workers_missed = profiler(lambda r: r["ratio"] > TARGETS["dog_databound_ratio"])  # reported, no target
    predict_missed = profiler(lambda r: r["images_per_s"] < TARGETS["predict_cifar_images_per_s"])
    steps = sizes["profile_steps"]
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="kaggle-kit-gpu-check-") as folder:
        guarded(
            "cifar_train",
            lambda: compare_train(
                "cifar",
                device,
                sizes["cifar_batch"],
                sizes["cifar_steps"],
                sizes["warmup"],
                sizes["repeats"],
                arch_size=sizes["models"]["cifar"],
            ),
            results,
        )

        def cifar_runs() -> list[dict]:
            rows = []
            for run in range(1, CIFAR_RUNS + 1):  # consecutive, each from a fresh model, engine and cache
                (row,) = compare_databound(
                    "cifar",
                    device,
                    sizes["cifar_images"],
                    sizes["cifar_batch"],
                    None,
                    sizes["warmup"],
                    sizes["repeats"],
                    Path(folder) / f"run{run}",
                    profile=cifar_missed,
                    profile_steps=steps,
                    arch_size=sizes["models"]["cifar"],
                )
                rows.append({**row, "run": f"run {run} of {CIFAR_RUNS}"})
                print(
                    f"  cifar (c) run {run}: {row['images_per_s_real']:,.0f} images/s, ratio {row['ratio']:.3f}",
                    flush=True,
                )
            return rows

        guarded("cifar_databound", cifar_runs, results)
        guarded(
            "dog_train",
            lambda: compare_train(
                "dog",
                device,
                sizes["dog_batch"],
                sizes["dog_steps"],
                sizes["warmup"],
                sizes["repeats"],
                arch_size=sizes["models"]["dog"],
            ),
            results,
        )
        for case, missed in (("dog", dog_missed), ("dog-workers", workers_missed)):  # device batches, then workers
            guarded(
                f"{case.replace('-', '_')}_databound",
                lambda case=case, missed=missed: compare_databound(
                    case,
                    device,
                    sizes["dog_images"],
                    sizes["dog_batch"],
                    None,
                    sizes["warmup"],
                    sizes["repeats"],
                    Path(folder),
                    profile=missed,
                    profile_steps=steps,
                    arch_size=sizes["models"]["dog"],
                ),
                results,
            )
        guarded(
            "augment_calls",
            lambda: bench_augment_calls.measure(device, sizes["cifar_images"], sizes["cifar_batch"], sizes["repeats"]),
            results,
        )
        guarded(
            "predict_cifar",
            lambda: predict_throughput(
                "cifar",
                device,
                sizes["predict_cifar"],
                2 * sizes["cifar_batch"],
                Path(folder),
                predict_missed,
                sizes["models"]["cifar"],
            ),
            results,
        )
        guarded(
            "predict_dog",
            lambda: predict_throughput(
                "dog",
                device,
                sizes["predict_dog"],
                2 * sizes["dog_batch"],
                Path(folder),
                profiler(lambda r: False),
                sizes["models"]["dog"],
            ),
            results,
        )
        guarded("predict_engines", lambda: predict_engines(device, sizes), results)
        guarded("dog_end_to_end", lambda: dog_end_to_end(device, sizes, Path(folder)), results)
        guarded("predict_split", lambda: predict_split(device, Path(folder)), results)
        guarded("demo_end_to_end", lambda: demo_end_to_end(device, sizes, Path(folder)), results)
        guarded("bf16", lambda: bf16_sanity(device, sizes), results)
        guarded("ema", lambda: ema_sanity(device, sizes), results)
        if not args.skip_compile:
            guarded("compile", lambda: compile_sanity(device, sizes), results)
    sync(device)

    train_rows = [r for key in ("cifar_train", "dog_train") if isinstance(results.get(key), list) for r in results[key]]
    bound_rows = [
        r
        for key in ("cifar_databound", "dog_databound", "dog_workers_databound")
        if isinstance(results.get(key), list)
        for r in results[key]
    ]
    if train_rows:
        print("\n(b) training images/s, staged batches")
        print(table(train_rows, ["case", "model", "loop", "images", "images_per_s", "ratio"]))
    if bound_rows:
        print("\n(c) epoch with the real augmentation vs the model alone")
        print(
            table(
                bound_rows,
                [
                    "case",
                    "run",
                    "model",
                    "data",
                    "images",
                    "images_per_s_real",
                    "images_per_s_alone",
                    "data_alone_images_per_s",
                    "data_alone_one_batch_per_call_images_per_s",
                    "ratio",
                ],
            )
        )
    if isinstance(results.get("augment_calls"), list):
        print("\nGPU data path alone, CIFAR-10 shapes, by float output per augmentation call")
        print(table(results["augment_calls"], bench_augment_calls.COLUMNS))
    predict_rows = [results[k] for k in ("predict_cifar", "predict_dog") if "images_per_s" in results.get(k, {})]
    if predict_rows:
        print("\npredict (stream_logits, no TTA)")
        print(
            table(
                predict_rows,
                [
                    "case",
                    "model",
                    "path",
                    "images",
                    "seconds",
                    "images_per_s",
                    "peak_gpu_allocated_gib",
                    "peak_gpu_reserved_gib",
                ],
            )
        )
    sanity_rows = [
        {
            "check": name,
            "ok": results[name].get("ok"),
            "detail": {k: v for k, v in results[name].items() if k not in ("ok", "traceback")},
        }
        for name in ("dog_end_to_end", "demo_end_to_end", "bf16", "ema", "compile")
        if name in results
    ]
    print("\nsanity and end to end")
    print(table(sanity_rows, ["check", "ok", "detail"]))

    targets = evaluate_targets(results)
    comparable = not args.quick and cuda
    print("\ntargets (issue 20, H200)" + ("" if comparable else " - quick or CPU sizes, not comparable"))
    print(
        table(
            [
                {"name": k, **{c: v[c] for c in ("value", "target", "met", "runs") if c in v}}
                for k, v in targets.items()
            ],
            ["name", "value", "target", "met", "runs"],
        )
    )
    profiled: dict[str, list[str]] = {}  # one workload's profile serves every target it decides
    for name, target in targets.items():
        for where in target.get("profiles", []):
            profiled.setdefault(where, []).append(f"{name} {'met' if target['met'] else 'MISSED'}")
    for where, names in profiled.items():
        part, _, index = where.partition("#")
        found = results[part][int(index)] if index else results[part]
        print(f"\nprofile of {where} ({'; '.join(names)}{'; --quick profiles every target' if args.quick else ''})")
        print(profile_table(found["profile"]))
    failed = [name for name, value in results.items() if isinstance(value, dict) and value.get("ok") is False]
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f}s in all; {'all parts ran' if not failed else 'FAILED: ' + ', '.join(failed)}")
    write_json(
        args.json,
        {
            "benchmark": "gpu_check",
            "machine": info,
            "device": str(device),
            "quick": args.quick,
            "torch": torch.__version__,
            "results": results,
            "targets": targets,
            "seconds": elapsed,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    if args.plot is not None and args.json:
        from plot import plot

        print(f"plot: {plot([Path(args.json)], Path(args.plot) if args.plot else Path(args.json).with_suffix('.png'))}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
