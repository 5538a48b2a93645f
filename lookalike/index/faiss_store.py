"""The FAISS index's folder on disk: generations of files, the manifest naming one, the locks.

Saving writes a new *generation* of files, each via temp file + fsync + rename, then
atomically replaces ``manifest.json`` to point at it, then removes older generations. A
crash at any point leaves the previous manifest and its files intact; what a killed save
leaves behind (temp files, an unreferenced generation) is removed by the next save, under
the same lock, before it writes. A save that fails (a full disk) removes its own new files
and raises :class:`SaveError`, with the previous generation still the saved one.

Commands that load, change and save (``lookalike index``, ``lookalike delete``) hold the
*writer lock* for the whole run, so one cannot save over changes the other made meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailable, ConfigError, LookalikeError
from ..fsutil import atomic_write, atomic_write_bytes, file_lock, fsync_dir, temp_pattern

logger = logging.getLogger(__name__)

FORMAT = "lookalike-faiss/1"
MANIFEST = "manifest.json"
SAVE_LOCK = ".lock"  # held by one save at a time
WRITER_LOCK = ".ingest.lock"  # held by a whole `lookalike index` or `lookalike delete`
PARAMS = ("hnsw_threshold", "m", "ef_construction", "ef_search")
GENERATION_FILE = re.compile(r"^(?:vectors|metadata|hnsw)-\d+\.(?:npy|json|faiss)$")
# Only the temp files atomic_write makes for this folder's own files: anything else is not ours.
TEMP_FILE = temp_pattern(r"manifest\.json|(?:vectors|metadata|hnsw)-\d+\.(?:npy|json|faiss)")


class CorruptIndex(ConfigError):
    """The index folder cannot be read as an index: a damaged manifest or generation file."""

    code = "index_corrupt"


class SaveError(LookalikeError):
    """A save failed (e.g. the disk is full); the previously saved generation is still intact."""

    code = "save_failed"


class IndexBusy(LookalikeError):
    """Another command holds the writer lock."""

    status = 409
    code = "index_busy"


def damaged(path: Path, detail: str) -> CorruptIndex:
    return CorruptIndex(f"the index in {path} is damaged: {detail}; restore the folder from a backup, or move it "
                        f"aside and rebuild it with `lookalike index DIR --index-dir {path}`")


# ----- reading ---------------------------------------------------------------------------
def read_manifest(path: Path) -> dict[str, Any]:
    """The checked manifest of the index in ``path`` (BackendUnavailable when there is none)."""
    try:
        raw = (path / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise BackendUnavailable(f"No index at {path}: build one with `lookalike index DIR --index-dir {path}`.")\
            from None
    except OSError as exc:
        raise damaged(path, f"cannot read {MANIFEST} ({exc.strerror or exc})") from None
    try:
        manifest = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise damaged(path, f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise damaged(path, f"{MANIFEST} holds {type(manifest).__name__}, not an object")
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{path / MANIFEST}: unsupported format {manifest.get('format')!r}, expected {FORMAT}")
    files, params = manifest.get("files"), manifest.get("params")
    problems = [f"{key!r} is not a positive integer" for key in ("generation", "dim")
                if not _is_int(manifest.get(key), 1)]
    problems += ["'count' is not an integer"] if not _is_int(manifest.get("count"), 0) else []
    if not isinstance(files, dict) or not all(isinstance(files.get(k), str) for k in ("vectors", "metadata")):
        problems.append("'files' does not name the vectors and metadata")
    elif not all(isinstance(v, str) and GENERATION_FILE.match(v) for v in files.values()):
        problems.append("'files' names files that are not the index's own")
    if not isinstance(manifest.get("model", {}), (dict, type(None))):
        problems.append("'model' is not an object")
    if not isinstance(params, dict) or not all(_is_int(params.get(k), 0) for k in PARAMS):
        problems.append(f"'params' lacks one of {', '.join(PARAMS)}")
    if problems:
        raise damaged(path, f"{MANIFEST}: " + "; ".join(problems))
    manifest["params"] = {k: params[k] for k in PARAMS}
    return manifest


def read_index(path: Path) -> tuple[dict[str, Any], np.ndarray, list[dict[str, Any]]]:
    """``(manifest, (n, dim) float32 vectors, n metadata records)`` of the saved generation."""
    for _ in range(3):
        manifest = read_manifest(path)
        try:
            return (manifest, *_read_generation_files(path, manifest))
        except FileNotFoundError as exc:
            if read_generation(path) == manifest["generation"]:
                raise damaged(path, f"{Path(exc.filename).name} is missing") from None
            # A save replaced the generation between reading the manifest and its files: read the new one.
    raise BackendUnavailable(f"the index in {path} keeps changing while being read; try again")


def _read_generation_files(path: Path, manifest: Mapping[str, Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    files = manifest["files"]
    try:
        vectors = np.load(path / files["vectors"], allow_pickle=False)
        records = json.loads((path / files["metadata"]).read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise damaged(path, f"a file of generation {manifest['generation']} cannot be read ({exc})") from None
    if vectors.ndim != 2 or vectors.shape[1] != manifest["dim"]:
        raise damaged(path, f"{files['vectors']} holds an array of shape {vectors.shape}, "
                            f"expected (n, {manifest['dim']})")
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str)
                                                for r in records):
        raise damaged(path, f"{files['metadata']} is not a list of records with ids")
    if len(records) != len(vectors) or manifest["count"] != len(vectors):
        raise damaged(path, f"the manifest says {manifest['count']} entries, the files hold {len(vectors)} vectors "
                            f"and {len(records)} records")
    if len({r["id"] for r in records}) != len(records):
        raise damaged(path, f"{files['metadata']} holds the same id twice")
    return np.ascontiguousarray(vectors, dtype=np.float32), records


def read_structure(file: Path):
    """The saved HNSW graph, or None (rebuilt from the vectors on first use) when it is unreadable."""
    import faiss

    try:
        return faiss.read_index(str(file))
    except RuntimeError as exc:  # the vectors are the source of truth: the graph can be rebuilt
        logger.warning("cannot read %s (%s); rebuilding the HNSW graph from the vectors", file, exc)
        return None


def read_generation(path: Path) -> int:
    """The saved generation number, 0 when there is no readable manifest."""
    try:
        return int(json.loads((path / MANIFEST).read_bytes())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# ----- writing ---------------------------------------------------------------------------
def save_generation(path: Path, after: int, *, vectors: np.ndarray, records: list[dict[str, Any]],
                    hnsw: Callable[[], bytes] | None, header: Mapping[str, Any]) -> int:
    """Save a new generation and point the manifest at it; returns its number.

    It holds ``vectors`` ``(n, dim) float32``, ``records`` and, if given, ``hnsw()``'s bytes,
    numbered above both ``after`` and the generation on disk.
    """
    gen, files = 0, {}
    try:
        path.mkdir(parents=True, exist_ok=True)
        with file_lock(path / SAVE_LOCK):
            remove_leftovers(path, keep=_referenced(path))  # a killed save's files: free their space first
            gen = max(read_generation(path), after) + 1
            files = {"vectors": f"vectors-{gen:06d}.npy", "metadata": f"metadata-{gen:06d}.json"}
            try:
                atomic_write(path / files["vectors"], lambda fh: write_npy(fh, vectors))
                atomic_write_bytes(path / files["metadata"], json.dumps(records).encode())
                if hnsw is not None:
                    files["hnsw"] = f"hnsw-{gen:06d}.faiss"
                    atomic_write_bytes(path / files["hnsw"], hnsw())
                manifest = {"format": FORMAT, "generation": gen, **header, "files": files}
                atomic_write_bytes(path / MANIFEST, json.dumps(manifest, indent=2).encode())
            except BaseException:
                if read_generation(path) != gen:  # not committed: these files are nobody's
                    for name in files.values():
                        with contextlib.suppress(OSError):
                            (path / name).unlink()
                raise
            fsync_dir(path)
            with contextlib.suppress(OSError):  # the new generation is saved; leftovers go next time
                remove_leftovers(path, keep=set(files.values()))
    except OSError as exc:
        raise _save_error(path, exc, committed=bool(files) and read_generation(path) == gen) from None
    return gen


def write_npy(fh, array: np.ndarray) -> None:
    """Write ``array`` in ``.npy`` format (what ``np.save`` writes) through ``fh.write``.

    ``np.save`` on a real file writes with ``tofile``, whose failure on a full disk is an
    OSError without an errno ("239360 requested and 147424 written"); ``fh.write`` says ENOSPC.
    """
    array = np.ascontiguousarray(array)
    np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
    if array.size:  # a view of no elements cannot be cast to bytes
        fh.write(memoryview(array).cast("B"))


def _save_error(path: Path, exc: OSError, *, committed: bool) -> SaveError:
    where = f" ({Path(exc.filename).name})" if exc.filename else ""
    what = f"{exc.strerror or exc}{where}"
    if committed:
        return SaveError(f"saved the index in {path}, but could not make it durable: {what}")
    hint = "; free some space and run the command again" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    saved = read_generation(path)
    kept = f"the index on disk is unchanged (generation {saved})" if saved else "no index was saved"
    return SaveError(f"could not save the index in {path}: {what}; {kept}{hint}")


def _referenced(path: Path) -> set[str] | None:
    """Files the saved manifest names; None when it cannot be read (then keep every file)."""
    if not (path / MANIFEST).exists():
        return set()
    try:
        return set(read_manifest(path)["files"].values())
    except LookalikeError:
        return None


def remove_leftovers(path: Path, *, keep: set[str] | None) -> None:
    """Remove this folder's temp files, and generation files not in ``keep`` (unless it is None).

    Call only under the save lock: then no save is writing, and every such file is garbage.
    """
    for entry in os.scandir(path):
        name = entry.name
        if TEMP_FILE.match(name) or (keep is not None and GENERATION_FILE.match(name) and name not in keep):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # a leftover must never fail the save that found it
                logger.warning("cannot remove %s: %s", entry.path, exc.strerror or exc)


# ----- the writer lock -------------------------------------------------------------------
@contextlib.contextmanager
def writer_lock(path: Path, command: str) -> Iterator[None]:
    """Hold the writer lock of the index in ``path`` for ``lookalike COMMAND``; IndexBusy if taken."""
    path = Path(path)
    lock = path / WRITER_LOCK
    stack = contextlib.ExitStack()
    try:
        fh = stack.enter_context(file_lock(lock, blocking=False))
    except BlockingIOError:
        raise IndexBusy(f"{_holder(lock)} is writing the index in {path}; run `lookalike {command}` again when it "
                        "has finished") from None
    except OSError as exc:
        raise LookalikeError(f"cannot lock the index in {path}: {exc.strerror or exc}") from None
    with stack:
        with contextlib.suppress(OSError):  # the holder's name is only for the other side's message
            fh.seek(0)
            fh.truncate()
            fh.write(f"`lookalike {command}` (pid {os.getpid()})\n")
            fh.flush()
        yield


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text[:100] if text.startswith("`lookalike ") else "another lookalike command"
