"""OpenSearchIndex specifics: the requests it sends, retries, auth, errors, the numpy-free path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lookalike.index.opensearch.bulk as osi
from lookalike.errors import BackendUnavailable, ConfigError, UpstreamError
from lookalike.index import open_index
from lookalike.index.opensearch import OpenSearchIndex, raw_score
from tests.conftest import ROOT, free_port
from tests.support.opensearch_standin import BasicAuth, OpenSearchStandin, SigV4Auth

DIM = 8


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def entries(n: int, seed: int = 0):
    return [f"id{i:03d}" for i in range(n)], vectors(n, seed), [{"label": "ab"[i % 2]} for i in range(n)]


def connect(server, name="imgs", **kwargs) -> OpenSearchIndex:
    kwargs.setdefault("dim", DIM)
    kwargs.setdefault("create", True)
    kwargs.setdefault("model", {"name": "model-a", "dim": DIM})
    return OpenSearchIndex.connect(server.url, name, initial_backoff=0.01, **kwargs)


@pytest.mark.parametrize("ip", [-1.0, -0.5, -0.01, 0.0, 0.2, 0.999, 1.0])
def test_raw_score_inverts_the_documented_innerproduct_score(ip):
    score = 1 + ip if ip > 0 else 1 / (1 - ip)  # OpenSearch docs, k-NN spaces
    assert raw_score(np.float32(score)) == pytest.approx(ip, abs=2e-7)


def test_index_is_created_as_documented(opensearch_standin):
    connect(opensearch_standin, m=24, ef_construction=150, ef_search=99)
    body = opensearch_standin.requests_to(r"^PUT /imgs$")[0].json()
    assert body["settings"] == {"index": {"knn": True, "knn.algo_param.ef_search": 99}}
    vector = body["mappings"]["properties"]["vector"]
    assert vector == {"type": "knn_vector", "dimension": DIM,
                      "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct",
                                 "parameters": {"m": 24, "ef_construction": 150}}}
    for name in ("id", "label", "path", "sha256"):
        assert body["mappings"]["properties"][name] == {"type": "keyword"}
    assert body["mappings"]["_meta"]["lookalike"]["model"] == {"name": "model-a", "dim": DIM}


def test_search_uses_the_efficient_knn_filter_and_excludes_vectors(opensearch_standin):
    index = connect(opensearch_standin)
    index.add(*entries(10))
    index.search(vectors(1, seed=5), k=3, filter={"label": ["a", "b"], "path": None})
    body = opensearch_standin.requests_to(r"POST /imgs/_search")[-1].json()
    knn = body["query"]["knn"]["vector"]
    assert knn["k"] == 3 and body["size"] == 3 and len(knn["vector"]) == DIM
    assert knn["filter"] == {"bool": {"filter": [
        {"terms": {"label": ["a", "b"]}}, {"bool": {"must_not": [{"exists": {"field": "path"}}]}}]}}
    assert body["_source"] == {"excludes": ["vector"]} and "post_filter" not in body


def test_lucene_engine_searches_with_ef_search_candidates(opensearch_standin):
    index = connect(opensearch_standin, engine="lucene", ef_search=40)
    mapping = opensearch_standin.requests_to(r"^PUT /imgs$")[0].json()["mappings"]["properties"]["vector"]
    assert mapping["method"]["engine"] == "lucene" and mapping["method"]["space_type"] == "innerproduct"
    ids, vecs, meta = entries(30)
    index.add(ids, vecs, meta)
    hits = index.search(vecs[4], k=5)[0]
    assert len(hits) == 5 and hits[0].id == ids[4] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    body = opensearch_standin.requests_to(r"POST /imgs/_search")[-1].json()
    assert body["query"]["knn"]["vector"]["k"] == 40 and body["size"] == 5


def test_bulk_batches_by_count_and_by_bytes(opensearch_standin, monkeypatch):
    index = connect(opensearch_standin, batch_size=7)
    index.add(*entries(20))
    assert len(opensearch_standin.requests_to(r"POST /imgs/_bulk")) == 3
    monkeypatch.setattr(osi, "MAX_BATCH_BYTES", 600)  # a few documents per request
    opensearch_standin.requests.clear()
    report = index.bulk_index(*entries(10, seed=1))
    sent = opensearch_standin.requests_to(r"POST /imgs/_bulk")
    assert report.ok == 10 and report.batches == len(sent) >= 3  # not the 2 that batch_size alone gives
    assert all(len(r.body) <= 600 for r in sent)
    assert len(index) == 20


def test_bulk_retries_rejected_requests_and_items(opensearch_standin):
    index = connect(opensearch_standin)
    opensearch_standin.fail(r"POST /imgs/_bulk", 429, times=2)
    opensearch_standin.reject_bulk_items(3)
    report = index.bulk_index(*entries(12))
    assert report.ok == 12 and report.failed == 0 and report.retries == 3
    assert len(opensearch_standin.requests_to(r"POST /imgs/_bulk")) == 4
    assert len(index) == 12


def test_persistent_unavailability_is_backend_unavailable(opensearch_standin):
    index = connect(opensearch_standin, max_retries=2)
    opensearch_standin.fail(r"POST /imgs/_search", 503, times=10)
    index.add(*entries(3))
    with pytest.raises(BackendUnavailable, match="after 2 retries"):
        index.search(vectors(1), k=2)
    assert len(opensearch_standin.requests_to(r"POST /imgs/_search")) == 3


def test_rejected_documents_are_reported_not_swallowed(opensearch_standin):
    index = connect(opensearch_standin)
    index.add(["a"], vectors(1), [{"label": "x", "width": 640}])
    report = index.bulk_index(["b", "c"], vectors(2, seed=1), [{"width": "wide"}, {"width": 3}])
    assert (report.ok, report.failed) == (1, 1)
    assert report.errors[0][0] == "b" and "For input string" in report.errors[0][1]
    with pytest.raises(UpstreamError, match="rejected 1 of 1 entries"):
        index.add(["d"], vectors(1, seed=2), [{"width": "narrow"}])
    with pytest.raises(ValueError, match="reserved"):
        index.add(["e"], vectors(1), [{"vector": [1]}])


def test_opening_a_missing_index_says_how_to_create_it(opensearch_standin):
    with pytest.raises(BackendUnavailable, match="lookalike push --to opensearch"):
        OpenSearchIndex.connect(opensearch_standin.url, "nothing-here")
    with pytest.raises(ConfigError, match="dimension"):
        OpenSearchIndex.connect(opensearch_standin.url, "nothing-here", create=True)


def test_opening_checks_dimension_model_and_field(opensearch_standin):
    connect(opensearch_standin)
    with pytest.raises(ConfigError, match="holds 8-d vectors, not 16-d"):
        connect(opensearch_standin, dim=16)
    with pytest.raises(ConfigError, match="built with 'model-a', not 'model-b'"):
        connect(opensearch_standin, model={"name": "model-b"})
    again = connect(opensearch_standin, model={"name": "model-b"}, recreate=True)
    assert again.model["name"] == "model-b" and len(again) == 0
    import httpx

    httpx.put(f"{opensearch_standin.url}/plain", json={"mappings": {"properties": {"vector": {"type": "float"}}}})
    with pytest.raises(ConfigError, match="no knn_vector field"):
        OpenSearchIndex.connect(opensearch_standin.url, "plain")


def test_unreachable_cluster_is_backend_unavailable():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match="cannot reach OpenSearch"):
        OpenSearchIndex.connect(url, "imgs", max_retries=1, initial_backoff=0.01)


def test_index_deleted_under_a_running_service(opensearch_standin):
    index = connect(opensearch_standin)
    index.add(*entries(2))
    OpenSearchIndex.connect(opensearch_standin.url, "imgs").client.indices.delete(index="imgs")
    with pytest.raises(BackendUnavailable, match="imgs"):
        index.get("id000")
    with pytest.raises(BackendUnavailable, match="No OpenSearch index 'imgs'"):
        index.search(vectors(1), k=1)


def test_basic_auth(settings_factory):
    with OpenSearchStandin(auth=BasicAuth({"search": "pw"})) as server:
        env = {"LOOKALIKE_OPENSEARCH_URL": server.url, "LOOKALIKE_OPENSEARCH_AUTH": "basic",
               "LOOKALIKE_OPENSEARCH_USERNAME": "search", "LOOKALIKE_OPENSEARCH_PASSWORD": "pw"}
        index = open_index("opensearch", settings=settings_factory(env), dim=DIM, model={"name": "m"}, create=True)
        index.add(*entries(4))
        assert len(index) == 4
        wrong = settings_factory({**env, "LOOKALIKE_OPENSEARCH_PASSWORD": "nope"})
        with pytest.raises(ConfigError, match="refused .*401"):
            open_index("opensearch", settings=wrong)
        with pytest.raises(ConfigError, match="USERNAME"):
            open_index("opensearch", settings=settings_factory({**env, "LOOKALIKE_OPENSEARCH_USERNAME": ""}))


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Static credentials for botocore's default chain (no profile files, no instance metadata)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "AKIDLOOKALIKE", "AWS_SECRET_ACCESS_KEY": "lookalike-secret",
                       "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_sigv4_requests_are_signed_verifiably(settings_factory, aws_env):
    with OpenSearchStandin(auth=SigV4Auth("AKIDLOOKALIKE", "lookalike-secret", "eu-west-1", "es")) as server:
        env = {"LOOKALIKE_OPENSEARCH_URL": server.url, "LOOKALIKE_OPENSEARCH_AUTH": "sigv4", "AWS_REGION": "eu-west-1"}
        index = open_index("opensearch", settings=settings_factory(env), dim=DIM, model={"name": "m"}, create=True)
        ids, vecs, meta = entries(6)
        index.add(ids, vecs, meta)
        assert index.search(vecs[2], k=1)[0][0].id == ids[2]
        assert index.get("id/with space") is None and ids[0] in index
        assert all(r.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256") for r in server.requests)
        with pytest.raises(ConfigError, match="refused .*403"):  # signed for the wrong region
            open_index("opensearch", settings=settings_factory({**env, "AWS_REGION": "us-east-1"}))
        with pytest.raises(ConfigError, match="needs the AWS region"):
            open_index("opensearch", settings=settings_factory({k: v for k, v in env.items() if k != "AWS_REGION"}))


def test_settings_without_a_url_are_a_config_error(settings_factory):
    with pytest.raises(ConfigError, match="LOOKALIKE_OPENSEARCH_URL is not set"):
        open_index("opensearch", settings=settings_factory())
    with pytest.raises(ConfigError, match="LOOKALIKE_OPENSEARCH_ENGINE"):
        settings_factory({"LOOKALIKE_OPENSEARCH_ENGINE": "nmslib"})


def test_works_without_numpy(opensearch_standin):
    """The Lambda package has no numpy: plain lists in, Hits out, nothing imports numpy."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["numpy"] = None  # any "import numpy" now raises ImportError
        from lookalike.index.opensearch import OpenSearchIndex
        index = OpenSearchIndex.connect({opensearch_standin.url!r}, "nonumpy", dim=3, create=True,
                                        model={{"name": "m"}})
        index.add(["a", "b"], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [{{"label": "x"}}, {{"label": "y"}}])
        hits = index.search([[0.6, 0.8, 0.0]], k=2)[0]
        print([(h.id, round(h.score, 5), h.metadata) for h in hits], len(index), dict(index.items()))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("[('b', 0.8, {'label': 'y'}), ('a', 0.6, {'label': 'x'})] 2 "
                                  "{'a': {'label': 'x'}, 'b': {'label': 'y'}}")


def test_vectors_travel_as_compact_float32_text(opensearch_standin):
    index = connect(opensearch_standin)
    ids, vecs, meta = entries(3)
    index.add(ids, vecs, meta)
    line = opensearch_standin.requests_to(r"POST /imgs/_bulk")[-1].body.decode().splitlines()[1]
    source = json.loads(line)
    assert np.array_equal(np.asarray(source["vector"], dtype=np.float32), vecs[0])  # exact float32
    numbers = line[line.index("[") + 1:line.index("]")].split(",")
    assert len(numbers) == DIM and max(len(x) for x in numbers) <= 16  # 9 significant digits, not 17
