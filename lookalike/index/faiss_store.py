"""The FAISS index's folder on disk: generations of files, the manifest naming one, the locks.

Saving writes a new *generation* of files, each via temp file + fsync + rename, then
atomically replaces ``manifest.json`` to point at it, then removes older generations. A
crash at any point leaves the previous manifest and its files intact; what a killed save
leaves behind (temp files, an unreferenced generation) is removed by the next save, under
the same lock, before it writes. A save that fails (a full disk) removes its own new files
and raises :class:`SaveError`, with the previous generation still the saved one.

Format ``lookalike-faiss/2`` stores each generation as two files: ``index-N.faiss`` (the FAISS
structure, the one copy of the vectors) and ``metadata-N.json`` (one record per FAISS position,
``null`` for a deleted one). Format ``/1`` (``vectors-N.npy`` + an optional ``hnsw-N.faiss``) is
still read; the next save writes ``/2``.

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, ConfigError, LookalikeError
from ..fsutil import atomic_write, atomic_write_bytes, file_lock, fsync_dir, temp_pattern

logger = logging.getLogger(__name__)

FORMAT = "lookalike-faiss/2"
FORMAT_1 = "lookalike-faiss/1"  # vectors .npy + optional HNSW graph: read, never written
MANIFEST = "manifest.json"
SAVE_LOCK = ".lock"  # held by one save at a time
WRITER_LOCK = ".ingest.lock"  # held by a whole `lookalike index` or `lookalike delete`
PARAMS_1 = ("hnsw_threshold", "m", "ef_construction", "ef_search")
PARAMS = PARAMS_1 + ("ivfpq_threshold", "nprobe")  # integers; "hnsw_storage" and "compact_fraction" too
OPTIONAL_INTS = ("ivf_threshold", "ivf_nprobe")
GENERATION_FILE = re.compile(r"^(?:vectors|metadata|hnsw|index)-\d+\.(?:npy|json|faiss)$")
# Only the temp files atomic_write makes for this folder's own files: anything else is not ours.
TEMP_FILE = temp_pattern(r"manifest\.json|(?:vectors|metadata|hnsw|index)-\d+\.(?:npy|json|faiss)")


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
    if manifest.get("format") not in (FORMAT, FORMAT_1):
        raise ConfigError(f"{path / MANIFEST}: unsupported format {manifest.get('format')!r}, expected {FORMAT}")
    files, params = manifest.get("files"), manifest.get("params")
    store = "index" if manifest["format"] == FORMAT else "vectors"
    keys = PARAMS if manifest["format"] == FORMAT else PARAMS_1
    problems = [f"{key!r} is not a positive integer" for key in ("generation", "dim")
                if not _is_int(manifest.get(key), 1)]
    problems += ["'count' is not an integer"] if not _is_int(manifest.get("count"), 0) else []
    if not isinstance(files, dict) or not all(isinstance(files.get(k), str) for k in (store, "metadata")):
        problems.append(f"'files' does not name the {store} and metadata")
    elif not all(isinstance(v, str) and GENERATION_FILE.match(v) for v in files.values()):
        problems.append("'files' names files that are not the index's own")
    if not isinstance(manifest.get("model", {}), (dict, type(None))):
        problems.append("'model' is not an object")
    if not isinstance(params, dict) or not all(_is_int(params.get(k), 0) for k in keys):
        problems.append(f"'params' lacks one of {', '.join(keys)}")
    elif any(k in params and not _is_int(params[k], 0) for k in OPTIONAL_INTS):
        problems.append(f"'params' has a {' or '.join(OPTIONAL_INTS)} that is not an integer")
    if problems:
        raise damaged(path, f"{MANIFEST}: " + "; ".join(problems))
    # Optional (absent from indexes saved before they existed): the loader supplies what those meant.
    extra = {k: params[k] for k in ("hnsw_storage", "compact_fraction") if k in params}
    extra.update({k: params[k] for k in OPTIONAL_INTS if k in params})
    manifest["params"] = {**{k: params[k] for k in keys}, **extra}
    return manifest


def read_index(path: Path, *, mmap: bool = False) -> tuple[dict[str, Any], Any, list[dict[str, Any] | None]]:
    """``(manifest, store, records)`` of the saved generation.

    ``store`` is the FAISS structure (format /2; memory-mapped with ``mmap``) or, for format /1,
    the ``(n, dim) float32`` vectors. ``records`` has one entry per FAISS position (None: deleted).
    """
    for _ in range(3):
        manifest = read_manifest(path)
        try:
            if manifest["format"] == FORMAT:
                return (manifest, *_read_generation_2(path, manifest, mmap))
            from .faiss_format1 import read_generation_1  # the old format, read only to migrate

            return (manifest, *read_generation_1(path, manifest, damaged))
        except FileNotFoundError as exc:
            if read_generation(path) == manifest["generation"]:
                raise damaged(path, f"{Path(exc.filename).name} is missing") from None
            # A save replaced the generation between reading the manifest and its files: read the new one.
    raise BackendUnavailable(f"the index in {path} keeps changing while being read; try again")


def _read_generation_2(path: Path, manifest: Mapping[str, Any], mmap: bool):
    import faiss

    files = manifest["files"]
    try:
        records = json.loads((path / files["metadata"]).read_bytes())
        if not (path / files["index"]).exists():
            raise FileNotFoundError(errno.ENOENT, "missing", str(path / files["index"]))
        # IO_FLAG_MMAP_IFC maps flat codes (Flat, SQ and HNSW storage) in place: no copy in RAM.
        structure = faiss.read_index(str(path / files["index"]), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise damaged(path, f"a file of generation {manifest['generation']} cannot be read ({exc})") from None
    if structure.d != manifest["dim"]:
        raise damaged(path, f"{files['index']} holds {structure.d}-d vectors, expected {manifest['dim']}")
    if not isinstance(records, list) or not all(r is None or (isinstance(r, dict) and isinstance(r.get("id"), str))
                                                for r in records):
        raise damaged(path, f"{files['metadata']} is not a list of records with ids")
    live = [r["id"] for r in records if r is not None]
    if len(records) != structure.ntotal or manifest["count"] != len(live):
        raise damaged(path, f"the manifest says {manifest['count']} entries, the files hold {structure.ntotal} "
                            f"vectors and {len(live)} records")
    if len(set(live)) != len(live):
        raise damaged(path, f"{files['metadata']} holds the same id twice")
    return structure, records


def read_generation(path: Path) -> int:
    """The saved generation number, 0 when there is no readable manifest."""
    try:
        return int(json.loads((path / MANIFEST).read_bytes())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# ----- writing ---------------------------------------------------------------------------
def save_generation(path: Path, after: int, *, structure, records: list[dict[str, Any] | None],
                    header: Mapping[str, Any]) -> int:
    """Save a new generation and point the manifest at it; returns its number.

    It holds the FAISS ``structure`` and ``records`` (one per position, None for a deleted one),
    numbered above both ``after`` and the generation on disk.
    """
    gen, files = 0, {}
    try:
        path.mkdir(parents=True, exist_ok=True)
        with file_lock(path / SAVE_LOCK):
            remove_leftovers(path, keep=_referenced(path))  # a killed save's files: free their space first
            gen = max(read_generation(path), after) + 1
            files = {"index": f"index-{gen:06d}.faiss", "metadata": f"metadata-{gen:06d}.json"}
            try:
                atomic_write(path / files["index"], lambda fh: write_structure(fh, structure))
                atomic_write_bytes(path / files["metadata"], json.dumps(records).encode())
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


def write_structure(fh, structure) -> None:
    """Stream ``structure`` to ``fh`` in FAISS's format without a serialised copy in memory.

    ``fh.write``'s own OSError (ENOSPC on a full disk) comes out of FAISS unchanged.
    """
    import faiss

    faiss.write_index(structure, faiss.PyCallbackIOWriter(fh.write))


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
