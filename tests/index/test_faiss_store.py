"""The FAISS index's folder: damaged files are one clear error, failed saves keep the saved
generation and tidy up, a killed save's leftovers go with the next save, the writer lock."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import lookalike.fsutil as fsutil
from lookalike.errors import LookalikeError
from lookalike.index.faiss_index import MANIFEST, FaissIndex

FORMAT1 = Path(__file__).resolve().parent.parent / "fixtures" / "faiss-format1"


def saved_index(path, n: int = 5, dim: int = 8) -> FaissIndex:
    index = FaissIndex(path, dim, model={"name": "m"})
    vectors = np.eye(n, dim, dtype=np.float32)
    index.add([f"id{i}" for i in range(n)], vectors, [{"path": f"/x/{i}.png", "label": "a"} for i in range(n)])
    index.save()
    return index


def own_files(path) -> set[str]:
    return {p.name for p in path.iterdir()}


@pytest.mark.parametrize("damage", [
    b"{not json", b"", b"\xff\xfe\x00garbage", b"[1, 2]", b'{"format": "lookalike-faiss/1"}',
    b'{"format": "lookalike-faiss/1", "generation": 1, "dim": 8, "count": 5, "files": {"vectors": "../x"},'
    b' "params": {}}',
])
def test_a_damaged_manifest_is_one_clear_error(tmp_path, damage):
    path = tmp_path / "idx"
    saved_index(path)
    (path / MANIFEST).write_bytes(damage)
    with pytest.raises(LookalikeError, match="the index in .* is damaged.*rebuild it with `lookalike index"):
        FaissIndex.load(path)


@pytest.mark.parametrize("which", ["index", "metadata"])
@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_a_damaged_or_missing_generation_file_is_one_clear_error(tmp_path, which, damage):
    path = tmp_path / "idx"
    saved_index(path)
    file = path / json.loads((path / MANIFEST).read_text())["files"][which]
    if damage == "remove":
        file.unlink()
    else:
        file.write_bytes(file.read_bytes()[:20])
    with pytest.raises(LookalikeError, match="is damaged"):
        FaissIndex.load(path)


def test_an_unreadable_format1_hnsw_graph_is_rebuilt_from_its_vectors(tmp_path):
    path = tmp_path / "idx"
    shutil.copytree(FORMAT1 / "hnsw", path)  # format /1: the vectors were the source of truth then
    graph = path / json.loads((path / MANIFEST).read_text())["files"]["hnsw"]
    graph.write_bytes(b"not a faiss index")
    again = FaissIndex.load(path)
    vectors = json.loads((FORMAT1 / "hnsw.expected.json").read_text())["vectors"]
    assert again.search(np.array([vectors["e3"]], np.float32), 1)[0][0].id == "e3"
    assert again.info()["structure"] == "hnsw" and len(again) == 59


@pytest.mark.parametrize("failing_fsync", [1, 2, 3])  # index, metadata, manifest
def test_disk_full_during_save_keeps_the_saved_generation_and_leaves_nothing(tmp_path, monkeypatch, failing_fsync):
    path = tmp_path / "idx"
    index = saved_index(path)
    before = own_files(path)
    index.delete(["id0"])
    calls = []
    real_fsync = os.fsync

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == failing_fsync:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(fsutil.os, "fsync", full_disk)
    with pytest.raises(LookalikeError) as caught:
        index.save()
    message = str(caught.value)
    assert "No space left on device" in message and "unchanged (generation 1)" in message, message
    assert "free some space" in message and "\n" not in message
    monkeypatch.setattr(fsutil.os, "fsync", real_fsync)
    assert own_files(path) == before  # no temp file, no file of the failed generation
    assert len(FaissIndex.load(path)) == 5
    index.save()  # once there is space again, the same in-memory index saves
    assert len(FaissIndex.load(path)) == 4


def test_a_killed_saves_temp_files_are_removed_by_the_next_save_and_only_those(tmp_path):
    path = tmp_path / "idx"
    index = saved_index(path)
    ours = [".vectors-000002.npy.k3j_x9a2.tmp", ".metadata-000002.json.abcdefgh.tmp", ".manifest.json.q1w2e3r4.tmp",
            ".hnsw-000007.faiss.zzzzzzzz.tmp", ".index-000002.faiss.a1b2c3d4.tmp"]
    not_ours = [".notes.txt.abcdefgh.tmp", "vectors-000002.npy.tmp", ".manifest.json.tmp~", "mine.tmp",
                ".photo.png.abcdefgh.tmp"]
    for name in ours + not_ours:
        (path / name).write_bytes(b"left behind")
    index.delete(["id1"])
    index.save()
    left = own_files(path)
    assert not left & set(ours)
    assert set(not_ours) <= left


def test_the_cleanup_pattern_matches_the_temp_files_atomic_write_makes(tmp_path):
    from lookalike.index.faiss_store import TEMP_FILE

    seen = []
    for name in (MANIFEST, "vectors-000123.npy", "metadata-000123.json", "hnsw-000123.faiss", "index-000123.faiss"):
        fsutil.atomic_write(tmp_path / name, lambda fh: seen.extend(p.name for p in tmp_path.glob(".*.tmp")))
    assert len(seen) == 5 and all(TEMP_FILE.match(name) for name in seen), seen


def test_the_writer_lock_refuses_a_second_writer_and_names_the_first(tmp_path):
    from lookalike.index.faiss_store import IndexBusy, writer_lock

    with writer_lock(tmp_path, "index"):
        with pytest.raises(IndexBusy) as caught:
            with writer_lock(tmp_path, "delete"):
                pass
    assert str(caught.value) == (f"`lookalike index` (pid {os.getpid()}) is writing the index in {tmp_path}; "
                                 "run `lookalike delete` again when it has finished")
    with writer_lock(tmp_path, "delete"):  # released
        pass
