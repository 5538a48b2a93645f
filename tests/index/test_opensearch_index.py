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
    # No index.knn.algo_param.ef_search: the k-NN plugin reads it for nmslib only (k-NN 2.19,
    # src/main/java/org/opensearch/knn/index/util/IndexUtil.java getParametersAtLoading); a faiss graph
    # keeps its own ef_search, set from the method parameters (jni/src/faiss_wrapper.cpp).
    assert body["settings"] == {"index": {"knn": True}}
    vector = body["mappings"]["properties"]["vector"]
    assert vector == {"type": "knn_vector", "dimension": DIM,
                      "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct",
                                 "parameters": {"m": 24, "ef_construction": 150, "ef_search": 99}}}
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
    assert knn["method_parameters"] == {"ef_search": 128}  # the stand-in is 2.19: 2.16+ takes them
    assert knn["filter"] == {"bool": {"filter": [
        {"terms": {"label": ["a", "b"]}}, {"bool": {"must_not": [{"exists": {"field": "path"}}]}}]}}
    assert body["_source"] == {"excludes": ["vector"]} and "post_filter" not in body


@pytest.mark.parametrize("version", ["2.13.0", "2.19.1"])
def test_lucene_engine_searches_with_ef_search_candidates(version):
    with OpenSearchStandin(version=version) as server:
        index = connect(server, engine="lucene", ef_search=40)
        mapping = server.requests_to(r"^PUT /imgs$")[0].json()["mappings"]["properties"]["vector"]
        assert mapping["method"]["engine"] == "lucene" and mapping["method"]["space_type"] == "innerproduct"
        ids, vecs, meta = entries(30)
        index.add(ids, vecs, meta)
        hits = index.search(vecs[4], k=5)[0]
        assert len(hits) == 5 and hits[0].id == ids[4] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        knn = server.requests_to(r"POST /imgs/_search")[-1].json()["query"]["knn"]["vector"]
        # 2.16+ takes ef_search per query; before, k = ef_search with size = 5 has the same effect.
        assert knn == ({"vector": knn["vector"], "k": 40} if version == "2.13.0" else
                       {"vector": knn["vector"], "k": 5, "method_parameters": {"ef_search": 40}})
        assert server.knn_searches[-1]["ef_search"] == 40


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
    with pytest.raises(UpstreamError, match="1 of 1 entries were not stored"):
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


# ----- Serverless ----------------------------------------------------------------------------
AOSS = "https://abc123xyz.eu-west-1.aoss.amazonaws.com"


def test_serverless_collections_are_refused_when_settings_are_read(settings_factory, opensearch_standin):
    # Vector search collections reject _id in index/create ("Document ID is not supported in create/index
    # operation request") and answer 404 to _refresh: refuse the URL up front, not each document later.
    with pytest.raises(ConfigError, match=r"LOOKALIKE_OPENSEARCH_URL=.*Serverless collections .* not supported"):
        settings_factory({"LOOKALIKE_OPENSEARCH_URL": AOSS})
    before = len(opensearch_standin.requests)
    with pytest.raises(ConfigError, match="Serverless"):
        OpenSearchIndex.connect(AOSS, "imgs", dim=DIM, create=True)  # the code path without Settings
    assert len(opensearch_standin.requests) == before
    settings_factory({"LOOKALIKE_OPENSEARCH_URL": "https://search-x.eu-west-1.es.amazonaws.com"})  # a domain is fine


# ----- ef_search -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["2.11.0", "2.16.0", "3.0.0"])
def test_ef_search_reaches_the_faiss_graph_search(version):
    """The stand-in logs the ef_search the plugin's code would search with (see its versions.py):
    faiss ignores index.knn.algo_param.ef_search, so it must travel in the graph and in the query."""
    with OpenSearchStandin(version=version) as server:
        index = connect(server, ef_search=99)
        index.add(*entries(20))
        hits = index.search(vectors(1, seed=3), k=3)[0]
        assert len(hits) == 3
        knn = server.requests_to(r"POST /imgs/_search")[-1].json()["query"]["knn"]["vector"]
        if version == "2.11.0":  # no method_parameters before 2.16: widen k, keep size
            assert "method_parameters" not in knn and knn["k"] == 99
        else:
            assert knn["k"] == 3 and knn["method_parameters"] == {"ef_search": 99}
        assert server.knn_searches[-1]["ef_search"] == 99

        # An index made by an older lookalike (ef_search only in the index setting) searches with
        # the configured value too on 2.16+, where the query carries it.
        other = OpenSearchIndex.connect(server.url, "imgs", ef_search=150)
        other.search(vectors(1), k=2)
        expected = 150 if version != "2.11.0" else 99  # 2.11: the graph's own value, k widened to 150
        assert server.knn_searches[-1]["ef_search"] == expected
        assert server.knn_searches[-1]["k"] == (150 if version == "2.11.0" else 2)


# ----- version guard -------------------------------------------------------------------------
def test_clusters_too_old_for_what_lookalike_uses_are_refused_clearly():
    with OpenSearchStandin(version="2.8.0") as server:
        with pytest.raises(ConfigError, match=r"OpenSearch 2\.8\.0 .* cannot filter a faiss k-NN search .* 2\.9"):
            connect(server)
        assert not server.requests_to(r"^PUT /imgs$")  # refused before creating anything
    with OpenSearchStandin(version="2.11.0") as server:
        with pytest.raises(ConfigError, match=r"no inner product on the lucene engine \(it came in 2\.13\)"):
            connect(server, engine="lucene")
        assert connect(server, engine="faiss").cluster.version == (2, 11, 0)
    with OpenSearchStandin(version="7.10.2", distribution=None, tagline="You Know, for Search") as server:
        with pytest.raises(ConfigError, match="is not OpenSearch"):  # Elasticsearch / Open Distro
            connect(server)


def test_the_version_is_read_once_and_compatibility_mode_falls_back():
    with OpenSearchStandin(version="2.19.1") as server:
        index = connect(server)
        index.add(*entries(5))
        index.search(vectors(2), k=2)
        assert len(server.requests_to(r"^GET /$")) == 1 and index.info()["opensearch_version"] == "2.19.1"
    # Compatibility mode (override_main_response_version) reports 7.10.2 without "distribution": the
    # version is unknown, so the query uses the form every release takes.
    with OpenSearchStandin(version="7.10.2", distribution=None) as server:
        index = connect(server)
        index.add(*entries(5))
        index.search(vectors(1), k=2)
        knn = server.requests_to(r"POST /imgs/_search")[-1].json()["query"]["knn"]["vector"]
        assert "method_parameters" not in knn and knn["k"] == 128


# ----- ids and norms -------------------------------------------------------------------------
def test_ids_over_512_bytes_are_reported_and_the_rest_is_stored(opensearch_standin):
    # A long id would make OpenSearch refuse the whole _bulk request (the stand-in does, as
    # BulkRequest.validate() does), failing the other entries of the batch with it.
    index = connect(opensearch_standin)
    ids, vecs, meta = entries(4)
    long_id = "ü" * 257  # 257 characters, 514 bytes in UTF-8
    report = index.bulk_index([ids[0], long_id, ids[2], ids[3]], vecs, meta)
    assert (report.ok, report.failed, report.invalid) == (3, 1, 1)
    assert report.errors[0][0].startswith("üüü") and "514 bytes" in report.errors[0][1]
    assert len(index) == 3 and long_id not in index
    with pytest.raises(ValueError, match=r"1 of 2 entries were not stored .*at most 512 bytes"):
        index.add(["id-ok", "x" * 513], vectors(2, seed=4), [{}, {}])
    assert "id-ok" in index
    assert index.delete(["x" * 513, ids[0]]) == 1  # nothing that long can be there


def test_vectors_must_be_unit_vectors_and_the_error_names_the_id(opensearch_standin):
    index = connect(opensearch_standin)
    good = vectors(2)
    with pytest.raises(ValueError, match=r"'half': vector has L2 norm 0\.5, not 1"):
        index.add(["fine", "half"], np.stack([good[0], good[1] * 0.5]), [{}, {}])
    with pytest.raises(ValueError, match=r"'zero': vector has L2 norm 0, not 1"):
        index.add(["zero"], np.zeros((1, DIM), np.float32), [{}])
    assert "fine" in index and "half" not in index and len(index) == 1
    index.add(["close"], good[1:] * np.float32(1.0004), [{}])  # float noise is not an error


# ----- timeouts ------------------------------------------------------------------------------
def test_settings_bound_each_request_below_the_lambda_limit(settings_factory):
    settings = settings_factory()
    # The Lambda's whole search has at most 29 s (terraform/modules/search_api timeout 1-29). With its
    # one retry, two OpenSearch attempts and a back-off must leave at least 12 s of that for decoding,
    # the SageMaker call and the answer (a slow SageMaker *and* a slow cluster need deadline()).
    assert 2 * settings.opensearch_timeout + 0.5 <= 29 - 12
    assert settings_factory({"LOOKALIKE_OPENSEARCH_TIMEOUT": "2.5"}).opensearch_timeout == 2.5
    with pytest.raises(ConfigError, match="LOOKALIKE_OPENSEARCH_TIMEOUT=0.0 is not valid"):
        settings_factory({"LOOKALIKE_OPENSEARCH_TIMEOUT": "0"})


def test_a_slow_cluster_is_a_clean_503_within_the_timeout(opensearch_standin, settings_factory):
    import time

    from lookalike.errors import to_http

    env = {"LOOKALIKE_OPENSEARCH_URL": opensearch_standin.url, "LOOKALIKE_OPENSEARCH_TIMEOUT": "0.3",
           "LOOKALIKE_OPENSEARCH_MAX_RETRIES": "1"}
    index = open_index("opensearch", settings=settings_factory(env), dim=DIM, model={"name": "m"}, create=True)
    index.add(*entries(3))
    opensearch_standin.delay(r"POST /lookalike/_search", 5.0, times=2)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.3s to search") as caught:
        index.search(vectors(1), k=2)
    assert time.monotonic() - started < 2.0  # two 0.3 s attempts and a back-off, not 2 x 5 s
    assert to_http(caught.value)[0] == 503


def test_a_deadline_bounds_the_call_and_its_retries(opensearch_standin):
    """``deadline(seconds)`` caps every call in the block, retries included (for the Lambda's remaining time)."""
    import time

    from lookalike.index.opensearch import deadline

    index = OpenSearchIndex.connect(opensearch_standin.url, "imgs", dim=DIM, create=True, model={"name": "m"},
                                    timeout=5.0, max_retries=3, initial_backoff=0.2)
    index.add(*entries(3))
    opensearch_standin.delay(r"POST /imgs/_search", 5.0, times=4)
    started = time.monotonic()
    with deadline(0.6), pytest.raises(BackendUnavailable, match="did not answer within 0.6s"):
        index.search(vectors(1), k=2)
    assert time.monotonic() - started < 1.5
    assert len(opensearch_standin.requests_to(r"POST /imgs/_search")) == 1  # no retry could finish in time


# ----- the requests of the Lambda's query path (for its IAM policy) --------------------------
class FakeRuntime:
    """sagemaker-runtime ``invoke_endpoint``: every image embeds as ``vector``."""

    def __init__(self, vector):
        self.vector = [float(x) for x in vector]

    def invoke_endpoint(self, **kwargs):
        import io

        body = {"vectors": [self.vector], "dim": len(self.vector), "model": "model-a"}
        return {"Body": io.BytesIO(json.dumps(body).encode())}


def test_the_query_path_sends_exactly_query_requests(opensearch_standin, settings_factory):
    """Drive the Lambda handler (search by image, by id, with a filter, /healthz) against the stand-in and
    compare what reached it with QUERY_REQUESTS, which the IAM policy test compares with the policy."""
    import re

    import boto3

    from lookalike.api.lambda_app import LambdaApp
    from lookalike.cloud.service import build_cloud_service
    from lookalike.index.opensearch import QUERY_REQUESTS, query_iam_actions
    from tests.support.cloud import load_event, with_body

    ids, vecs, meta = entries(12)
    writer = connect(opensearch_standin, name="lookalike")
    writer.add(ids, vecs, meta)
    writer.save()  # published, as the indexer's last step does
    opensearch_standin.requests.clear()
    settings = settings_factory({"LOOKALIKE_OPENSEARCH_URL": opensearch_standin.url, "AWS_REGION": "eu-west-1",
                                 "LOOKALIKE_SAGEMAKER_ENDPOINT": "ep", "LOOKALIKE_IMAGES_BUCKET": "imgs"})
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    app = LambdaApp(settings, service_factory=lambda s: build_cloud_service(s, s3=s3, runtime=FakeRuntime(vecs[0])))
    answers = [app.handle(load_event("search")), app.handle(load_event("search_filter")),
               app.handle(with_body("search", json.dumps({"id": ids[1], "k": 2}))),
               app.handle(load_event("healthz")), app.handle({**load_event("healthz"), "httpMethod": "HEAD"})]
    assert [a["statusCode"] for a in answers] == [200] * 5, [a["body"] for a in answers]
    assert json.loads(answers[0]["body"])["results"][0]["id"] == ids[0]

    def pattern(path: str) -> str:
        return "^" + re.escape(path).replace(re.escape("{index}"), "[^/_][^/]*") + "$"

    declared = {(method, path) for _, method, path in QUERY_REQUESTS}
    seen = set()
    for r in opensearch_standin.requests:
        match = [(m, p) for m, p in declared if m == r.method and re.match(pattern(p), r.path)]
        assert match, f"{r.method} {r.path} is sent on the query path but missing from QUERY_REQUESTS"
        seen.update(match)
    assert seen == declared, f"declared but never sent: {declared - seen}"
    assert query_iam_actions() == ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost")
