"""FAISS-only behaviour beyond the shared contract: HNSW above the threshold, crash-safe saves.
(Structures, tombstones, mmap and format migration: test_structures.py.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lookalike.index.faiss_index as faiss_index
import lookalike.index.faiss_store as faiss_store
from lookalike.errors import LookalikeError
from lookalike.index.faiss_index import MANIFEST, FaissIndex


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(index: FaissIndex, n: int, seed: int = 0, start: int = 0) -> tuple[list[str], np.ndarray]:
    ids = [f"e{i:05d}" for i in range(start, start + n)]
    vectors = unit_vectors(n, index.dim, seed)
    index.add(ids, vectors, [{"label": "ab"[i % 2], "path": f"/x/{i}.png"} for i in range(start, start + n)])
    return ids, vectors


def recall_at(k: int, got: list[list[str]], truth: np.ndarray, ids: list[str]) -> float:
    hits = sum(len(set(g) & {ids[j] for j in row[:k]}) for g, row in zip(got, truth))
    return hits / (k * len(got))


def test_hnsw_above_threshold_has_high_recall_and_survives_reload(tmp_path):
    index = FaissIndex(tmp_path / "idx", 64, hnsw_threshold=1000, m=32, ef_construction=200, ef_search=128,
                       hnsw_storage="fp16")
    ids, vectors = fill(index, 2000, seed=1)
    assert index.info()["structure"] == "hnsw"
    queries = unit_vectors(200, 64, seed=2)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    got = [[h.id for h in row] for row in index.search(queries, k=10)]
    recall = recall_at(10, got, truth, ids)
    assert recall >= 0.95, recall
    index.save()
    files = {p.name for p in (tmp_path / "idx").iterdir()}
    assert any(name.startswith("index-") for name in files) and not any(name.endswith(".npy") for name in files)
    again = FaissIndex.load(tmp_path / "idx")
    assert again.info()["structure"] == "hnsw" and again._structure.ntotal == 2000  # loaded, not rebuilt
    assert [[h.id for h in row] for row in again.search(queries, k=10)] == got


def test_below_threshold_is_exact(tmp_path):
    index = FaissIndex(tmp_path / "idx", 16, hnsw_threshold=1000)
    ids, vectors = fill(index, 300, seed=3)
    assert index.info()["structure"] == "flat"
    queries = unit_vectors(20, 16, seed=4)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert [[h.id for h in row] for row in index.search(queries, k=10)] == [[ids[j] for j in r] for r in truth]


def test_filtered_search_over_hnsw_with_a_selector(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_index, "EXACT_FILTER_LIMIT", 10)  # force the HNSW + IDSelector path
    index = FaissIndex(tmp_path / "idx", 32, hnsw_threshold=500)
    ids, vectors = fill(index, 1000, seed=5)
    queries = unit_vectors(30, 32, seed=6)
    rows = index.search(queries, k=10, filter={"label": "b"})
    assert all(len(r) == 10 and {h.metadata["label"] for h in r} == {"b"} for r in rows)
    odd = np.arange(1, 1000, 2)
    truth = odd[np.argsort(-(queries @ vectors[odd].T), axis=1)[:, :10]]
    assert recall_at(10, [[h.id for h in r] for r in rows], truth, ids) >= 0.9


def generation_files(path) -> set[str]:
    return {p.name for p in path.iterdir() if p.name.split("-")[0] in {"vectors", "metadata", "hnsw", "index"}}


def test_crash_before_the_manifest_keeps_the_previous_generation(tmp_path, monkeypatch):
    path = tmp_path / "idx"
    index = FaissIndex(path, 8, model={"name": "m"})
    first_ids, _ = fill(index, 50, seed=7)
    index.save()
    fill(index, 30, seed=8, start=50)
    real_write = faiss_store.atomic_write_bytes
    written: list[str] = []

    def crash_on_manifest(target, data):
        if target.name == MANIFEST:
            written.extend(generation_files(path))  # index and metadata of generation 2 are written
            raise OSError("disk full")
        real_write(target, data)

    monkeypatch.setattr(faiss_store, "atomic_write_bytes", crash_on_manifest)
    with pytest.raises(LookalikeError, match="disk full.*unchanged \\(generation 1\\)"):
        index.save()
    assert {"index-000002.faiss", "metadata-000002.json"} <= set(written)
    assert generation_files(path) == {"index-000001.faiss", "metadata-000001.json"}  # the failed save tidied up
    old = FaissIndex.load(path)
    assert old.generation == 1 and len(old) == 50 and [i for i, _ in old.items()] == first_ids

    monkeypatch.setattr(faiss_store, "atomic_write_bytes", real_write)
    index.save()
    assert generation_files(path) == {"index-000002.faiss", "metadata-000002.json"}  # generation 1 cleaned
    again = FaissIndex.load(path)
    assert again.generation == 2 and len(again) == 80


def test_crash_while_writing_the_index_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "idx"
    index = FaissIndex(path, 8)
    fill(index, 20, seed=9)
    index.save()
    before = sorted(p.name for p in path.iterdir())
    fill(index, 20, seed=10, start=20)
    real_write = faiss_store.write_structure

    def torn_write(fh, structure):
        fh.write(b"IxF2 partial")
        raise OSError("power cut")

    monkeypatch.setattr(faiss_store, "write_structure", torn_write)
    with pytest.raises(LookalikeError, match="power cut"):
        index.save()
    monkeypatch.setattr(faiss_store, "write_structure", real_write)
    assert sorted(p.name for p in path.iterdir()) == before  # no temp or half-written file left
    assert len(FaissIndex.load(path)) == 20


def test_each_save_removes_older_generations(tmp_path):
    path = tmp_path / "idx"
    index = FaissIndex(path, 8, hnsw_threshold=30)
    for round_ in range(3):
        fill(index, 15, seed=20 + round_, start=15 * round_)
        index.save()
    assert generation_files(path) == {"index-000003.faiss", "metadata-000003.json"}
    assert len(FaissIndex.load(path)) == 45


def test_single_queries_run_on_one_openmp_thread_in_any_thread(tmp_path, monkeypatch):
    """OpenMP thread counts are per OS thread: the API searches from worker threads, where a
    start-up setting does not apply, and a second OpenMP thread per query cost ~8 ms there."""
    import faiss

    index = FaissIndex(None, 16)
    ids, vectors = fill(index, 50)
    entered: list[int] = []
    real = faiss_index.omp_threads

    def spy(n):
        entered.append(n)
        return real(n)

    monkeypatch.setattr(faiss_index, "omp_threads", spy)

    def in_worker():
        faiss.omp_set_num_threads(2)
        hits = index.search(vectors[:1], 3)[0]
        many = index.search(vectors[:4], 3)
        return hits, many, faiss.omp_get_max_threads()

    with ThreadPoolExecutor(1) as pool:
        hits, many, after = pool.submit(in_worker).result()
    assert hits[0].id == ids[0] and [h[0].id for h in many] == ids[:4]
    assert entered == [1]  # the single query only; batches keep FAISS's parallelism
    assert after == 2  # the thread's own setting is restored


def test_omp_threads_sets_and_restores_the_calling_threads_count():
    import faiss

    def in_worker():
        faiss.omp_set_num_threads(3)
        with faiss_index.omp_threads(1):
            inside = faiss.omp_get_max_threads()
        return inside, faiss.omp_get_max_threads()

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(in_worker).result() == (1, 3)
