"""`download`: the competition's whole bundle, fetched once with the official client, verified, unpacked."""

from __future__ import annotations

import json
import lzma
import os
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ...competitions.registry import Competition
from ...core import progress
from ...core.archive import check_free_space
from ...core.errors import KitError
from ...core.json_files import read_json_object
from .client import _api, _competition, _kaggle_call, _quiet_stdout
from .credentials import _error

DOWNLOAD_STAMP = ".kaggle-kit-download.json"


# =========================================================================== download


@dataclass
class DownloadResult:
    competition: Competition
    data_dir: Path
    archive: Path | None  # the verified download zip (None when the data was already unpacked without one)
    downloaded: bool  # False: already there, nothing fetched
    size: int  # bytes of the archive
    root: Path  # the unpacked data
    n_train: int
    n_test: int
    n_classes: int


def _stamp(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "verified": "zip CRCs"}


def _verify_zip(path: Path, what: str, fix: str) -> None:
    """Every member's CRC, so that a damaged download is caught before anything is unpacked."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        NotImplementedError,
        RuntimeError,
    ) as error:
        # zlib/lzma: a member's compressed bytes are damaged; NotImplementedError: an unknown compression method;
        # RuntimeError: an encrypted member
        raise _error(f"{what} is not a readable zip ({type(error).__name__}: {error}): {fix}") from None
    if bad is not None:
        raise _error(f"{what} is damaged (member {bad} fails its CRC check): {fix}")


def _verified(archive: Path, comp: Competition) -> None:
    """Check an existing download once; a stamp beside it skips the check until the file changes."""
    stamp_path = archive.parent / DOWNLOAD_STAMP
    if read_json_object(stamp_path) == _stamp(archive):
        return
    _verify_zip(archive, str(archive), f"delete it and run `kaggle-kit download {comp.name} --force`")
    _write_stamp(archive)


def _write_stamp(archive: Path) -> None:
    stamp_path = archive.parent / DOWNLOAD_STAMP
    tmp = stamp_path.with_name(stamp_path.name + ".tmp")
    tmp.write_text(json.dumps(_stamp(archive)))
    os.replace(tmp, stamp_path)


def _unpack_and_read(comp: Competition, data_dir: Path, archive: Path | None, downloaded: bool) -> DownloadResult:
    from ...core import archive as archives

    if archive is not None and downloaded:
        members = archives.zip_members(archive)
        check_free_space(data_dir, sum(m.file_size for m in members), f"unpacking {archive.name}")
    from ...data.layout import open_layout

    layout = open_layout(comp, data_dir)  # unpacking takes its own lock: concurrent processes are safe
    return DownloadResult(
        competition=comp,
        data_dir=data_dir,
        archive=archive,
        downloaded=downloaded,
        size=archive.stat().st_size if archive is not None else 0,
        root=layout.root,
        n_train=len(layout.train.ids),
        n_test=len(layout.test.ids),
        n_classes=len(layout.classes),
    )


def download(competition: Competition | str, data_dir: Path | str | None = None, force: bool = False) -> DownloadResult:
    """Fetch the competition's whole bundle once with the official client, verify it, unpack it.

    Re-running is a no-op: a verified `<slug>.zip` (or an already unpacked folder) in `data_dir` is
    used as it is, without contacting Kaggle, unless `force`. The bundle is written as
    `<slug>.zip.part` and renamed only once its size and every member's CRC check out.
    """
    from ...data.layout import UNPACK_MARKER, default_data_dir

    comp = _competition(competition)
    data_dir = Path(data_dir) if data_dir else default_data_dir(comp)
    if data_dir.exists() and not data_dir.is_dir():
        raise _error(f"--data-dir {data_dir} is a file: pass the folder to download into (default data/{comp.slug})")
    archive = data_dir / comp.archive_name
    if not force:
        if archive.is_file():
            _verified(archive, comp)
            try:
                return _unpack_and_read(comp, data_dir, archive, downloaded=False)
            except KitError as error:  # unpacked files deleted or damaged since: unpack the verified zip again
                print(f"warning: {data_dir} is incomplete ({error}); unpacking {archive.name} again", file=sys.stderr)
                (data_dir / UNPACK_MARKER).unlink(missing_ok=True)
                return _unpack_and_read(comp, data_dir, archive, downloaded=True)
        if (data_dir / comp.sample_file).is_file():
            try:
                return _unpack_and_read(comp, data_dir, None, downloaded=False)
            except KitError as error:  # unpacked files without their zip, some missing or broken: fetch them again
                print(
                    f"warning: {data_dir} holds an incomplete download ({error}); downloading {comp.slug} again",
                    file=sys.stderr,
                )

    fetch(comp, data_dir)
    return _unpack_and_read(comp, data_dir, archive, downloaded=True)


def fetch(comp: Competition, data_dir: Path) -> Path:
    """The bundle as `data_dir/<slug>.zip`, fetched with the official client and verified; nothing unpacked or read
    (`init` fetches a competition it has no declaration of yet: only the slug and names of `comp` are used)."""
    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    from ...data.layout import UNPACK_MARKER

    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / comp.archive_name
    api = _api()
    partial = archive.with_name(archive.name + ".part")
    action = f"downloading {comp.slug}"
    progress.say(f"downloading {comp.slug} from Kaggle into {data_dir}")
    with _kaggle_call(action, comp):
        with api.build_kaggle_client() as client:
            request = ApiDownloadDataFilesRequest()
            request.competition_name = comp.slug
            response = client.competitions.competition_api_client.download_data_files(request)
            served = response.url.split("?")[0].rsplit("/", 1)[-1]
            if not served.endswith(".zip"):
                response.close()
                raise _error(
                    f"Kaggle served {served} for {comp.slug}, not a zip: "
                    "kaggle-kit reads only the zip bundle; report this"
                )
            expected = int(response.headers.get("Content-Length") or 0) or None
            if expected:
                have = partial.stat().st_size if partial.is_file() else 0
                check_free_space(data_dir, expected - have, f"downloading {comp.archive_name}")
            try:
                with _quiet_stdout():
                    api.download_file(
                        response, str(partial), client.http_client(), quiet=not progress.enabled(), resume=True
                    )
            except ValueError as error:  # the client's size check: fewer bytes than Content-Length
                raise _error(
                    f"the download of {comp.archive_name} stopped early ({error}): run the command again to resume"
                ) from None
    if expected and partial.stat().st_size != expected:
        raise _error(
            f"{partial}: {partial.stat().st_size} bytes, Kaggle announced {expected}: run the command again to resume"
        )
    try:
        _verify_zip(
            partial,
            f"the download of {comp.archive_name}",
            f"it was deleted - run `kaggle-kit download {comp.name}` again",
        )
    except KitError:
        partial.unlink(missing_ok=True)
        Path(str(partial) + ".kaggle-partial").unlink(missing_ok=True)
        raise
    os.replace(partial, archive)
    _write_stamp(archive)
    # a new bundle replaces every unpacked file, even when Kaggle's Last-Modified gives it the old zip's stamp
    (data_dir / UNPACK_MARKER).unlink(missing_ok=True)
    return archive
