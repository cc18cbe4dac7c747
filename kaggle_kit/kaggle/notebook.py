"""The notebook script `package` writes: offline on Kaggle, it predicts exactly as `kaggle-kit predict` would.

Steps, each named in the log with the seconds since the script started (`kaggle-kit step: NAME (at 4.2 s)`, and
`done` at the end: `rehearse` reads them into each step's time) and in the one-line failure
(`kaggle-kit notebook failed at step 'NAME': ...`):
    install   pip installs the dataset's wheels with no index into a fresh folder, first on sys.path, and checks
              that kaggle_kit is imported from there (the packaged code is what runs, not a copy on the image)
    weights   rebuilds a run folder (config.json, split.json, best.pt) from the dataset's safetensors weights; for
              a fold group, the group folder: folds.json, cv.json, the OOF file and fold-I/ from the fold-I.* files;
              for an ensemble, each member-I (a run or a group, from the member-I.* files) beside ensemble.json
    predict   kaggle_kit.inference.predict.predict_run on the competition's data: the run's TTA choice and temperature,
              the test set split across every visible GPU (both of Kaggle's T4s; $KAGGLE_KIT_DEVICES, e.g. cpu,cpu,
              names others: a rehearsal runs the split here); a fold group through
              kaggle_kit.workflows.cross_validation.predict_group, as `kaggle-kit predict GROUP`; an ensemble
              through kaggle_kit.workflows.ensemble_predict.predict_ensemble, with the weights `ensemble` chose
    validate  checks submission.csv against the competition's sample, as Kaggle will

Inputs come from /kaggle/input/<slug>/ and the output goes to /kaggle/working/submission.csv, or from
$KAGGLE_KIT_INPUT_ROOT and to $KAGGLE_KIT_WORKING_DIR where set (rehearsals, the fake Kaggle of the tests).
"""

from __future__ import annotations

import json

from ..competitions.registry import Competition

STEP_PREFIX = "kaggle-kit step: "
FAILURE_PREFIX = "kaggle-kit notebook failed at step "
SUBMISSION_NAME = "submission.csv"

TEMPLATE = '''"""kaggle-kit: predict __TITLE__ offline with __RUN_TEXT__, as `kaggle-kit predict` would."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

STARTED = time.monotonic()

COMPETITION, COMPETITION_SLUG, DATASET_SLUG, RUN = __COMPETITION__, __COMPETITION_SLUG__, __DATASET_SLUG__, __RUN__
ENGINE = __ENGINE__
FOLDS, GROUP_FILES = __FOLDS__, __GROUP_FILES__  # a fold group's K and its own files; None for a run
ENSEMBLE = __ENSEMBLE__  # an ensemble's members (name, folds, group files) beside ensemble.json; None otherwise
DEVICES = os.environ.get("KAGGLE_KIT_DEVICES") or None  # None: every visible GPU, so both T4s share the test set
os.environ.setdefault("KAGGLE_KIT_PROGRESS", "1")  # the log shows images/s and an ETA while the job runs
INPUT = Path(os.environ.get("KAGGLE_KIT_INPUT_ROOT") or "/kaggle/input")
WORKING = Path(os.environ.get("KAGGLE_KIT_WORKING_DIR") or "/kaggle/working")
DATASET, DATA = INPUT / DATASET_SLUG, INPUT / COMPETITION_SLUG
SUBMISSION = WORKING / __SUBMISSION_NAME__
SCRATCH = Path(tempfile.mkdtemp(prefix="kaggle-kit-"))  # outside the working folder: not part of the output


def install():
    wheels = sorted(DATASET.glob("*.whl"))
    if not any(wheel.name.startswith("kaggle_kit-") for wheel in wheels):
        raise RuntimeError(f"no kaggle_kit wheel in {DATASET}: attach the dataset `kaggle-kit package` made")
    target = SCRATCH / "packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--target", str(target), *map(str, wheels)], check=True)
    sys.path.insert(0, str(target))
    import kaggle_kit

    if not Path(kaggle_kit.__file__).resolve().is_relative_to(target.resolve()):
        raise RuntimeError(f"kaggle_kit was imported from {kaggle_kit.__file__}, not from the packaged wheel")
    print(f"kaggle_kit from {Path(kaggle_kit.__file__).parent}")


def rebuild_run(run, prefix=""):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    run.mkdir(parents=True)
    for name in ("config.json", "split.json", "tabular.json"):  # tabular.json: the run's tabular encoding
        if (DATASET / (prefix + name)).is_file():
            shutil.copy2(DATASET / (prefix + name), run / name)
    weights_file = str(DATASET / (prefix + "weights.safetensors"))
    with safe_open(weights_file, "pt") as handle:
        epoch = (handle.metadata() or {}).get("epoch") or None
    state = {"model": load_file(weights_file), "epoch": int(epoch) if epoch else None}
    torch.save(state, run / "best.pt")
    for export in DATASET.glob(prefix + "*.onnx"):  # the checked export, cached where predict looks: none exports
        (run / "onnx").mkdir(exist_ok=True)
        shutil.copy2(export, run / "onnx" / export.name)


def rebuild_group(folder, folds, files, prefix=""):
    folder.mkdir(parents=True)
    for name in files:
        shutil.copy2(DATASET / (prefix + name), folder / name)
    for fold in range(1, folds + 1):
        rebuild_run(folder / f"fold-{fold}", f"{prefix}fold-{fold}.")


def weights():
    folder = SCRATCH / "runs" / RUN
    if ENSEMBLE is not None:  # each member as a run or a fold group under one folder, where ensemble.json names it
        folder.mkdir(parents=True)
        shutil.copy2(DATASET / "ensemble.json", folder / "ensemble.json")
        for member in ENSEMBLE:
            if member["folds"] is None:
                rebuild_run(folder / member["name"], member["name"] + ".")
            else:
                rebuild_group(folder / member["name"], member["folds"], member["files"], member["name"] + ".")
        return folder
    if FOLDS is None:
        rebuild_run(folder)
        return folder
    rebuild_group(folder, FOLDS, GROUP_FILES)
    return folder


def predict(run):
    os.environ["KAGGLE_KIT_SUBMISSIONS_DIR"] = str(SCRATCH / "submissions")  # predict's file index: not output
    if (DATASET / "competition.toml").is_file():  # declared by `init`: put where kaggle-kit reads declarations
        folder = SCRATCH / "config" / "kaggle-kit" / "competitions"
        folder.mkdir(parents=True)
        shutil.copy2(DATASET / "competition.toml", folder / f"{COMPETITION}.toml")
        os.environ["XDG_CONFIG_HOME"] = str(SCRATCH / "config")
        from kaggle_kit.competitions.registry import rediscover

        rediscover()
    if ENSEMBLE is not None:  # every member predicted and blended as `kaggle-kit predict ENSEMBLE.csv`
        from kaggle_kit.workflows.ensemble_predict import predict_ensemble

        result = predict_ensemble(run / "ensemble.json", SUBMISSION, DATA, root=run)
        print(f"wrote {result.path}: {result.rows} rows from {result.members} members")
        return result
    if FOLDS is not None:  # every fold's best.pt, averaged and post-hoc fitted as `kaggle-kit predict GROUP`
        from kaggle_kit.workflows.cross_validation import predict_group

        result = predict_group(run, DATA, SUBMISSION, engine=ENGINE)
        print(f"wrote {result.path}: {result.rows} rows from {FOLDS} folds, temperature {result.temperature:.4f}")
        return result
    from kaggle_kit.inference.predict import predict_run

    result = predict_run(run, DATA, "best", None, SUBMISSION, engine=ENGINE, devices=DEVICES)
    print(f"wrote {result.path}: {result.rows} rows, TTA {'on' if result.tta else 'off'} ({result.tta_source}), "
          f"temperature {result.temperature:.4f}, on {result.device} with {result.engine}, "
          f"{result.images_per_s:,.0f} images/s, batch {result.batch_size} ({result.batch_reason})")
    return result


def validate(result):
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.submissions.files import inspect_submission

    checked = inspect_submission(SUBMISSION, resolve(COMPETITION), result.sample_path)
    if not checked.ok:
        raise RuntimeError(f"{SUBMISSION} is not a valid submission: {checked.problems[0]}")
    print(f"ok: {SUBMISSION}: {checked.rows} rows, header matches {result.sample_path.name}")


def main():
    step, value = "start", None
    try:
        WORKING.mkdir(parents=True, exist_ok=True)
        for step, action in (("install", install), ("weights", weights), ("predict", predict),
                             ("validate", validate)):
            print(__STEP_PREFIX__ + f"{step} (at {time.monotonic() - STARTED:.2f} s)", flush=True)
            value = action() if step in ("install", "weights") else action(value)
        print(__STEP_PREFIX__ + f"done (at {time.monotonic() - STARTED:.2f} s)", flush=True)
    except Exception as error:  # one line naming the step, then the details for the log
        traceback.print_exc()
        print(__FAILURE_PREFIX__ + f"'{step}': {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
        # on Kaggle the inputs are read-only, so kaggle-kit caches decoded images under /kaggle/working: drop
        # them, or they become part of the notebook's output next to submission.csv
        shutil.rmtree(WORKING / ".kaggle-kit", ignore_errors=True)


main()
'''


def script(
    comp: Competition,
    dataset_slug: str,
    run: str,
    engine: str = "torch",
    folds: int | None = None,
    group_files: list[str] | None = None,
    ensemble: list[dict] | None = None,
) -> str:
    """The notebook for a run, for a fold group of `folds` runs whose own files are `group_files`, or for an
    ensemble whose members are `ensemble` (each: name, folds or None, group files)."""
    values = {
        "__TITLE__": comp.title.replace('"', "'"),
        "__RUN_TEXT__": _run_text(run, folds, ensemble).replace('"', "'"),
        "__COMPETITION__": json.dumps(comp.name),
        "__COMPETITION_SLUG__": json.dumps(comp.slug),
        "__DATASET_SLUG__": json.dumps(dataset_slug),
        "__RUN__": json.dumps(run),
        "__ENGINE__": json.dumps(engine),
        "__FOLDS__": repr(int(folds)) if folds else "None",
        "__GROUP_FILES__": json.dumps(group_files or []),
        "__ENSEMBLE__": repr(ensemble) if ensemble is not None else "None",
        "__SUBMISSION_NAME__": json.dumps(SUBMISSION_NAME),
        "__STEP_PREFIX__": json.dumps(STEP_PREFIX),
        "__FAILURE_PREFIX__": json.dumps(FAILURE_PREFIX),
    }
    text = TEMPLATE
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _run_text(run: str, folds: int | None, ensemble: list[dict] | None) -> str:
    if ensemble is not None:
        return f"ensemble {run} ({len(ensemble)} members)"
    return f"fold group {run} ({folds} folds)" if folds else f"run {run}"
