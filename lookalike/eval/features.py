"""Backbone features of a labelled collection, cached on disk so training and evaluation
reruns never embed an image twice.

The cache is ``<cache_dir>/features/<dataset>-<model>-<fingerprint>.npy`` (rows) beside a
``.keys.json`` (the item key of each row); the fingerprint identifies the exact model bytes,
so a different model never reads stale vectors. New items are appended to the cache.
"""

from __future__ import annotations

import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write, atomic_write_bytes, file_lock

logger = logging.getLogger(__name__)


def cache_path(cache_dir: Path, dataset_name: str, embedder) -> Path:
    fingerprint = getattr(embedder, "fingerprint", None) or "nofp"
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{dataset_name}-{embedder.name}-{fingerprint}")
    return Path(cache_dir) / "features" / f"{stem}.npy"


def _read(path: Path) -> tuple[list[str], np.ndarray | None]:
    keys_path = path.with_suffix(".keys.json")
    if not path.is_file() or not keys_path.is_file():
        return [], None
    keys = json.loads(keys_path.read_text())
    vectors = np.load(path)
    if len(keys) != len(vectors):
        logger.warning("feature cache %s is inconsistent (%d keys, %d rows); rebuilding", path, len(keys),
                       len(vectors))
        return [], None
    return keys, vectors


def embed_images(dataset, indices, embedder, *, batch_size: int = 64, workers: int = 2,
                 progress: bool = False, desc: str = "embedding") -> np.ndarray:
    """Embed ``dataset`` items ``indices`` → ``(len(indices), embedder.dim) float32``.

    Decoding and resizing run in ``workers`` threads while the model runs on the previous batch.
    """
    from tqdm import tqdm

    indices = [int(i) for i in indices]
    if not indices:
        return np.zeros((0, embedder.dim), np.float32)
    prepare = getattr(embedder, "prepare", None)

    def load(i: int):
        image = dataset.image(i)
        return prepare(image) if prepare is not None else image

    out = []
    bar = tqdm(total=len(indices), unit="img", desc=desc, disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prepare") as pool:
        batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        pending = pool.map(lambda batch: [load(i) for i in batch], batches)
        for items in pending:
            if prepare is not None:
                out.append(embedder.encode_prepared(np.stack(items)))
            else:
                out.append(embedder.encode(items))
            bar.update(len(items))
    bar.close()
    logger.info("embedded %d images in %.1fs", len(indices), time.perf_counter() - started)
    return np.concatenate(out).astype(np.float32, copy=False)


def extract(dataset, embedder, *, cache_dir: Path | None, batch_size: int = 64, workers: int = 2,
            progress: bool = False, checkpoint_every: int = 2048) -> np.ndarray:
    """Features of every item of ``dataset`` → ``(len(dataset), dim) float32`` (rows L2-normalised),
    reading cached rows and embedding (then caching) only the missing ones."""
    if cache_dir is None:
        return embed_images(dataset, range(len(dataset)), embedder, batch_size=batch_size, workers=workers,
                            progress=progress)
    path = cache_path(cache_dir, dataset.name, embedder)
    lock = path.with_suffix(".lock")
    with file_lock(lock):  # held only to read and write the cache, never while embedding
        keys, vectors = _read(path)
    row = {k: i for i, k in enumerate(keys)}
    first: dict[str, int] = {}  # missing key -> first item holding it (duplicates embed once)
    for i, k in enumerate(dataset.keys):
        if k not in row and k not in first:
            first[k] = i
    todo = list(first.items())
    if todo:
        logger.info("%s: embedding %d of %d images (the rest are cached)", dataset.name, len(todo), len(dataset))
    for start in range(0, len(todo), checkpoint_every):  # save as we go: an interrupted run keeps its work
        chunk = todo[start:start + checkpoint_every]
        fresh = embed_images(dataset, [i for _, i in chunk], embedder, batch_size=batch_size, workers=workers,
                             progress=progress, desc=f"embedding {dataset.name} {start + len(chunk)}/{len(todo)}")
        with file_lock(lock):
            keys, vectors = _read(path)  # another process may have added rows meanwhile
            row = {k: i for i, k in enumerate(keys)}
            new = [j for j, (k, _) in enumerate(chunk) if k not in row]
            row.update({chunk[j][0]: len(keys) + n for n, j in enumerate(new)})
            keys = keys + [chunk[j][0] for j in new]
            vectors = fresh[new] if vectors is None else np.concatenate([vectors, fresh[new]])
            atomic_write(path, lambda fh, v=vectors: np.save(fh, v))
            atomic_write_bytes(path.with_suffix(".keys.json"), json.dumps(keys).encode())
    if vectors is None:
        return np.zeros((0, embedder.dim), np.float32)
    return np.ascontiguousarray(vectors[[row[k] for k in dataset.keys]], dtype=np.float32)
