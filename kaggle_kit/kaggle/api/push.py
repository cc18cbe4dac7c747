"""`push`: a folder `kaggle-kit package` wrote, through Kaggle: dataset, notebook, its run, output, code submission.

    dataset   created, or a new version when it exists; waited on until Kaggle reports it ready
    notebook  pushed (a new version each time), followed until COMPLETE or ERROR, with an ETA from the last
              push of this package (OUT/push.json); its output files and log land in OUT/output/v<N>/
    submit    for a code competition: that notebook version, submitted; the score waited for and recorded in
              the ledger with the notebook and dataset versions and the dataset files' hashes

A competition is a code competition when its declaration says so or Kaggle's listing calls it kernels-only;
a CSV competition keeps `kaggle-kit submit FILE`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...competitions.registry import Competition, resolve
from ...core import progress
from ...core.atomic import atomic_write_text
from ...core.errors import KitError
from ...records.run_config import CONFIG, RunConfig
from ...submissions.ledger import COMPLETE, ERROR, PENDING, UPLOAD_FAILED, Ledger, LedgerRecord
from ...submissions.provenance import file_sha256
from ..notebook import FAILURE_PREFIX, SUBMISSION_NAME
from ..package import KERNEL_META, read_package
from .client import _api, _kaggle_call, _quiet_stdout
from .credentials import _error
from .push_once import client_retry_off, create_once, dataset_versions, notebook_versions
from .submit import DEFAULT_WAIT_S, _score, stop_at_daily_limit, wait_for_score

DATASET_LIMIT_ENV = "KAGGLE_KIT_DATASET_LIMIT_BYTES"
DATASET_LIMIT_BYTES = 100 * 10**9  # Kaggle's per-dataset size limit (100 GB)
DEFAULT_NOTEBOOK_WAIT_S = 9 * 3600.0  # Kaggle stops a notebook session after 9 hours
POLL_S = (1.0, 30.0)  # first and longest pause between status checks
LOG_LINES = 3


@dataclass
class PushResult:
    competition: Competition
    dataset: str
    dataset_version: int | None
    notebook: str
    notebook_version: int
    seconds: float
    output: Path
    record: LedgerRecord | None = None
    ref: int | None = None
    public_score: float | None = None
    private_score: float | None = None


def push(
    folder: Path | str,
    message: str | None = None,
    notebook_timeout: float = DEFAULT_NOTEBOOK_WAIT_S,
    score_timeout: float = DEFAULT_WAIT_S,
    ledger: Ledger | None = None,
) -> PushResult:
    """Dataset, notebook, its run and output, then (code competitions) the submission and its score."""
    folder = Path(folder)
    manifest = read_package(folder)
    comp = resolve(manifest["competition"])
    _check_sources(folder, comp)
    _check_size(folder / "dataset")
    api = _api()
    if not _is_code_competition(api, comp):
        raise _error(
            f"{comp.slug} takes a CSV, not a notebook: predict with `kaggle-kit predict {manifest['run_dir']}` "
            "and upload with `kaggle-kit submit FILE`"
        )
    stop_at_daily_limit(api, comp)  # before the notebook's run: its submission would be refused
    dataset_version = _push_dataset(api, folder / "dataset", manifest["dataset"], message or f"run {manifest['run']}")
    version = _push_notebook(api, folder / "notebook", manifest["notebook"])
    ref, output = f"{manifest['notebook']}/{version}", folder / "output" / f"v{version}"
    try:
        seconds = _follow_notebook(api, ref, notebook_timeout, _last_seconds(folder))
    except _NotebookFailed as failed:
        raise _failure(failed, _fetch_output(api, ref, output)) from None
    _remember_seconds(folder, seconds)
    _fetch_output(api, ref, output)
    result = PushResult(comp, manifest["dataset"], dataset_version, manifest["notebook"], version, seconds, output)
    return _submit_notebook(api, result, manifest, message, score_timeout, ledger or Ledger())


# =========================================================================== checks before any upload


def _json_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise _error(f"{path} is missing or not JSON ({error}): package the run again") from None
    if not isinstance(data, dict):
        raise _error(f"{path} does not hold a JSON object: package the run again")
    return data


def _check_sources(folder: Path, comp: Competition) -> None:
    kernel = _json_file(folder / "notebook" / KERNEL_META)
    sources = kernel.get("competition_sources") or []
    if comp.slug not in sources:
        raise _error(
            f"{folder / 'notebook' / KERNEL_META} reads {', '.join(sources) or 'no competition'} but the run is "
            f"of {comp.slug}: package the run again, or put {comp.slug} in competition_sources"
        )
    config = RunConfig.from_dict(_json_file(folder / "dataset" / CONFIG))
    if resolve(str(config.competition)).name != comp.name:
        raise _error(
            f"{folder / 'dataset' / CONFIG} is a run of {config.competition}, the notebook is for "
            f"{comp.slug}: package the right run with `kaggle-kit package RUN`"
        )


def _check_size(dataset: Path) -> None:
    limit = int(os.environ.get(DATASET_LIMIT_ENV) or DATASET_LIMIT_BYTES)
    size = sum(p.stat().st_size for p in dataset.iterdir() if p.is_file())
    if size > limit:
        raise _error(
            f"{dataset} holds {size / 1e9:.2f} GB, over Kaggle's dataset limit of {limit / 1e9:.2f} GB: "
            "package a smaller model, or leave the dependency wheels out with --no-deps-wheels"
        )


def _is_code_competition(api, comp: Competition) -> bool:
    """Declared, or Kaggle's listing says only notebooks are accepted."""
    if comp.code_competition:
        return True
    from kagglesdk.competitions.types.competition_api_service import ApiListCompetitionsRequest

    with _kaggle_call(f"looking up {comp.slug} in Kaggle's competition listing", comp):
        with api.build_kaggle_client() as client:
            request = ApiListCompetitionsRequest()
            request.search = comp.slug
            listed = client.competitions.competition_api_client.list_competitions(request).competitions or []
    found = [c for c in listed if str(c.ref).rstrip("/").rsplit("/", 1)[-1] == comp.slug]
    return bool(found and found[0].is_kernels_submissions_only)


# =========================================================================== dataset and notebook


def _refused(error, what: str, ref: str) -> KitError | None:
    """A 403/404 on someone else's slug as one line with the fix; None for other failures."""
    import requests

    code = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, requests.exceptions.HTTPError) and code == 403:
        return _error(
            f"the {what} {ref} is not yours (Kaggle answered 403): its slug is taken by another user - "
            f"change the id in the package's metadata, or package again with --owner YOUR_USER"
        )
    return None


def _push_dataset(api, folder: Path, ref: str, notes: str) -> int | None:
    import requests

    progress.say(f"uploading dataset {ref}")
    with _kaggle_call(f"uploading the dataset {ref}"), _quiet_stdout():
        try:
            exists = _dataset_exists(api, ref)

            def send():
                with client_retry_off(api):
                    if exists:
                        return api.dataset_create_version(str(folder), notes, quiet=True, dir_mode="skip")
                    return api.dataset_create_new(str(folder), public=False, quiet=True, dir_mode="skip")

            page = f"https://www.kaggle.com/datasets/{ref}"
            made = create_once(f"the dataset {ref}", page, send, lambda: dataset_versions(api, ref))
        except requests.exceptions.HTTPError as error:
            refused = _refused(error, "dataset", ref)
            if refused is None:
                raise
            raise refused from None
        except ValueError as error:  # the client's own checks of the metadata
            raise _error(f"{folder / 'dataset-metadata.json'}: {error}: fix it, or package the run again") from None
    if made is not None and made.error:
        if "already in use" in str(made.error):
            raise _error(
                f"the dataset slug {ref} is already taken ({made.error}): change the id in "
                f"{folder / 'dataset-metadata.json'}"
            )
        raise _error(f"Kaggle refused the dataset {ref}: {made.error}")
    return _wait_for_dataset(api, ref)


def _dataset_exists(api, ref: str) -> bool:
    import requests

    try:
        api.dataset_status(ref)
    except requests.exceptions.HTTPError as error:
        if getattr(error.response, "status_code", None) == 404:
            return False
        raise
    return True


def _wait_for_dataset(api, ref: str, timeout: float = 3600.0) -> int | None:
    deadline, delay = time.monotonic() + timeout, POLL_S[0]
    while True:
        with _kaggle_call(f"checking the dataset {ref}"), _quiet_stdout():
            state = json.loads(api.dataset_status(ref, format="json(status,current_version_number)"))
        if state["status"] == "ready":
            return state.get("current_version_number")
        if state["status"] == "failed" or time.monotonic() > deadline:
            raise _error(
                f"Kaggle did not process the dataset {ref} (status {state['status']}): see "
                f"https://www.kaggle.com/datasets/{ref} and push again"
            )
        progress.say(f"dataset {ref}: {state['status']}, waiting for Kaggle to process it")
        time.sleep(delay)
        delay = min(delay * 2, POLL_S[1])


def _push_notebook(api, folder: Path, ref: str) -> int:
    import requests

    progress.say(f"pushing notebook {ref}")
    with _kaggle_call(f"pushing the notebook {ref}"), _quiet_stdout():
        try:
            page = f"https://www.kaggle.com/code/{ref}"
            pushed = create_once(
                f"the notebook {ref}", page, lambda: api.kernels_push(str(folder)), lambda: notebook_versions(api, ref)
            )
        except requests.exceptions.HTTPError as error:
            refused = _refused(error, "notebook", ref)
            if refused is None:
                raise
            raise refused from None
        except ValueError as error:
            raise _error(f"{folder / KERNEL_META}: {error}: fix it, or package the run again") from None
    if pushed is None:  # its answer was lost, but the version was made: the newest is it
        with _kaggle_call(f"reading the notebook {ref}"):
            return notebook_versions(api, ref)
    if pushed.error or not pushed.version_number:
        bad = pushed.invalid_dataset_sources or pushed.invalid_competition_sources or []
        raise _error(
            f"Kaggle refused the notebook {ref}: {pushed.error or 'no version made'}"
            f"{' (' + ', '.join(bad) + ')' if bad else ''}: check {folder / KERNEL_META}"
        )
    return int(pushed.version_number)


# =========================================================================== the notebook's run


def _follow_notebook(api, ref: str, timeout: float, last_seconds: float | None) -> float:
    started, delay = time.monotonic(), POLL_S[0]
    while True:
        with _kaggle_call(f"checking the notebook {ref}"), _quiet_stdout():
            try:
                state = api.kernels_status(ref)
            except ValueError as error:  # the client's wording for a 401/403 on the notebook
                raise _error(f"cannot read the notebook {ref}: {error}") from None
        status, elapsed = state.status.name, time.monotonic() - started
        if status == "COMPLETE":
            return elapsed
        if status in ("ERROR", "CANCEL_ACKNOWLEDGED", "CANCEL_REQUESTED"):
            raise _NotebookFailed(ref, state.failure_message or status, elapsed)
        if elapsed > timeout:
            raise _error(
                f"the notebook {ref} is still {status} after {timeout:g} s: Kaggle goes on running it - "
                f"see https://www.kaggle.com/code/{ref.rsplit('/', 1)[0]}, or wait longer with --timeout"
            )
        eta = (
            f", about {max(last_seconds - elapsed, 0):.0f} s left (last run {last_seconds:.0f} s)"
            if last_seconds
            else ""
        )
        progress.say(f"notebook {ref}: {status} for {elapsed:.0f} s{eta}")
        time.sleep(delay)
        delay = min(delay * 2, POLL_S[1])


class _NotebookFailed(Exception):
    def __init__(self, ref: str, reason: str, seconds: float):
        super().__init__(reason)
        self.ref, self.reason, self.seconds = ref, reason, seconds


def _last_seconds(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / "push.json").read_text())["notebook_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember_seconds(folder: Path, seconds: float) -> None:
    atomic_write_text(folder / "push.json", json.dumps({"notebook_seconds": round(seconds, 1)}))


def _fetch_output(api, ref: str, target: Path) -> Path:
    with _kaggle_call(f"fetching the output of the notebook {ref}"), _quiet_stdout():
        try:
            api.kernels_output(ref, str(target), force=True, quiet=True)
        except ValueError as error:
            raise _error(f"cannot fetch the output of the notebook {ref}: {error}") from None
    return target


def last_log_lines(log: str, count: int = LOG_LINES) -> str:
    """The end of a notebook's log, one line: Kaggle's JSON stream records or plain text; our step line first."""
    try:
        records = json.loads(log)
        text = "".join(r.get("data", "") for r in records if isinstance(r, dict))
    except (ValueError, TypeError):
        text = log
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith(FAILURE_PREFIX)]
    return " | ".join(ours[-1:] or lines[-count:]) or "the log is empty"


def _failure(failed: _NotebookFailed, output: Path) -> KitError:
    logs = sorted(output.glob("*.log"))
    said = last_log_lines(logs[0].read_text(errors="replace")) if logs else "no log came back"
    if "time" in failed.reason.lower() and "limit" in failed.reason.lower():
        return _error(
            f"the notebook {failed.ref} timed out on Kaggle after {failed.seconds:.0f} s ({failed.reason}): "
            f"turn the GPU on (enable_gpu) or predict without TTA, rehearse, and push again"
        )
    return _error(
        f"the notebook {failed.ref} failed on Kaggle ({failed.reason}): {said}; the log is in {output}: "
        "fix it, check with `kaggle-kit package RUN --rehearse`, and push again"
    )


# =========================================================================== the code submission


def _submit_notebook(
    api, result: PushResult, manifest: dict, message: str | None, timeout: float, ledger: Ledger
) -> PushResult:
    comp, output = result.competition, result.output / SUBMISSION_NAME
    if not output.is_file():
        raise _error(
            f"the notebook {result.notebook} v{result.notebook_version} wrote no {SUBMISSION_NAME}: "
            f"see its log in {result.output}"
        )
    message = (
        message or f"{manifest['run']} | notebook v{result.notebook_version} | dataset v{result.dataset_version}"
    )[:250]
    record = ledger.add(
        comp.name,
        output,
        file_sha256(output),
        run=manifest["run"],
        run_dir=manifest.get("run_dir"),
        metric=comp.metric.name,
        message=message,
        notebook=result.notebook,
        notebook_version=result.notebook_version,
        dataset=result.dataset,
        dataset_version=result.dataset_version,
        files=manifest["files"],
        local_score=_local_score(manifest),
    )
    result.record = record
    progress.say(f"submitting notebook {result.notebook} v{result.notebook_version} to {comp.slug}")
    try:
        with _kaggle_call(f"submitting the notebook {result.notebook} to {comp.slug}", comp), _quiet_stdout():
            made = api.competition_submit_code(
                SUBMISSION_NAME,
                message,
                comp.slug,
                kernel=result.notebook,
                kernel_version=result.notebook_version,
                quiet=True,
            )
    except KitError as error:
        ledger.update(record.id, status=UPLOAD_FAILED, error=str(error))
        raise
    result.ref = int(made.ref)
    ledger.update(record.id, kaggle_ref=result.ref, status=PENDING)
    scored = wait_for_score(api, comp, result.ref, timeout, f"notebook v{result.notebook_version}")
    if scored.status.name == ERROR:
        reason = " ".join((scored.error_description or "no reason given").split())
        ledger.update(record.id, status=ERROR, error=reason)
        raise _error(
            f"Kaggle could not score notebook {result.notebook} v{result.notebook_version} "
            f"(submission {result.ref}): {reason}"
        )
    result.public_score, result.private_score = _score(scored.public_score), _score(scored.private_score)
    ledger.update(record.id, status=COMPLETE, public_score=result.public_score, private_score=result.private_score)
    return result


def _local_score(manifest: dict) -> float | None:
    from ...submissions.provenance import describe_run

    try:
        return describe_run(Path("submission.csv"), manifest["competition"], manifest["run_dir"])[1].local_score
    except KitError:
        return None
