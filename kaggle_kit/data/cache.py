"""Decode every image once into a uint8 memory-mapped cache, so no epoch decodes PNG or JPEG again.

A cache folder holds `pixels.u8` (all images back to back, RGB, HxWx3) and `index.npz` (ids, start
offsets, shapes, ids that failed to decode). It is built in a staging folder and renamed into place,
so an interrupted build is redone rather than half-used. Its name carries the split, the size and a
fingerprint of the images, so changed data gets a new cache.

Images of a fixed native size (CIFAR-10) are stored in id order as one (N, H, W, 3) block that can be
moved to the GPU whole; photos (Dog Breed) are downscaled to a shorter side of `short_side`, aspect kept.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import archive, faults, progress
from ..core.errors import KitError
from ..core.locks import InUse, exclusive, unused
from .layout import ImageSet, Layout

CHUNK = 256  # images per decode task: large enough to amortise pickling, small enough to stream


def decode(data: bytes, native_size: int | None, short_side: int | None) -> np.ndarray | None:
    """RGB uint8 HxWx3, or None when the bytes are not a decodable image."""
    import cv2

    if not data:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return None
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    if native_size:
        if (h, w) != (native_size, native_size):
            image = cv2.resize(image, (native_size, native_size), interpolation=cv2.INTER_AREA)
    elif short_side and min(h, w) > short_side:
        scale = short_side / min(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _decode_chunk(args) -> list[np.ndarray | None]:
    import cv2

    cv2.setNumThreads(0)  # 0, not 1: setNumThreads(1) in a child forked after the parent used OpenCV threads hangs
    items, native_size, short_side, from_paths = args
    out = []
    for item in items:
        if from_paths:
            try:
                item = Path(item).read_bytes()
            except OSError:
                item = b""
        out.append(decode(item, native_size, short_side))
    return out


@dataclass
class ImageCache:
    path: Path
    ids: list[str]
    starts: np.ndarray
    shapes: np.ndarray
    bad_ids: list[str] = field(default_factory=list)
    freshly_built: bool = False
    in_use: InUse | None = field(default=None, repr=False)  # a joined cache's mark: not removed while read
    _pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:  # opened lazily so DataLoader workers map the file themselves
            self._pixels = np.memmap(self.path / "pixels.u8", dtype=np.uint8, mode="r")
        return self._pixels

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pixels"] = None
        state["in_use"] = None  # the lock is this process's (a worker closing its descriptor would drop it)
        return state

    def release(self) -> None:
        """Done reading: a joined cache may now be removed by another run (`joined_cache`)."""
        if self.in_use is not None:
            self.in_use.release()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> np.ndarray:
        h, w, c = self.shapes[i]
        start = self.starts[i]
        return self.pixels[start : start + h * w * c].reshape(h, w, c)

    def is_uniform(self) -> bool:
        if len(self) == 0:
            return False
        first = self.shapes[0]
        size = int(np.prod(first))
        return bool((self.shapes == first).all() and (self.starts == np.arange(len(self)) * size).all())

    def uniform_array(self) -> np.ndarray:
        """All images as one (N, H, W, 3) memory-mapped array (fixed-size datasets only)."""
        if not self.is_uniform():
            raise KitError(f"{self.path}: images differ in size, so they cannot form one array; use the per-image path")
        h, w, c = self.shapes[0]
        return self.pixels[: len(self) * h * w * c].reshape(len(self), h, w, c)

    def nbytes(self) -> int:
        return int(np.prod(self.shapes, axis=1).sum())


def cache_dir(layout: Layout, split: str, short_side: int | None) -> Path:
    images = layout.train if split == "train" else layout.test
    size = layout.competition.native_size or short_side or "full"
    return layout.work_dir / "cache" / f"{split}-{size}-{images.fingerprint()}"


def open_cache(path: Path) -> ImageCache | None:
    index_path = path / "index.npz"
    if not index_path.is_file():
        return None
    try:
        index = np.load(index_path, allow_pickle=False)
        meta = json.loads((path / "meta.json").read_text())
        # pixels.u8 lost or cut short (a full disk, a partial copy of the data folder): rebuild, never read past it
        needed = int((index["starts"] + np.prod(index["shapes"], axis=1)).max()) if len(index["starts"]) else 0
        if (path / "pixels.u8").stat().st_size < needed:
            return None
        return ImageCache(
            path=path,
            ids=index["ids"].tolist(),
            starts=index["starts"],
            shapes=index["shapes"],
            bad_ids=meta.get("bad_ids", []),
        )
    except (OSError, ValueError, KeyError):
        return None  # damaged: rebuilt by the caller


def load_images(layout: Layout, split: str, short_side: int | None = None, skip_bad: bool = False) -> ImageCache:
    """The decoded cache of one split ("train" or "test"), built on first use."""
    images = layout.train if split == "train" else layout.test
    path = cache_dir(layout, split, short_side)
    cache = open_cache(path)
    if cache is None:
        with exclusive(path.parent / f".{path.name}.lock"):  # DDP ranks share one build
            cache = open_cache(path) or _build(layout, images, path, split, short_side, skip_bad)
    _check_bad(cache, images, skip_bad)
    return cache


def _check_bad(cache: ImageCache, images: ImageSet, skip_bad: bool) -> None:
    if cache.bad_ids and not skip_bad:
        shown = ", ".join(str(images.path(i)) for i in cache.bad_ids[:5])
        more = f" and {len(cache.bad_ids) - 5} more" if len(cache.bad_ids) > 5 else ""
        raise KitError(
            f"{len(cache.bad_ids)} image(s) do not decode: {shown}{more}; "
            "replace them (download again) or pass --skip-bad-images"
        )


def _payloads(images: ImageSet):
    """(index, bytes-or-path) for every id, in the order the source yields them most cheaply."""
    position = {images.member(i): n for n, i in enumerate(images.ids)}
    if images.kind == "folder":
        for n, image_id in enumerate(images.ids):
            yield n, str(images.source / f"{image_id}{images.ext}")
    elif images.kind == "zip":
        for name, data in archive.iter_zip_members(images.source, [images.member(i) for i in images.ids]):
            yield position[name], data
    else:
        # 7z is solid: decompress once, front to back, in a thread, handing members over as they appear
        import queue
        import threading

        members: queue.Queue = queue.Queue(maxsize=4 * CHUNK)
        failure: list[BaseException] = []

        def produce():
            try:
                archive.stream_7z(images.source, lambda name, data: members.put((name, data)))
            except BaseException as error:  # re-raised in the consumer
                failure.append(error)
            finally:
                members.put(None)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        while (item := members.get()) is not None:
            name, data = item
            if name in position:
                yield position[name], data
        thread.join()
        if failure:
            raise failure[0]


def _bounded_map(pool, fn, tasks, window: int):
    """`pool.map` that keeps only `window` tasks in flight, so a 300,000-image set streams."""
    from collections import deque

    pending: deque = deque()
    for task in tasks:
        pending.append(pool.submit(fn, task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _chunks(payloads, size):
    batch_idx, batch = [], []
    for n, item in payloads:
        batch_idx.append(n)
        batch.append(item)
        if len(batch) == size:
            yield batch_idx, batch
            batch_idx, batch = [], []
    if batch:
        yield batch_idx, batch


@contextmanager
def _staged(path: Path):
    """A folder to build the cache `path` in, renamed into place when the block finishes and removed when it fails:
    no reader ever opens a half-built cache."""
    staging = path.parent / f".{path.name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    number = faults.begin("cache", path)
    try:
        yield staging
        faults.at(number, "partial", staging)
        if path.exists():
            shutil.rmtree(path)
        faults.at(number, "synced", staging)
        os.replace(staging, path)
    except BaseException as error:
        needed = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()) if staging.exists() else 0
        shutil.rmtree(staging, ignore_errors=True)
        faults.raise_if_full(error, path, needed)
        raise
    faults.at(number, "done", path)


def decode_seconds(layout: Layout, split: str, short_side: int | None, sample: int = 32) -> float | None:
    """Seconds building `split`'s cache costs per image: `sample` of its images decoded here as `_build` decodes
    them, divided by the processes `_build` decodes in. None for a 7z archive (solid: no image is read without
    decompressing those before it; its 32x32 PNGs cost little next to inference)."""
    import time

    images = layout.train if split == "train" else layout.test
    if images.kind not in ("folder", "zip") or not images.ids:
        return None
    count, started = 0, time.perf_counter()
    for _, payload in _payloads(images):
        data = Path(payload).read_bytes() if isinstance(payload, str) else payload
        decode(data, layout.competition.native_size, short_side)
        count += 1
        if count == sample:
            break
    elapsed = time.perf_counter() - started
    workers = min(os.cpu_count() or 1, 8) if len(images.ids) > CHUNK else 1  # as `_build` starts its pool
    return elapsed / count / workers


def _write_index(staging: Path, ids, starts: np.ndarray, shapes: np.ndarray, meta: dict) -> None:
    np.savez(staging / "index.npz", ids=np.array(list(ids), dtype=str), starts=starts, shapes=shapes)
    (staging / "meta.json").write_text(json.dumps(meta))


def _build(
    layout: Layout, images: ImageSet, path: Path, split: str, short_side: int | None, skip_bad: bool
) -> ImageCache:
    comp = layout.competition
    native = comp.native_size
    n = len(images.ids)
    starts = np.zeros(n, dtype=np.int64)
    shapes = np.zeros((n, 3), dtype=np.int32)
    bad: list[int] = []
    from_paths = images.kind == "folder"
    workers = min(os.cpu_count() or 1, 8)
    with _staged(path) as staging:
        pixels_path = staging / "pixels.u8"
        block = None
        if native and n:
            # fixed size: one preallocated (N, H, W, 3) block, each image written at its id's slot
            block = np.memmap(pixels_path, dtype=np.uint8, mode="w+", shape=(n, native, native, 3))
        indices: list[list[int] | None] = []

        def tasks():
            for idx, batch in _chunks(_payloads(images), CHUNK):
                indices.append(idx)
                yield (batch, native, short_side, from_paths)

        pool = ProcessPoolExecutor(workers) if n > CHUNK and workers > 1 else None
        try:
            with open(pixels_path, "ab") as out, progress.bar(n, f"decoding {split} images") as bar:
                offset = 0
                results = (
                    _bounded_map(pool, _decode_chunk, tasks(), 3 * workers) if pool else map(_decode_chunk, tasks())
                )
                for k, decoded in enumerate(results):
                    for i, image in zip(indices[k], decoded):
                        if image is None:
                            bad.append(i)
                            image = np.full((native or 1, native or 1, 3), 127, np.uint8)
                        shapes[i] = image.shape
                        if block is not None:
                            block[i] = image
                            starts[i] = i * image.nbytes
                        else:
                            starts[i] = offset
                            out.write(image.tobytes())
                            offset += image.nbytes
                    indices[k] = None
                    bar.advance(len(decoded))
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        if block is not None:
            block.flush()
            del block
        bad_ids = [images.ids[i] for i in sorted(bad)]
        if bad_ids and not skip_bad:
            cache = ImageCache(path, images.ids, starts, shapes, bad_ids)
            _check_bad(cache, images, skip_bad)
        meta = {"split": split, "short_side": short_side, "native_size": native, "count": n, "bad_ids": bad_ids}
        _write_index(staging, images.ids, starts, shapes, meta)
    # caches of this split and size for earlier data (the fingerprint changed) are never read again: a stale copy
    # of CIFAR-10's test set is 0.9 GB (a process still reading one keeps its mapping until it closes it)
    prefix = path.name.rsplit("-", 1)[0] + "-"
    for stale in path.parent.glob(f"{prefix}*"):
        if stale != path and stale.is_dir() and (stale / "index.npz").is_file():
            shutil.rmtree(stale, ignore_errors=True)
    cache = open_cache(path)
    cache.freshly_built = True
    return cache


def joined_cache(first: ImageCache, second: ImageCache, positions: np.ndarray, work_dir: Path) -> ImageCache:
    """One cache of every image of `first` followed by `second[positions]` (pseudo-labelled test images after the
    training images), so every data path (device-resident, DataLoader workers, feature cache) reads it as any
    cache. Built once per selection in `work_dir/cache`, staged and renamed into place like a decoded cache.

    Its name is its content (both caches' names, which carry their data's fingerprint, and the chosen positions):
    the same source, threshold and data reuse it, and a resumed run finds it again. Every other joined cache is
    a copy of the training cache that only a run reading it now needs (a later one rebuilds it from its
    pseudo_labels.csv), so each call removes those no process marks in use: the folder holds the selections
    being trained on, not every one ever made. The caller releases its mark when it is done (`release`)."""
    import hashlib

    positions = np.asarray(positions, dtype=np.int64)
    key = hashlib.sha1(f"{first.path.name}/{second.path.name}/".encode() + positions.tobytes()).hexdigest()[:16]
    path = work_dir / "cache" / f"joined-{first.path.name}+{len(positions)}-{key}"
    in_use = InUse(path.parent / f".{path.name}.inuse")  # marked before it is opened: nothing removes it under us
    cache = open_cache(path)
    if cache is None:
        with exclusive(path.parent / f".{path.name}.lock"):
            cache = open_cache(path) or _build_joined(first, second, positions, path)
    cache.in_use = in_use
    _remove_unused_joined(path)
    return cache


def _remove_unused_joined(keep: Path) -> None:
    # the lock files stay: removing one another process has open would let two processes lock two different files
    for other in sorted(keep.parent.glob("joined-*")):
        if other == keep or not other.is_dir():
            continue
        with unused(other.parent / f".{other.name}.inuse") as free:
            if free:
                shutil.rmtree(other, ignore_errors=True)


def _build_joined(first: ImageCache, second: ImageCache, positions: np.ndarray, path: Path) -> ImageCache:
    with _staged(path) as staging:
        head = int((first.starts + np.prod(first.shapes, axis=1)).max()) if len(first) else 0
        with open(staging / "pixels.u8", "wb") as out:
            with open(first.path / "pixels.u8", "rb") as source:
                shutil.copyfileobj(source, out)
            out.truncate(head)  # what lies past the last image (nothing, in a cache built here) is not copied
            out.seek(head)
            for i in positions:
                out.write(np.ascontiguousarray(second[int(i)]).tobytes())
        shapes = np.concatenate([first.shapes, second.shapes[positions]]).astype(np.int32)
        sizes = np.prod(second.shapes[positions], axis=1).astype(np.int64)
        starts = np.concatenate([first.starts, head + np.cumsum(sizes) - sizes])
        ids = list(first.ids) + [second.ids[int(i)] for i in positions]
        meta = {"joined": [first.path.name, second.path.name], "count": len(ids), "bad_ids": first.bad_ids}
        _write_index(staging, ids, starts, shapes, meta)
    return open_cache(path)
