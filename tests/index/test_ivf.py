"""The fp16 IVF structure: where the ladder puts it, exact fp16 codes, adds without rebuilding,
a uniform training sample, memory-mapped loading, and indexes saved before it existed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lookalike.index.structures as structures
from lookalike.errors import ConfigError
from lookalike.index.faiss_index import MANIFEST, FaissIndex

from .test_faiss_index import unit_vectors
from .test_structures import fill, ids_of

LADDER = {"hnsw_threshold": 100, "ivf_threshold": 1000, "ivfpq_threshold": 5000}


def exact(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k].tolist()


def test_the_ladder_goes_flat_hnsw_ivf_ivfpq():
    index = FaissIndex(None, 16, **LADDER)
    sizes = []
    searches = []
    for start, n in ((0, 60), (60, 60), (120, 1000), (1120, 4000)):
        fill(index, n, seed=start, start=start)
        sizes.append((index.info()["structure"], index.info()["storage"]))
        searches.append(index.info()["search"])
    assert sizes == [("flat", "flat"), ("hnsw", "fp16"), ("ivf", "fp16"), ("ivfpq", "pq4")]
    # info says how wide a search looks: HNSW by size (128 up to 100k), each IVF its own nprobe
    lists = index._structure.nlist
    assert searches[:2] == [{}, {"ef_search": 128}] and searches[3] == {"nprobe": 32, "lists": lists}
    assert searches[2]["nprobe"] == 8 and searches[2]["lists"] > 8
    assert structures.choose(10**6, FaissIndex(None, 8).params) == "ivf"  # the defaults put 1M on IVF
    assert structures.choose(10**5, FaissIndex(None, 8).params) == "hnsw"


def test_ivf_stores_fp16_codes_once_and_finds_each_vector_itself(tmp_path):
    index = FaissIndex(tmp_path / "idx", 32, **LADDER)
    ids, vectors = fill(index, 3000)
    structure = index._structure
    assert index.info()["structure"] == "ivf" and not structure.by_residual
    lists = structure.nlist
    assert lists == min(structures.ivf_nlist_for(3000), 3000 // structures.IVF_TRAIN_PER_LIST) == 60
    assert index.info()["bytes"] == 3000 * 32 * 2 + 3000 * 8 + lists * 32 * 4  # codes, ids, centroids
    np.testing.assert_allclose(index.get_vectors(ids), vectors, atol=2e-3)
    hits = index.search(vectors[:200], 1)
    assert [row[0].id for row in hits] == ids[:200]  # a vector's own list is the first one probed
    index.save()
    size = next((tmp_path / "idx").glob("index-*.faiss")).stat().st_size
    assert 3000 * 32 * 2 < size < 1.1 * index.info()["bytes"] + 4096


def test_lists_follow_the_count_up_to_the_cap():
    assert [structures.ivf_nlist_for(n) for n in (3000, 100_000, 500_000, 10**6)] == [60, 2000, 4096, 4096]
    assert structures.ivf_nlist_for(1_500_000) == structures.ivf_nlist_for(10**7) == structures.IVF_MAX_LISTS
    assert structures.train_size("ivf", 10**6) == 4096 * structures.IVF_TRAIN_PER_LIST


def test_every_list_probed_is_the_exact_fp16_ranking(tmp_path):
    index = FaissIndex(None, 32, **LADDER)
    _, vectors = fill(index, 2000)
    queries = unit_vectors(40, 32, seed=11)
    index.params["ivf_nprobe"] = index._structure.nlist
    got = [[int(h.id[1:]) for h in row] for row in index.search(queries, 10)]
    assert got == exact(vectors.astype(np.float16).astype(np.float32), queries, 10)
    index.params["ivf_nprobe"] = 1
    few = [[int(h.id[1:]) for h in row] for row in index.search(queries, 10)]
    assert few != got  # nprobe is what the search uses: one list of 40 misses neighbours
    assert structures.nprobe_for(index._structure, index.params) == 1
    assert index.info()["search"] == {"nprobe": 1, "lists": index._structure.nlist}


def test_adds_go_into_the_trained_lists_without_a_rebuild(tmp_path, monkeypatch):
    index = FaissIndex(tmp_path / "idx", 16, **LADDER)
    fill(index, 1200)
    structure = index._structure
    monkeypatch.setattr(structures, "make", lambda *a, **k: pytest.fail("an add rebuilt the IVF"))
    for batch in range(3):
        fill(index, 500, seed=20 + batch, start=2000 + 500 * batch)
    assert index._structure is structure and structure.ntotal == 2700
    _, more = fill(index, 10, seed=40, start=9000)
    assert [r[0].id for r in index.search(more, 1)] == [f"e{9000 + i:05d}" for i in range(10)]
    index.delete(["e09000"])  # a tombstone, as in HNSW
    assert index.search(more[:1], 1)[0][0].id != "e09000"
    index.save()
    monkeypatch.undo()
    again = FaissIndex.load(tmp_path / "idx")
    assert again.info()["structure"] == "ivf" and again.info()["deleted"] == 1 and len(again) == 2709


def test_the_training_sample_is_uniform_over_the_collection(monkeypatch):
    rows = structures.sample_positions(10_000, 500)
    assert len(set(rows.tolist())) == 500 and list(rows) == sorted(rows)
    assert rows.min() < 200 and rows.max() > 9_800 and 200 < np.sum(rows < 5000) < 300
    assert (structures.sample_positions(10_000, 500) == rows).all()  # reproducible
    assert (structures.sample_positions(30, 500) == np.arange(30)).all()
    trained = []
    real_make = structures.make
    monkeypatch.setattr(structures, "make",
                        lambda kind, dim, params, sample=None, count=0: trained.append((kind, sample))
                        or real_make(kind, dim, params, sample, count))
    monkeypatch.setattr(structures, "TRAIN_SAMPLE", 100)
    index = FaissIndex(None, 8, hnsw_threshold=600, hnsw_storage="sq8")
    for label in range(2):  # a collection added class by class, then crossing the threshold
        index.add([f"c{label}-{i}" for i in range(400)], np.tile(np.eye(8, dtype=np.float32)[label], (400, 1)),
                  [{}] * 400)
    kind, sample = trained[-1]
    assert kind == "hnsw" and len(sample) == 100
    assert 0.3 < float(np.mean(sample[:, 0])) < 0.7  # from both classes, not the first rows only


def test_a_memory_mapped_ivf_searches_identically(tmp_path):
    index = FaissIndex(tmp_path / "idx", 32, **LADDER)
    ids, _ = fill(index, 2500)
    index.delete(ids[:30])
    index.save()
    normal, mapped = FaissIndex.load(tmp_path / "idx"), FaissIndex.load(tmp_path / "idx", mmap=True)
    queries = unit_vectors(30, 32, seed=3)
    for flt in (None, {"label": "b"}):
        a, b = normal.search(queries, 10, flt), mapped.search(queries, 10, flt)
        assert ids_of(a) == ids_of(b) and [[h.score for h in r] for r in a] == [[h.score for h in r] for r in b]
    np.testing.assert_array_equal(mapped.get_vectors(ids[40:50]), normal.get_vectors(ids[40:50]))
    with pytest.raises(ConfigError, match="memory-mapped"):
        mapped.add(["x"], queries[:1], [{}])


def test_an_index_saved_before_ivf_keeps_its_ladder(tmp_path):
    index = FaissIndex(tmp_path / "idx", 16, hnsw_threshold=50)
    fill(index, 80)
    index.save()
    manifest_path = tmp_path / "idx" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    assert manifest["params"]["ivf_threshold"] == 500_000 and manifest["params"]["ivf_nprobe"] == 8
    for key in ("ivf_threshold", "ivf_nprobe"):
        del manifest["params"][key]
    manifest_path.write_text(json.dumps(manifest))
    old = FaissIndex.load(tmp_path / "idx")
    assert old.ivf_threshold == 0 and old.ivf_nprobe == 8  # never IVF; the search default otherwise
    manifest["params"]["ivf_threshold"] = "many"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="ivf_threshold"):
        FaissIndex.load(tmp_path / "idx")


def test_the_ivf_settings_are_validated_and_reach_a_new_index(tmp_path):
    from lookalike.config import Settings
    from lookalike.index import open_index

    with pytest.raises(ConfigError, match="IVF_NPROBE=0 is not valid"):
        Settings().replace(ivf_nprobe=0)
    settings = Settings().replace(hnsw_threshold=50, ivf_threshold=300, ivf_nprobe=3)
    index = open_index("faiss", settings=settings, dim=16, create=True, path=tmp_path / "idx")
    fill(index, 400)
    assert index.info()["structure"] == "ivf" and index.ivf_nprobe == 3
    index.save()
    again = open_index("faiss", settings=Settings().replace(ivf_nprobe=5), path=tmp_path / "idx")
    assert again.ivf_threshold == 300 and again.ivf_nprobe == 5  # the index's ladder; the caller's breadth
