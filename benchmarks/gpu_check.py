"""One GPU check: (b) and (c) for CIFAR-10 ResNet-18 and Dog ResNet-34, plus bf16, compile and EMA sanity.

    .venv/bin/python benchmarks/gpu_check.py --json gpu_check.json            # one H100/H200: under 5 minutes
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
(c) `bench_databound.compare_databound`: an epoch with the real augmentation vs the same batches pre-staged.
End to end: Dog's `best` recipe trained for one epoch on a generated download by `kaggle_kit.train.train` itself (which
must put the photos on the GPU), then `predict_run` on its test set.
Sanity: every loss finite; a bf16 forward close to the fp32 one; torch.compile's eval outputs equal eager's
within tolerance, and a compiled training run's throughput (CIFAR-10); one EMA update equals
decay * ema + (1 - decay) * weights.
Targets (H100): CIFAR-10 ResNet-18 >= 25,000 training images/s with the real augmentation, data-bound ratio
(c) <= 1.10, ResNet-34 at 224 >= 3,000 training images/s. Results: a table, and JSON at --json.
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
from bench_train import case_recipe, compare_train
from common import build_model, kit_engine, kit_epoch, print_machine, staged_batches, sync, table, write_json

TARGETS = {"cifar_train_images_per_s": 25_000, "databound_ratio": 1.10, "dog_train_images_per_s": 3_000}

FULL = dict(cifar_batch=512, cifar_steps=30, cifar_images=50_000, dog_batch=256, dog_steps=12, dog_images=4096,
            warmup=5, repeats=3, compile_steps=20, e2e_train=960, e2e_test=200)
QUICK = dict(cifar_batch=16, cifar_steps=2, cifar_images=64, dog_batch=4, dog_steps=2, dog_images=16,
             warmup=1, repeats=1, compile_steps=2, e2e_train=48, e2e_test=8)


def relative_error(a, b) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def bf16_sanity(device, sizes) -> dict:
    """A bf16-autocast forward of ResNet-18 (3x3 stem) against the fp32 one: finite and close."""
    import torch

    model = build_model("resnet18", "cifar", 10).to(device).eval()
    x = torch.randn(sizes["cifar_batch"], 3, 32, 32, device=device)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            low = model(x)
    error = relative_error(low, reference)
    return {"finite": bool(torch.isfinite(low).all()), "relative_error": error, "ok": bool(torch.isfinite(low).all()) and error < 0.05}


def compile_sanity(device, sizes) -> dict:
    """torch.compile: eval outputs equal eager's (under the kit's autocast) and a compiled training run of the
    `fast` recipe keeps finite losses; its throughput is measured on staged batches."""
    import torch

    from kaggle_kit.device import autocast_dtype

    recipe = case_recipe("cifar", device, sizes["cifar_batch"], compile=True)
    dtype = autocast_dtype(device, recipe)
    model = build_model("resnet18", "cifar", 10).to(device).eval()
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

    train_model = build_model("resnet18", "cifar", 10)
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
    return {"eval_relative_error": error, "tolerance": tolerance, "second_call_s": second_call_s,
            "compile_s": compile_s, "train_losses": losses, "compiled_train_images_per_s": max(rates),
            "ok": error <= tolerance and finite}


def ema_sanity(device, sizes) -> dict:
    """One training step with EMA: the EMA weights move to decay * ema + (1 - decay) * weights, losses finite."""
    import torch

    decay = 0.9
    recipe = case_recipe("cifar", device, sizes["cifar_batch"], ema=decay)
    engine = kit_engine(build_model("resnet18", "cifar", 10), recipe, device, steps_per_epoch=2)
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
    photos must go to the device (`gpu_data` auto) and the predictor must take its array path."""
    from kaggle_kit.batches import cache_short_side, use_array_path
    from kaggle_kit.cache import load_images
    from kaggle_kit.competition import resolve
    from kaggle_kit.layout import open_layout
    from kaggle_kit.predict import predict_run
    from kaggle_kit.sample import write_sample
    from kaggle_kit.train import train

    comp = resolve("dog_breed")
    data = write_sample(comp, folder / "dog-e2e", n_train=sizes["e2e_train"], n_test=sizes["e2e_test"]).parent
    recipe = comp.recipe("best").replace(pretrained=False, epochs=1, device=str(device))
    cache = load_images(open_layout(comp, data), "train", cache_short_side(recipe))
    chosen = use_array_path(cache, recipe, device)
    trained = train(comp, data, recipe, out=folder / "dog-e2e-run")
    predicted = predict_run(trained.run_dir, data, out=folder / "dog-e2e.csv", device=str(device))
    finite = all(math.isfinite(row["train_loss"]) for row in trained.history)
    return {"gpu_data_chosen": chosen, "photos_of_several_sizes": not cache.is_uniform(),
            "train_images_per_s": trained.history[-1]["images_per_s"], "val_log_loss": trained.final_metric,
            "predict_images_per_s": predicted.images_per_s, "rows": predicted.rows, "finite": finite,
            "ok": finite and chosen == (device.type == "cuda") and predicted.rows == sizes["e2e_test"]}


def guarded(name: str, fn, results: dict) -> None:
    """Run one part; a failure is recorded (and printed) instead of ending the whole check."""
    try:
        started = time.perf_counter()
        results[name] = fn()
        print(f"[{time.perf_counter() - started:6.1f}s] {name}: done", flush=True)
    except Exception as error:  # each part independent: report every failure, not only the first
        results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke run of every part")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile part")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    import torch

    from kaggle_kit import progress
    from kaggle_kit.device import resolve_device

    progress.enable(False)
    started = time.perf_counter()
    device = resolve_device(args.device)
    sizes = QUICK if args.quick else FULL
    info = print_machine("GPU check: training throughput, data-bound ratio, bf16 / compile / EMA sanity")
    print(f"device {device}{' (quick sizes)' if args.quick else ''}", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="kaggle-kit-gpu-check-") as folder:
        guarded("cifar_train", lambda: compare_train(
            "cifar", device, sizes["cifar_batch"], sizes["cifar_steps"], sizes["warmup"], sizes["repeats"]), results)
        guarded("cifar_databound", lambda: compare_databound(
            "cifar", device, sizes["cifar_images"], sizes["cifar_batch"], None, sizes["warmup"], sizes["repeats"],
            Path(folder)), results)
        guarded("dog_train", lambda: compare_train(
            "dog", device, sizes["dog_batch"], sizes["dog_steps"], sizes["warmup"], sizes["repeats"]), results)
        guarded("dog_databound", lambda: compare_databound(
            "dog", device, sizes["dog_images"], sizes["dog_batch"], None, sizes["warmup"], sizes["repeats"],
            Path(folder)), results)
        guarded("dog_workers_databound", lambda: compare_databound(
            "dog-workers", device, sizes["dog_images"], sizes["dog_batch"], None, sizes["warmup"], sizes["repeats"],
            Path(folder)), results)
        guarded("augment_calls", lambda: bench_augment_calls.measure(
            device, sizes["cifar_images"], sizes["cifar_batch"], sizes["repeats"]), results)
        guarded("dog_end_to_end", lambda: dog_end_to_end(device, sizes, Path(folder)), results)
        guarded("bf16", lambda: bf16_sanity(device, sizes), results)
        guarded("ema", lambda: ema_sanity(device, sizes), results)
        if not args.skip_compile:
            guarded("compile", lambda: compile_sanity(device, sizes), results)
    sync(device)

    train_rows = [r for key in ("cifar_train", "dog_train") if isinstance(results.get(key), list) for r in results[key]]
    bound_rows = [r for key in ("cifar_databound", "dog_databound", "dog_workers_databound")
                  if isinstance(results.get(key), list) for r in results[key]]
    if train_rows:
        print("\n(b) training images/s, staged batches")
        print(table(train_rows, ["case", "model", "loop", "images", "images_per_s", "ratio"]))
    if bound_rows:
        print("\n(c) epoch with the real augmentation vs the model alone")
        print(table(bound_rows, ["case", "model", "data", "images", "images_per_s_real", "images_per_s_alone",
                                 "data_alone_images_per_s", "data_alone_one_batch_per_call_images_per_s", "ratio"]))
    if isinstance(results.get("augment_calls"), list):
        print("\nGPU data path alone, CIFAR-10 shapes, by float output per augmentation call")
        print(table(results["augment_calls"], bench_augment_calls.COLUMNS))
    sanity_rows = [{"check": name, "ok": results[name].get("ok"),
                    "detail": {k: v for k, v in results[name].items() if k not in ("ok", "traceback")}}
                   for name in ("dog_end_to_end", "bf16", "ema", "compile") if name in results]
    print("\nsanity")
    print(table(sanity_rows, ["check", "ok", "detail"]))

    targets = {}
    if isinstance(results.get("cifar_databound"), list):
        row = results["cifar_databound"][0]
        targets["cifar_train_images_per_s"] = {"value": row["images_per_s_real"], "target": ">= 25000",
                                               "met": row["images_per_s_real"] >= TARGETS["cifar_train_images_per_s"]}
        targets["cifar_databound_ratio"] = {"value": row["ratio"], "target": "<= 1.10", "met": row["ratio"] <= TARGETS["databound_ratio"]}
    if isinstance(results.get("dog_databound"), list):
        row = results["dog_databound"][0]
        targets["dog_databound_ratio"] = {"value": row["ratio"], "target": "<= 1.10", "met": row["ratio"] <= TARGETS["databound_ratio"]}
    if isinstance(results.get("dog_train"), list):
        rate = results["dog_train"][1]["images_per_s"]
        targets["dog_train_images_per_s"] = {"value": rate, "target": ">= 3000", "met": rate >= TARGETS["dog_train_images_per_s"]}
    print("\ntargets (H100)" + (" - quick CPU sizes, not comparable" if args.quick or device.type != "cuda" else ""))
    print(table([{"name": k, **v} for k, v in targets.items()], ["name", "value", "target", "met"]))
    failed = [name for name, value in results.items() if isinstance(value, dict) and value.get("ok") is False]
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f}s in all; {'all parts ran' if not failed else 'FAILED: ' + ', '.join(failed)}")
    write_json(args.json, {"benchmark": "gpu_check", "machine": info, "device": str(device), "quick": args.quick,
                           "torch": torch.__version__, "results": results, "targets": targets,
                           "seconds": elapsed, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
