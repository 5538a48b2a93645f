"""The one index contract, run against every backend.

Backends: ``faiss`` (on disk, exact below the HNSW threshold), ``faiss-hnsw-sq8``,
``faiss-hnsw-fp16`` and ``faiss-hnsw-flat`` (HNSW from the first entry over 8-bit, 16-bit and
float codes); ``opensearch-2.11.0``, ``opensearch-2.19.1`` and ``opensearch-3.0.0``
(OpenSearchIndex over real HTTP to the strict stand-in, following the k-NN plugin of that
release: a 2.11 cluster takes no per-query ``method_parameters``, its messages differ, and
faiss and nmslib count ``k`` per segment in all three; see tests/support/opensearch_standin/
versions.py); and ``opensearch-live`` (a real cluster; runs only when ``OPENSEARCH_URL`` is set:
``make test-opensearch OPENSEARCH_URL=https://...``; optional ``OPENSEARCH_AUTH`` none|basic|sigv4,
``OPENSEARCH_USER``, ``OPENSEARCH_PASSWORD``, ``AWS_REGION``).
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from lookalike.index import Hit
from lookalike.index.faiss_index import FaissIndex
from lookalike.index.opensearch import OpenSearchIndex, make_client
from tests.support.opensearch_standin import OpenSearchStandin

DIM = 32
LABELS = ("birds", "cats", "dogs")
LIVE_URL = os.environ.get("OPENSEARCH_URL")
# The oldest release lookalike accepts that lacks method_parameters, the one most domains run, and 3.x.
STANDIN_VERSIONS = ("2.11.0", "2.19.1", "3.0.0")
OPENSEARCH_KINDS = [f"opensearch-{v}" for v in STANDIN_VERSIONS] + ["opensearch-live"]
# HNSW from the first entry, over each vector storage. IVF-PQ is not here: 4-bit PQ codes rank
# with recall ~0.7 (docs/BENCHMARKS.md), so "finds itself first" and exact orders do not hold;
# tests/index/test_structures.py covers it.
FAISS_STRUCTURES = {"faiss-hnsw-sq8": "sq8", "faiss-hnsw-fp16": "fp16", "faiss-hnsw-flat": "flat"}
# Quantized codes give approximate scores and vectors: SQ8 keeps each dimension to 1/255 of its
# range (a score within ~1e-2), fp16 to 11 significant bits (~1e-3); exact kinds to float32.
TOLERANCE = {"sq8": 2e-2, "fp16": 2e-3}


def tol(index, exact: float = 1e-5) -> float:
    if isinstance(index, FaissIndex) and index.info()["structure"] != "flat":
        return TOLERANCE.get(index.info()["storage"], exact)
    return exact


def assert_best(index, hits, expected: dict, k: int) -> None:
    """The hits are the k best of ``expected`` (id -> exact score), in order; for quantized codes
    an id may swap with one whose exact score is within the tolerance."""
    best = sorted(expected, key=expected.get, reverse=True)[:k]
    if tol(index) == 1e-5:
        assert top_ids(hits) == best
    else:
        assert len(hits) == k and all(expected[h.id] >= expected[best[-1]] - tol(index) for h in hits)


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def dataset(n: int, seed: int = 0):
    ids = [f"{seed:02d}{i:05d}" for i in range(n)]
    meta = [{"label": LABELS[i % 3], "path": f"/img/{LABELS[i % 3]}/{i}.png", "sha256": f"{i:064x}", "width": 100 + i}
            for i in range(n)]
    return ids, unit_vectors(n, seed=seed), meta


class Backend:
    """Makes empty indexes of one kind and re-opens them from their storage."""

    def __init__(self, kind: str, tmp_path, url: str | None = None, client_kwargs: dict | None = None):
        self.kind, self.tmp_path, self.url = kind, tmp_path, url
        self.client_kwargs = client_kwargs or {}
        self.created: list[str] = []

    def new(self, dim: int = DIM, model: dict | None = None):
        model = model or {"name": "test-model", "dim": dim}
        if self.kind == "faiss":
            return FaissIndex(self.tmp_path / f"index-{len(self.created)}", dim, model=model)
        if self.kind in FAISS_STRUCTURES:
            self.created.append("")  # a distinct folder per index
            return FaissIndex(self.tmp_path / f"index-{len(self.created)}", dim, model=model, hnsw_threshold=1,
                              hnsw_storage=FAISS_STRUCTURES[self.kind])
        name = f"lookalike-contract-{uuid.uuid4().hex[:10]}"
        self.created.append(name)
        return OpenSearchIndex.connect(self.url, name, dim=dim, model=model, create=True, initial_backoff=0.05,
                                       **self.client_kwargs)

    def reopen(self, index):
        """A new object over the same stored index (after ``save``)."""
        if self.kind.startswith("faiss"):
            return FaissIndex.load(index.path)
        return OpenSearchIndex.connect(self.url, index.name, **self.client_kwargs)

    def cleanup(self) -> None:
        if not self.kind.startswith("faiss") and self.created:
            client = make_client(self.url, **self.client_kwargs)
            for name in self.created:
                client.indices.delete(index=name, ignore=[404])


def live_kwargs() -> dict:
    auth = os.environ.get("OPENSEARCH_AUTH", "none")
    return {"auth": auth, "username": os.environ.get("OPENSEARCH_USER"),
            "password": os.environ.get("OPENSEARCH_PASSWORD"), "region": os.environ.get("AWS_REGION")}


@pytest.fixture(scope="module")
def standin():
    """``standin(version)``: one running stand-in per emulated release, shared by the module."""
    servers: dict[str, OpenSearchStandin] = {}

    def get(version: str) -> OpenSearchStandin:
        if version not in servers:
            servers[version] = OpenSearchStandin(version=version).start()
        return servers[version]

    yield get
    for server in servers.values():
        server.stop()


def make_backend(kind: str, tmp_path, standin) -> Backend:
    if kind.startswith("faiss"):
        return Backend(kind, tmp_path)
    if kind != "opensearch-live":
        return Backend(kind, tmp_path, standin(kind.removeprefix("opensearch-")).url)
    if not LIVE_URL:
        pytest.skip("set OPENSEARCH_URL to run the contract against a real OpenSearch cluster")
    return Backend("opensearch-live", tmp_path, LIVE_URL, live_kwargs())


@pytest.fixture(params=["faiss", *FAISS_STRUCTURES, *OPENSEARCH_KINDS])
def backend(request, tmp_path, standin):
    b = make_backend(request.param, tmp_path, standin)
    yield b
    b.cleanup()


@pytest.fixture
def filled(backend):
    ids, vectors, meta = dataset(120)
    index = backend.new()
    index.add(ids, vectors, meta)
    return index, ids, vectors, meta


def top_ids(hits: list[Hit]) -> list[str]:
    return [h.id for h in hits]


# ----- add / search -------------------------------------------------------------------------
def test_each_vector_finds_itself_first_with_score_one(filled):
    index, ids, vectors, _ = filled
    results = index.search(vectors[:10], k=5)
    assert len(results) == 10
    for i, hits in enumerate(results):
        assert hits[0].id == ids[i]
        assert hits[0].score == pytest.approx(1.0, abs=tol(index))
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True) and len(hits) == 5
        assert hits[0].metadata["label"] == LABELS[i % 3]


def test_scores_are_inner_products(filled):
    index, ids, vectors, _ = filled
    query = unit_vectors(1, seed=7)
    hits = index.search(query, k=3)[0]
    expected = {i: float(vectors[n] @ query[0]) for n, i in enumerate(ids)}
    for h in hits:
        assert h.score == pytest.approx(expected[h.id], abs=tol(index))
    assert_best(index, hits, expected, 3)


def test_k_larger_than_the_index_returns_everything(backend):
    ids, vectors, meta = dataset(5)
    index = backend.new()
    index.add(ids, vectors, meta)
    hits = index.search(vectors[0], k=50)[0]  # a single (dim,) vector is one query
    assert sorted(top_ids(hits)) == sorted(ids)


def test_empty_index_returns_no_hits(backend):
    index = backend.new()
    assert index.search(unit_vectors(2), k=3) == [[], []]
    assert len(index) == 0


def test_adding_an_existing_id_replaces_it(filled):
    index, ids, vectors, _ = filled
    new_vector = unit_vectors(1, seed=99)
    index.add([ids[3]], new_vector, [{"label": "cats", "path": "/new.png", "sha256": "0" * 64}])
    assert len(index) == 120
    assert index.get(ids[3]) == {"label": "cats", "path": "/new.png", "sha256": "0" * 64}
    np.testing.assert_allclose(index.get_vectors([ids[3]]), new_vector, atol=tol(index, 1e-7))
    hits = index.search(new_vector, k=2)[0]
    assert hits[0].id == ids[3] and hits[0].score == pytest.approx(1.0, abs=tol(index))
    scores = {h.id: h.score for h in index.search(vectors[3], k=120)[0]}  # the old vector is gone
    assert len(scores) == 120
    assert scores[ids[3]] == pytest.approx(float(vectors[3] @ new_vector[0]), abs=tol(index))


# ----- delete --------------------------------------------------------------------------------
def test_delete_removes_and_ignores_unknown_ids(filled):
    index, ids, vectors, _ = filled
    assert index.delete([ids[0], ids[1], "no-such-id", ids[0]]) == 2
    assert index.delete([]) == 0
    assert len(index) == 118
    assert ids[0] not in index and index.get(ids[0]) is None
    everything = index.search(vectors[:2], k=120)
    for hits in everything:
        assert ids[0] not in top_ids(hits) and ids[1] not in top_ids(hits)
        assert len(hits) == 118
    with pytest.raises(KeyError):
        index.get_vectors([ids[0]])


# ----- filters -------------------------------------------------------------------------------
def test_filter_by_one_label_and_by_a_list(filled):
    index, ids, vectors, meta = filled
    hits = index.search(vectors[:4], k=10, filter={"label": "birds"})
    for row in hits:
        assert len(row) == 10 and {h.metadata["label"] for h in row} == {"birds"}
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
    assert hits[0][0].id == ids[0]  # ids[0] is a bird
    both = index.search(vectors[1], k=100, filter={"label": ["cats", "dogs"]})[0]
    assert len(both) == 80 and {h.metadata["label"] for h in both} == {"cats", "dogs"}
    assert index.search(vectors[:2], k=5, filter={"label": "fish"}) == [[], []]
    assert index.search(vectors[:1], k=5, filter={"label": []}) == [[]]
    two = index.search(vectors[0], k=100, filter={"label": "birds", "path": meta[3]["path"]})[0]
    assert top_ids(two) == [ids[3]]


# ----- reading back ------------------------------------------------------------------------
def test_get_items_and_get_vectors_round_trip(filled):
    index, ids, vectors, meta = filled
    assert index.get(ids[5]) == meta[5]
    assert index.get("missing") is None
    assert dict(index.items()) == dict(zip(ids, meta))
    picked = [ids[7], ids[2], ids[99]]
    np.testing.assert_allclose(index.get_vectors(picked), vectors[[7, 2, 99]], atol=tol(index, 0))
    assert index.get_vectors([]).shape == (0, DIM)
    with pytest.raises(KeyError):
        index.get_vectors([ids[1], "missing"])


def test_len_and_contains(filled):
    index, ids, _, _ = filled
    assert len(index) == 120 and index.dim == DIM
    assert ids[0] in index and "missing" not in index and 42 not in index


def test_save_and_reopen_keeps_everything(backend):
    ids, vectors, meta = dataset(60, seed=3)
    index = backend.new(model={"name": "model-x", "dim": DIM})
    index.add(ids, vectors, meta)
    index.delete([ids[0]])
    before = index.search(vectors[:5], k=7, filter={"label": ["cats", "birds"]})
    index.save()
    again = backend.reopen(index)
    assert again.dim == DIM and again.model.get("name") == "model-x"
    assert len(again) == 59 and dict(again.items()) == dict(zip(ids[1:], meta[1:]))
    np.testing.assert_allclose(again.get_vectors(ids[1:]), vectors[1:], atol=tol(again, 0))
    after = again.search(vectors[:5], k=7, filter={"label": ["cats", "birds"]})
    assert [top_ids(r) for r in after] == [top_ids(r) for r in before]


# ----- bad input ------------------------------------------------------------------------------
def test_dimension_mismatch_is_a_clear_error(backend):
    index = backend.new()
    with pytest.raises(ValueError, match=rf"expected shape \(n, {DIM}\)"):
        index.add(["a"], unit_vectors(1, dim=DIM + 1), [{}])
    with pytest.raises(ValueError, match=rf"expected shape \(n, {DIM}\)"):
        index.search(unit_vectors(2, dim=DIM - 1), k=3)
    with pytest.raises(ValueError):
        index.add(["a", "b"], unit_vectors(1), [{}, {}])
    with pytest.raises(ValueError):
        index.add(["a", "a"], unit_vectors(2), [{}, {}])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(unit_vectors(1), k=0)
    assert len(index) == 0


# ----- FAISS and OpenSearch agree ------------------------------------------------------------
@pytest.mark.parametrize("kind", OPENSEARCH_KINDS)
def test_faiss_and_opensearch_return_identical_results(kind, tmp_path, standin):
    remote_backend = make_backend(kind, tmp_path, standin)
    try:
        ids, vectors, meta = dataset(400, seed=11)
        local = Backend("faiss", tmp_path).new()
        remote = remote_backend.new()
        for index in (local, remote):
            index.add(ids, vectors, meta)
        queries = unit_vectors(15, seed=12)
        for flt in (None, {"label": "dogs"}, {"label": ["birds", "cats"]}):
            expected, got = local.search(queries, k=10, filter=flt), remote.search(queries, k=10, filter=flt)
            for e, g in zip(expected, got):
                assert top_ids(g) == top_ids(e)
                np.testing.assert_allclose([h.score for h in g], [h.score for h in e], atol=1e-5)
                assert [h.metadata for h in g] == [h.metadata for h in e]
    finally:
        remote_backend.cleanup()


def test_entries_written_in_several_batches_search_like_one(backend):
    """Each refresh writes a segment, and faiss counts ``k`` per segment (k-NN 2.19,
    src/main/java/org/opensearch/knn/index/query/KNNWeight.java searchLeaf per leaf): ``size`` must
    still give exactly the ``k`` best overall."""
    ids, vectors, meta = dataset(90, seed=5)
    index = backend.new()
    for start in range(0, 90, 30):
        index.add(ids[start:start + 30], vectors[start:start + 30], meta[start:start + 30])
        assert len(index) == start + 30  # a read: OpenSearch refreshes, so each batch is its own segment
    query = unit_vectors(1, seed=6)
    expected = {ids[i]: float(vectors[i] @ query[0]) for i in range(90)}
    assert_best(index, index.search(query, k=4)[0], expected, 4)
