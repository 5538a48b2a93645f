"""Batch ingest: walk a folder of images, embed them in batches, add them to an index.

Three stages, timed separately: *read* (bytes + content hash, in the calling thread, to skip
what is already indexed), *prepare* (decode + resize + normalise, in worker threads) and
*embed* (batched model inference in its own thread, kept busy by a bounded window of prepared
images and a queued next batch; then the index's add in the calling thread). After
the walk, entries follow their files (edited, renamed, deleted): see :mod:`.tracking`.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LookalikeError
from ..fsutil import NotRegularFile, read_regular_file
from ..imaging import IMAGE_EXTENSIONS, decode_image
from ..limits import BATCH_SIZE, MAX_IMAGE_PIXELS
from .tracking import reconcile

logger = logging.getLogger(__name__)

# Batches handed to the model at once: one running and one queued behind it, so the next batch
# starts the moment the last one ends (two stacked batches of 16 are ~26 MB).
PIPELINE_DEPTH = 2


@dataclass
class IngestReport:
    found: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    moved: int = 0  # entries now pointing at another file with their content (renamed, moved)
    replaced: int = 0  # entries deleted because their file now holds other content
    pruned: int = 0
    total: int = 0  # entries the index holds afterwards
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "prepare": 0.0, "embed": 0.0,
                                                              "save": 0.0})

    @property
    def images_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"found": self.found, "indexed": self.indexed, "skipped": self.skipped,
                "failed": [{"path": p, "reason": r} for p, r in self.failed], "moved": self.moved,
                "replaced": self.replaced, "pruned": self.pruned, "total": self.total,
                "seconds": round(self.seconds, 3), "images_per_second": round(self.images_per_second, 1),
                "stages": {k: round(v, 3) for k, v in self.stages.items()}}


def image_id(data: bytes) -> tuple[str, str]:
    """``(id, sha256)`` of file content: the id is the first 16 hex digits of the SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    return digest[:16], digest


def walk_images(root: Path) -> Iterator[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted, hidden entries skipped."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


def label_for(path: Path) -> str:
    """The label of an image is the name of the folder that holds it."""
    return path.parent.name


class _Prepared:
    __slots__ = ("id", "meta", "array", "error", "seconds")

    def __init__(self, id, meta, array=None, error=None, seconds=0.0):
        self.id, self.meta, self.array, self.error, self.seconds = id, meta, array, error, seconds


def ingest_folder(root: Path, index, embedder, *, batch_size: int = BATCH_SIZE, workers: int = 2,
                  max_pixels: int = MAX_IMAGE_PIXELS, prune: bool = False, checkpoint_every: int = 5000,
                  progress: bool = True, save: bool = True) -> IngestReport:
    """Embed every new image under ``root`` into ``index`` and save it.

    An unreadable or corrupt file, or one that is not a regular file (a FIFO is never opened),
    is recorded in ``report.failed`` and skipped. Entries of edited, renamed and (with
    ``prune``) deleted files are updated as :mod:`.tracking` describes; an unchanged folder
    changes nothing. The index is saved every ``checkpoint_every`` new images, so an
    interrupted run keeps its progress.
    """
    from tqdm import tqdm

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise LookalikeError(f"{root} is not a folder", code="not_a_folder")
    started = time.perf_counter()
    report = IngestReport()
    paths = list(walk_images(root))
    report.found = len(paths)
    prepare = getattr(embedder, "prepare", None)
    # Arrays the model has been handed (stacked into its batch buffer) go back to the preparing
    # threads, when ``prepare`` takes ``out=``: no image maps fresh memory (0.72 -> 0.14 ms of CPU
    # scaling a demo image on the AMD VM; demo ingest paired 1.015, 16 pairs: within the noise, as
    # the cores' idle gaps absorbed the faults). list.append/pop are atomic, so no lock.
    spent: list[np.ndarray] | None = [] if prepare is not None and _takes_out(prepare) else None
    seen: set[str] = set()
    found: dict[str, str] = {}  # path -> content id of every file read
    unreadable: set[str] = set()  # files whose content is unknown: their entries stay as they are
    batch: list[_Prepared] = []
    since_checkpoint = 0
    running: deque[tuple[list[_Prepared], Future]] = deque()  # batches handed to the model, oldest first

    def encode(arrays) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        vectors = embedder.encode_prepared(arrays) if prepare is not None else embedder.encode(arrays)
        return vectors, time.perf_counter() - t

    buffers: list[np.ndarray] = []  # PIPELINE_DEPTH + 1 batch-sized arrays, used in turn
    stacked = 0
    handed = 0  # images handed to the model so far

    def stack(arrays: list[np.ndarray]) -> np.ndarray:
        """The arrays stacked into the next of a few reused batch buffers. A new 13 MB array per
        batch costs page faults each time glibc maps it afresh: 17-58 ms of CPU for some batches
        on these VMs, where stacking into memory already touched takes 1.5 ms. At most
        PIPELINE_DEPTH batches are in flight when one is stacked, so the buffer reused is free."""
        nonlocal stacked
        if not buffers or buffers[0].shape[1:] != arrays[0].shape or buffers[0].dtype != arrays[0].dtype:
            buffers[:] = [np.empty((batch_size, *arrays[0].shape), arrays[0].dtype) for _ in range(PIPELINE_DEPTH + 1)]
        buffer = buffers[stacked % len(buffers)]
        stacked += 1
        return np.stack(arrays, out=buffer[:len(arrays)])

    def flush() -> None:
        """Hand the batch to the model thread; while it runs, this thread reads and stacks the next
        one, so the model goes from batch to batch without waiting for Python in between."""
        nonlocal handed
        if not batch:
            return
        handed += len(batch)
        items = batch[:]
        batch.clear()
        arrays = stack([p.array for p in items]) if prepare is not None else [p.array for p in items]
        for p in items:
            if spent is not None and len(spent) < limit + batch_size:  # no more than are ever in flight
                spent.append(p.array)
            p.array = None  # the stacked copy is what the model reads
        running.append((items, model.submit(encode, arrays)))
        while len(running) > PIPELINE_DEPTH:
            finish()

    def finish() -> None:
        nonlocal since_checkpoint
        items, future = running.popleft()
        vectors, seconds = future.result()
        t = time.perf_counter()
        index.add([p.id for p in items], vectors, [p.meta for p in items])
        report.stages["embed"] += seconds + time.perf_counter() - t
        report.indexed += len(items)
        since_checkpoint += len(items)
        if save and since_checkpoint >= checkpoint_every:
            _save(index, report)  # the model meanwhile runs the batch queued behind this one
            since_checkpoint = 0

    def work(path: Path, id_: str, sha: str, data: bytes) -> _Prepared:
        t = time.perf_counter()
        meta = {"path": str(path), "label": label_for(path), "sha256": sha}
        try:
            # Grey images stay one plane for ``prepare`` (identical arrays, a third of the resizing).
            image = decode_image(data, max_pixels=max_pixels, grey=prepare is not None)
            if spent is not None:
                try:
                    out = spent.pop()
                except IndexError:  # none spent yet (the first images), or all in use
                    out = None
                array = prepare(image, out=out)
            else:
                array = prepare(image) if prepare is not None else image
            return _Prepared(id_, meta, array, seconds=time.perf_counter() - t)
        except LookalikeError as exc:
            return _Prepared(id_, meta, error=exc.message, seconds=time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - one bad file must never abort the run
            return _Prepared(id_, meta, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t)

    early = max(1, batch_size // 4)

    def model_idle() -> bool:
        return not running or running[-1][1].done()  # the model thread runs batches in order

    bar = tqdm(total=len(paths), unit="img", disable=not progress, dynamic_ncols=True, desc="indexing")
    window: deque[Future] = deque()
    limit = max(2 * batch_size, 4 * workers)

    def drain(until: int) -> None:
        # Take prepared images as soon as they are ready (so the first batch starts as soon as it is
        # full); wait for one only while more than ``until`` are in flight.
        while window and (len(window) > until or window[0].done()):
            item = window.popleft().result()
            report.stages["prepare"] += item.seconds
            if item.error is not None:
                report.failed.append((item.meta["path"], item.error))
                logger.warning("skipped %s: %s", item.meta["path"], item.error)
            else:
                batch.append(item)
                # A full batch goes to the model; so does a quarter of one when the model has
                # nothing to do (the first images of a run, a stall in preparing): waiting would
                # leave it idle, and it runs a short batch about as fast per image (OpenVINO runs
                # one or two images a request anyway). Demo ingest: 239.6 -> 250.9 img/s, ten runs each.
                # A batch also ends at a checkpoint, so each save holds exactly a multiple of
                # ``checkpoint_every`` new images, however the batches were cut.
                if len(batch) >= batch_size or (len(batch) >= early and model_idle()) \
                        or (save and (handed + len(batch)) % checkpoint_every == 0):
                    flush()
            bar.update(1)
            if progress:  # formatting the counters costs ~10 µs an image even with the bar off
                bar.set_postfix(new=report.indexed + len(batch), skipped=report.skipped, failed=len(report.failed),
                                refresh=False)

    # The preparing threads run at the caller's priority. They once ran 10 levels nicer, when ONNX
    # Runtime's spinning threads met at a barrier that a preempted thread stalled; its bulk session
    # no longer spins (a stalled barrier leaves the core to the thread that preempted it), and
    # OpenVINO's streams are one thread each, with no barrier between them. Niced, they ran only
    # when the model idled, so the model got quarter batches: fresh-process demo ingests at equal
    # priority ran 1.064x and 1.055x (16 and 12 pairs, Zen 4 VM, OpenVINO int8); Fashion-MNIST 2k
    # 1.014x, ONNX Runtime fp32 1.005x (docs/BENCHMARKS.md).
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") as model:
        for path in paths:
            t = time.perf_counter()
            try:
                data = read_regular_file(path)
            except OSError as exc:
                report.stages["read"] += time.perf_counter() - t
                report.failed.append((str(path), f"cannot read: {exc.strerror or exc}"))
                if not isinstance(exc, (NotRegularFile, FileNotFoundError)):  # gone is not unknown
                    unreadable.add(str(path))
                bar.update(1)
                continue
            id_, sha = image_id(data)
            found[str(path)] = id_
            report.stages["read"] += time.perf_counter() - t
            if id_ in index or id_ in seen:
                report.skipped += 1
                bar.update(1)
                continue
            seen.add(id_)
            window.append(pool.submit(work, path, id_, sha, data))
            drain(limit)
        drain(0)
        flush()
        while running:
            finish()
    bar.close()

    changes = reconcile(index, root, found, unreadable, prune=prune, label_for=label_for)
    report.moved, report.replaced, report.pruned = changes.moved, changes.replaced, changes.pruned
    if save and (report.indexed or changes or not _saved(index)):
        _save(index, report)
    report.seconds = time.perf_counter() - started
    report.total = len(index)
    return report


def _takes_out(prepare) -> bool:
    """Whether ``prepare`` accepts ``out=`` (lookalike's embedders do; a plain protocol one may not)."""
    try:
        return "out" in inspect.signature(prepare).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin)
        return False


def _saved(index) -> bool:
    return getattr(index, "generation", 1) > 0


def _save(index, report: IngestReport) -> None:
    t = time.perf_counter()
    index.save()
    report.stages["save"] += time.perf_counter() - t
