"""The FAISS structures: chosen by size, the one copy of the vectors, grown incrementally,
tombstones and compaction, memory-mapped loading, and indexes saved in format /1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import lookalike.index.structures as structures
from lookalike.errors import ConfigError
from lookalike.index.faiss_index import MANIFEST, FaissIndex
from lookalike.index.faiss_store import FORMAT

from .test_faiss_index import unit_vectors

FORMAT1 = Path(__file__).resolve().parent.parent / "fixtures" / "faiss-format1"


def fill(index: FaissIndex, n: int, seed: int = 0, start: int = 0) -> tuple[list[str], np.ndarray]:
    ids = [f"e{i:05d}" for i in range(start, start + n)]
    vectors = unit_vectors(n, index.dim, seed)
    index.add(ids, vectors, [{"label": "ab"[i % 2]} for i in range(start, start + n)])
    return ids, vectors


def ids_of(rows) -> list[list[str]]:
    return [[h.id for h in row] for row in rows]


def test_the_structure_follows_the_size(tmp_path):
    index = FaissIndex(None, 16, hnsw_threshold=100, ivfpq_threshold=2000)
    fill(index, 60)
    assert (index.info()["structure"], index.info()["storage"]) == ("flat", "flat")
    fill(index, 60, seed=1, start=60)
    assert (index.info()["structure"], index.info()["storage"]) == ("hnsw", "fp16")
    _, vectors = fill(index, 2000, seed=2, start=120)
    assert (index.info()["structure"], index.info()["storage"]) == ("ivfpq", "pq4") and len(index) == 2120
    hits = index.search(vectors[:20], 10)
    assert sum(row[0].id == f"e{120 + i:05d}" for i, row in enumerate(hits)) >= 15  # PQ: approximate
    index.delete([f"e{i:05d}" for i in range(1500)])  # past the compaction fraction: rebuilt smaller
    assert index.info()["structure"] == "hnsw" and index.info()["deleted"] == 0 and len(index) == 620


@pytest.mark.parametrize("storage, per_dim", [("flat", 4), ("fp16", 2), ("sq8", 1)])
def test_the_vectors_are_stored_once(tmp_path, storage, per_dim):
    index = FaissIndex(tmp_path / "idx", 64, hnsw_threshold=100, hnsw_storage=storage)
    ids, vectors = fill(index, 3000)
    codes = 3000 * 64 * per_dim
    # In memory: no float array beside the structure, whose bytes are the codes plus the graph.
    assert not [k for k, v in vars(index).items() if isinstance(v, np.ndarray)]
    assert codes < index.info()["bytes"] < codes + 3000 * index.m * 2 * 4 * 1.5  # 2M links of 4 bytes at level 0
    index.save()
    files = sorted(p.name for p in (tmp_path / "idx").iterdir() if not p.name.startswith("."))
    assert files == sorted([MANIFEST, "index-000001.faiss", "metadata-000001.json"])  # no .npy
    size = (tmp_path / "idx" / "index-000001.faiss").stat().st_size
    assert codes < size < 1.1 * index.info()["bytes"] + 4096
    tol = {"flat": 0, "fp16": 2e-3, "sq8": 2e-2}[storage]
    got = index.get_vectors(ids)
    np.testing.assert_allclose(got, vectors, atol=tol)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)  # SQ8 decodes re-normalised


def test_adds_grow_the_graph_and_never_rebuild_it(tmp_path, monkeypatch):
    index = FaissIndex(tmp_path / "idx", 32, hnsw_threshold=100)
    fill(index, 200)
    graph = index._structure
    monkeypatch.setattr(structures, "make", lambda *a, **k: pytest.fail("an add rebuilt the structure"))
    for batch in range(1, 6):
        fill(index, 100, seed=batch, start=100 + 100 * batch)
        assert index._structure is graph and graph.ntotal == 200 + 100 * batch
    index.save()
    assert index._structure is graph  # the save serialises the graph; it builds nothing
    monkeypatch.undo()  # loading makes the empty index's structure before reading the saved one
    again = FaissIndex.load(tmp_path / "idx")
    monkeypatch.setattr(structures, "make", lambda *a, **k: pytest.fail("an add rebuilt the loaded graph"))
    fill(again, 50, seed=9, start=5000)
    assert again._structure.ntotal == 750 and again.info()["structure"] == "hnsw"


def test_tombstones_are_never_returned_and_compaction_rebuilds_once(tmp_path, monkeypatch):
    index = FaissIndex(tmp_path / "idx", 16, hnsw_threshold=50, compact_fraction=0.3)
    ids, vectors = fill(index, 400)
    graph = index._structure
    gone = set(ids[:100])
    assert index.delete(gone) == 100
    assert index._structure is graph and index.info()["deleted"] == 100  # 25%: kept as tombstones
    for rows in (index.search(vectors[:20], 400), index.search(vectors[:20], 400, {"label": "a"})):
        assert all(not gone & set(r) for r in ids_of(rows))
    assert all(len(r) == 300 for r in ids_of(index.search(vectors[:5], 400)))
    replaced = unit_vectors(1, 16, seed=5)
    index.add([ids[200]], replaced, [{"label": "new"}])  # replace = delete + add
    assert index.info()["deleted"] == 101 and index.search(replaced, 1)[0][0].id == ids[200]
    index.save()
    again = FaissIndex.load(tmp_path / "idx")  # tombstones survive a save
    assert len(again) == 300 and again.info()["deleted"] == 101
    assert all(not gone & set(r) for r in ids_of(again.search(vectors[:20], 400)))
    with pytest.raises(KeyError):
        again.get_vectors([ids[0]])
    made = []
    real_make = structures.make
    monkeypatch.setattr(structures, "make", lambda *a, **k: made.append(a[0]) or real_make(*a, **k))
    again.delete(ids[100:130])  # 131 of 401 positions: past 0.3
    assert made == ["hnsw"] and again.info()["deleted"] == 0 and again._structure.ntotal == 270
    assert again.search(replaced, 1)[0][0].id == ids[200] and again.get(ids[200]) == {"label": "new"}
    assert all(len(r) == 10 and not set(ids[:130]) & set(r) for r in ids_of(again.search(vectors[:20], 10)))


def test_replacing_every_vector_rebuilds_once_without_tombstones(tmp_path, monkeypatch):
    index = FaissIndex(tmp_path / "idx", 16, hnsw_threshold=50, hnsw_storage="sq8")
    ids, _ = fill(index, 300)
    made = []
    real_make = structures.make
    monkeypatch.setattr(structures, "make", lambda *a, **k: made.append(a[0]) or real_make(*a, **k))
    refit = unit_vectors(300, 16, seed=7)
    index.replace_all_vectors(ids[::-1], refit)
    assert made == ["hnsw"] and index.info()["deleted"] == 0 and len(index) == 300
    assert index.get(ids[0]) == {"label": "a"}  # metadata kept
    assert index.search(refit[:1], 1)[0][0].id == ids[-1]
    np.testing.assert_allclose(index.get_vectors(ids[::-1]), refit, atol=2e-2)
    index.add(ids, unit_vectors(300, 16, seed=8), [{"label": "c"}] * 300)  # the same through add
    assert made == ["hnsw", "hnsw"] and index.info()["deleted"] == 0 and len(index) == 300
    with pytest.raises(ValueError, match="every id"):
        index.replace_all_vectors(ids[:10], refit[:10])


@pytest.mark.parametrize("storage", ["fp16", "sq8", "flat"])
def test_a_memory_mapped_index_searches_identically_and_refuses_writes(tmp_path, storage):
    index = FaissIndex(tmp_path / "idx", 32, hnsw_threshold=100, hnsw_storage=storage)
    ids, vectors = fill(index, 1500)
    index.delete(ids[:50])
    index.save()
    normal, mapped = FaissIndex.load(tmp_path / "idx"), FaissIndex.load(tmp_path / "idx", mmap=True)
    assert mapped.info()["mmap"] and not normal.info()["mmap"]
    queries = unit_vectors(30, 32, seed=3)
    for flt in (None, {"label": "b"}):
        a, b = normal.search(queries, 10, flt), mapped.search(queries, 10, flt)
        assert ids_of(a) == ids_of(b) and [[h.score for h in r] for r in a] == [[h.score for h in r] for r in b]
    np.testing.assert_array_equal(mapped.get_vectors(ids[50:60]), normal.get_vectors(ids[50:60]))
    for write in (lambda: mapped.add(["x"], vectors[:1], [{}]), lambda: mapped.delete([ids[60]]), mapped.save):
        with pytest.raises(ConfigError, match="memory-mapped"):
            write()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_format1_index_loads_searches_the_same_and_saves_as_format2(tmp_path, kind):
    path = tmp_path / "idx"
    shutil.copytree(FORMAT1 / kind, path)
    before = json.loads((path / MANIFEST).read_text())
    expected = json.loads((FORMAT1 / f"{kind}.expected.json").read_text())
    queries = np.array(expected["queries"], np.float32)

    def same_as_format1(index):
        for got, want in ((index.search(queries, 5), expected["hits"]),
                          (index.search(queries, 5, {"label": "a"}), expected["filtered"])):
            assert ids_of(got) == [[i for i, _ in row] for row in want]
            np.testing.assert_allclose([[h.score for h in r] for r in got], [[s for _, s in r] for r in want],
                                       atol=1e-6)
        ids = sorted(expected["vectors"])
        np.testing.assert_array_equal(index.get_vectors(ids), np.array([expected["vectors"][i] for i in ids]))

    old = FaissIndex.load(path)
    assert len(old) == len(expected["vectors"]) and "e1" not in old and old.info()["structure"] == kind
    same_as_format1(old)
    old.save()
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["format"] == FORMAT == "lookalike-faiss/2" and manifest["model"] == before["model"]
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == sorted([
        MANIFEST, "index-000002.faiss", "metadata-000002.json"])  # the .npy and graph of /1 are gone
    again = FaissIndex.load(path)
    same_as_format1(again)
    same_as_format1(FaissIndex.load(path, mmap=True))
    assert again.model == before["model"]


def test_the_model_info_round_trips_unchanged(tmp_path):
    model = {"name": "m+pca", "run": {"precision": "int8"}, "transform": {"mean": [0.1, 0.2], "k": None}}
    index = FaissIndex(tmp_path / "idx", 8, model=model)
    fill(index, 5)
    index.save()
    assert FaissIndex.load(tmp_path / "idx").model == model
    assert json.loads((tmp_path / "idx" / MANIFEST).read_text())["model"] == model


def test_an_unknown_storage_is_a_config_error():
    with pytest.raises(ConfigError, match="hnsw_storage"):
        FaissIndex(None, 8, hnsw_storage="int4")


def test_open_index_takes_the_structure_settings_and_keeps_the_saved_ones(tmp_path):
    from lookalike.config import Settings
    from lookalike.index import open_index

    settings = Settings().replace(hnsw_threshold=50, hnsw_storage="sq8", index_compact_fraction=0.5,
                                  hnsw_ef_search=77)
    index = open_index("faiss", settings=settings, dim=16, create=True, path=tmp_path / "idx")
    fill(index, 80)
    assert (index.info()["structure"], index.info()["storage"], index.compact_fraction) == ("hnsw", "sq8", 0.5)
    index.save()
    again = open_index("faiss", settings=Settings().replace(hnsw_storage="flat", hnsw_ef_search=300),
                       path=tmp_path / "idx")
    assert again.hnsw_storage == "sq8" and again.ef_search == 300  # the index's codes; the caller's breadth


def test_the_search_breadth_follows_the_size_unless_set():
    from lookalike.config import Settings
    from lookalike.index.breadth import (EF_SEARCH_LARGE, EF_SEARCH_MEDIUM, EF_SEARCH_MEDIUM_UP_TO, EF_SEARCH_SMALL,
                                         EF_SEARCH_SMALL_UP_TO, hnsw_ef_search_for)

    assert Settings().hnsw_ef_search == 0  # by size unless set
    assert hnsw_ef_search_for(10_000) == hnsw_ef_search_for(EF_SEARCH_SMALL_UP_TO) == EF_SEARCH_SMALL
    assert hnsw_ef_search_for(EF_SEARCH_SMALL_UP_TO + 1) == hnsw_ef_search_for(EF_SEARCH_MEDIUM_UP_TO) \
        == EF_SEARCH_MEDIUM
    assert hnsw_ef_search_for(EF_SEARCH_MEDIUM_UP_TO + 1) == hnsw_ef_search_for(None) == EF_SEARCH_LARGE
    assert EF_SEARCH_SMALL < EF_SEARCH_MEDIUM < EF_SEARCH_LARGE
    # the middle band ends where the local index stops being a graph
    assert EF_SEARCH_MEDIUM_UP_TO == Settings().ivf_threshold
    assert hnsw_ef_search_for(10_000, 50) == hnsw_ef_search_for(None, 50) == 50
    with pytest.raises(ConfigError, match="HNSW_EF_SEARCH=-1 is not valid"):
        Settings().replace(hnsw_ef_search=-1)

    index = FaissIndex(None, 16, hnsw_threshold=50)
    fill(index, 80)
    graph = index._structure
    assert structures.search_params(graph, ef_search=0, nprobe=1, k=6).efSearch == EF_SEARCH_SMALL
    assert structures.search_params(graph, ef_search=40, nprobe=1, k=6).efSearch == 40
    assert structures.search_params(graph, ef_search=0, nprobe=1, k=500).efSearch == 500  # never below k
