"""The OpenSearch stand-in rejects what OpenSearch rejects, and answers the rest the documented way.

These guard the stand-in against leniency: a backend bug that a real cluster would refuse
must fail here too. Requests go over real HTTP (httpx), not through the backend.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.opensearch_standin import BasicAuth, OpenSearchStandin, SigV4Auth


def knn_body(dim=4, *, engine="faiss", space="innerproduct", knn=True, params=None, extra=None):
    vector = {"type": "knn_vector", "dimension": dim,
              "method": {"name": "hnsw", "engine": engine, "space_type": space,
                         "parameters": params if params is not None else {"m": 16, "ef_construction": 100}}}
    vector.update(extra or {})
    return {"settings": {"index": {"knn": knn, "knn.algo_param.ef_search": 100}},
            "mappings": {"_meta": {"lookalike": {"model": {"name": "m"}}},
                         "properties": {"vector": vector, "label": {"type": "keyword"}, "title": {"type": "text"}}}}


def ndjson(*records) -> bytes:
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


class Client:
    def __init__(self, http: httpx.Client, url: str):
        self.http, self.url = http, url

    def __call__(self, method, path, body=None, *, params=None, raw=None, ctype="application/json"):
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": ctype} if content is not None else {}
        r = self.http.request(method, self.url + path, content=content, params=params, headers=headers)
        try:
            data = r.json() if r.content else None
        except ValueError:
            data = r.text
        return r.status_code, data

    def bulk(self, *records, path="/_bulk", params=None):
        return self("POST", path, raw=ndjson(*records), params=params, ctype="application/x-ndjson")


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=10) as client:  # one client: building its TLS context takes ~0.1 s
        yield client


@pytest.fixture
def api(opensearch_standin, http):
    return Client(http, opensearch_standin.url)


@pytest.fixture
def loaded(api):
    """Index ``t`` (4-d faiss innerproduct) with 6 documents, refreshed."""
    assert api("PUT", "/t", knn_body())[0] == 200
    docs = []
    for i in range(6):
        v = [0.0] * 4
        v[i % 4] = 1.0 if i < 4 else -1.0
        docs += [{"index": {"_index": "t", "_id": f"d{i}"}}, {"vector": v, "label": "ab"[i % 2], "title": f"Doc {i}"}]
    status, out = api.bulk(*docs, params={"refresh": "true"})
    assert status == 200 and not out["errors"]
    return api


def reason(body) -> str:
    return json.dumps(body)


# ----- index creation ----------------------------------------------------------------------
@pytest.mark.parametrize("body, status, expect", [
    (knn_body(extra={"similarity": "cosine"}), 400, "unknown parameter [similarity]"),
    (knn_body(params={"m": 16, "efConstruction": 64}), 400, "Invalid parameter for hnsw: efConstruction"),
    (knn_body(params={"m": "16"}), 400, "parameter [m]"),
    (knn_body(engine="annoy"), 400, "Invalid engine: annoy"),
    (knn_body(space="dot_product"), 400, "Invalid space_type: dot_product"),
    (knn_body(engine="lucene", space="linf"), 400, 'does not support space type: \\"linf\\"'),
    (knn_body(engine="faiss", space="l1"), 400, 'does not support space type: \\"l1\\"'),
    (knn_body(dim=0), 400, "Dimension value must be greater than 0"),
    (knn_body(dim=16001), 400, "cannot be greater than 16000"),
    (knn_body(knn=False), 400, "Cannot set modelId or method parameters when index.knn setting is false"),
    ({**knn_body(), "settings": {"index": {"knn": True, "knn.algo_param.ef_search": 1}}}, 400, "must be >= 2"),
    ({**knn_body(), "settings": {"index": {"knn": True, "knn.space": "l2"}}}, 400, "unknown setting [index.knn.space]"),
    ({**knn_body(), "settings": {"index": {"knn": "yes"}}}, 400, "only [true] or [false]"),
    ({**knn_body(), "mappings": {"properties": {}, "_doc_type": "x"}}, 400, "Root mapping definition has unsupported"),
    ({"mappings": {"properties": {"x": {"type": "vector"}}}}, 400, "No handler for type [vector]"),
    ({"mappings": {"properties": {"x": {"type": "keyword", "dimension": 3}}}}, 400, "unknown parameter [dimension]"),
    ({"mappings": {"properties": {"vector": {"type": "knn_vector"}}}}, 400, "Dimension value missing"),
    ({"settings": {"index": {"knn": True}}, "mappings": {"properties": {"vector": {
        "type": "knn_vector", "dimension": 4, "method": {"name": "ivf", "engine": "faiss"}}}}},
     400, "requires training"),
    ({"settings": {"index": {"knn": True}}, "mappings": {"properties": {"vector": {
        "type": "knn_vector", "dimension": 4, "method": {"engine": "faiss"}}}}}, 400, "name needs to be set"),
    ({"settings": {"index": {"knn": True}}, "mappings": {"properties": {"vector": {
        "type": "knn_vector", "dimension": 4, "method": {"name": "hnsw", "params": {}}}}}},
     400, "Invalid parameter: params"),
    ({"settings": {"index": {"knn": True}}, "mappings": {"properties": {"vector": {
        "type": "knn_vector", "dimension": 4, "space_type": "l2",
        "method": {"name": "hnsw", "space_type": "innerproduct"}}}}}, 400, "should be same"),
    ({"setting": {}}, 400, "unknown key [setting]"),
])
def test_create_index_rejects_invalid_definitions(api, body, status, expect):
    got, out = api("PUT", "/t", body)
    assert got == status, out
    assert expect in reason(out)
    assert out["status"] == status and out["error"]["root_cause"][0]["type"]
    assert api("HEAD", "/t")[0] == 404  # nothing half-created


@pytest.mark.parametrize("name, expect", [("Photos", "must be lowercase"), ("_x", "must not start with"),
                                          ("a*b", "must not contain")])
def test_invalid_index_names_are_rejected(api, name, expect):
    status, out = api("PUT", f"/{name}", knn_body())
    assert status == 400 and out["error"]["type"] == "invalid_index_name_exception"
    assert expect in out["error"]["reason"]


def test_creating_an_existing_index_is_rejected(api):
    assert api("PUT", "/t", knn_body())[0] == 200
    status, out = api("PUT", "/t", knn_body())
    assert status == 400 and out["error"]["type"] == "resource_already_exists_exception"


@pytest.mark.parametrize("version, engine, space, ok", [
    ("2.11.0", "lucene", "innerproduct", False), ("2.13.0", "lucene", "innerproduct", True),
    ("2.17.0", "faiss", "cosinesimil", False), ("2.19.1", "faiss", "cosinesimil", True),
    ("2.19.1", "nmslib", "innerproduct", True), ("3.0.0", "nmslib", "innerproduct", False),
])
def test_engine_space_support_follows_the_documented_versions(version, engine, space, ok):
    with OpenSearchStandin(version=version) as server:
        response = httpx.put(f"{server.url}/t", json=knn_body(engine=engine, space=space))
    assert (response.status_code == 200) is ok, response.text


def test_mapping_round_trips_with_meta(api):
    api("PUT", "/t", knn_body(dim=3))
    status, out = api("GET", "/t/_mapping")
    mapping = out["t"]["mappings"]
    assert status == 200 and mapping["_meta"] == {"lookalike": {"model": {"name": "m"}}}
    assert mapping["properties"]["vector"]["method"]["engine"] == "faiss"
    assert api("GET", "/missing/_mapping")[1]["error"]["type"] == "index_not_found_exception"


# ----- bulk ---------------------------------------------------------------------------------
def test_bulk_item_with_wrong_dimension_fails_alone(api):
    api("PUT", "/t", knn_body())
    status, out = api.bulk({"index": {"_index": "t", "_id": "ok"}}, {"vector": [1, 0, 0, 0]},
                           {"index": {"_index": "t", "_id": "bad"}}, {"vector": [1, 0, 0]},
                           {"index": {"_index": "t", "_id": "nan"}}, {"vector": [1, 0, 0, "x"]})
    assert status == 200 and out["errors"] is True
    ok, bad, nan = (item["index"] for item in out["items"])
    assert ok["status"] == 201 and ok["result"] == "created"
    assert bad["status"] == 400 and bad["error"]["type"] == "mapper_parsing_exception"
    assert bad["error"]["caused_by"]["reason"] == "Vector dimension mismatch. Expected: 4, Given: 3"
    assert "root_cause" not in bad["error"]  # bulk item errors carry no root_cause
    assert nan["status"] == 400
    assert api("GET", "/t/_doc/ok")[1]["found"] and not api("GET", "/t/_doc/bad")[1]["found"]


def test_bulk_rejects_non_finite_json(api):
    api("PUT", "/t", knn_body())
    raw = b'{"index": {"_index": "t", "_id": "x"}}\n{"vector": [NaN, 0, 0, 0]}\n'
    status, out = api("POST", "/_bulk", raw=raw, ctype="application/x-ndjson")
    assert status == 200 and out["items"][0]["index"]["status"] == 400


@pytest.mark.parametrize("raw, expect", [
    (b'{"index": {"_index": "t", "_id": "x"}}\n{"vector": [1, 0, 0, 0]}', "terminated by a newline"),
    (b'{"index": {"_index": "t", "_id": "x", "_type": "_doc"}}\n{}\n', "unknown parameter [_type]"),
    (b'{"upsert": {"_index": "t", "_id": "x"}}\n{}\n', "expected field [create], [delete], [index] or [update]"),
    (b'{"index": {"_id": "x"}}\n{}\n', "index is missing"),
    (b'{"delete": {"_index": "t"}}\n', "id is missing"),
])
def test_malformed_bulk_requests_are_rejected(api, raw, expect):
    api("PUT", "/t", knn_body())
    status, out = api("POST", "/_bulk", raw=raw, ctype="application/x-ndjson")
    assert status == 400 and expect in reason(out)


def test_bulk_delete_on_missing_index_fails_the_item_and_missing_ids_are_not_errors(api):
    api("PUT", "/t", knn_body())
    status, out = api.bulk({"delete": {"_index": "nope", "_id": "a"}}, {"delete": {"_index": "t", "_id": "a"}})
    gone, absent = (item["delete"] for item in out["items"])
    assert gone["status"] == 404 and gone["error"]["type"] == "index_not_found_exception"
    assert absent["status"] == 404 and absent["result"] == "not_found" and "error" not in absent


def test_bulk_into_a_missing_index_auto_creates_a_plain_one_that_knn_then_refuses(api):
    api.bulk({"index": {"_index": "auto", "_id": "a"}}, {"vector": [1.0, 0.5], "label": "x"},
             params={"refresh": "true"})
    mapping = api("GET", "/auto/_mapping")[1]["auto"]["mappings"]["properties"]
    assert mapping["vector"]["type"] == "float" and mapping["label"]["type"] == "text"
    status, out = api("POST", "/auto/_search", {"query": {"knn": {"vector": {"vector": [1, 0], "k": 1}}}})
    assert status == 400 and "Field 'vector' is not knn_vector type." in reason(out)


def test_strict_dynamic_mapping_rejects_unknown_fields(api):
    api("PUT", "/s", {"mappings": {"dynamic": "strict", "properties": {"label": {"type": "keyword"}}}})
    out = api.bulk({"index": {"_index": "s", "_id": "a"}}, {"label": "x", "colour": "red"})[1]
    assert out["items"][0]["index"]["error"]["type"] == "strict_dynamic_mapping_exception"


@pytest.mark.parametrize("kind, value, cause", [("long", "wide", "number_format_exception"),
                                                ("boolean", 1, "illegal_argument_exception"),
                                                ("keyword", {"a": 1}, "illegal_state_exception")])
def test_conflicting_value_types_fail_the_item(api, kind, value, cause):
    api("PUT", "/n", {"mappings": {"properties": {"f": {"type": kind}}}})
    out = api.bulk({"index": {"_index": "n", "_id": "a"}}, {"f": value})[1]
    assert out["items"][0]["index"]["error"]["caused_by"]["type"] == cause


# ----- search -------------------------------------------------------------------------------
def knn(vector, k=3, **extra):
    return {"size": 10, "query": {"knn": {"vector": {"vector": vector, "k": k, **extra}}}}


@pytest.mark.parametrize("body, status, expect", [
    (knn([1, 0, 0]), 400, "Query vector has invalid dimension: 3. Dimension should be: 4"),
    (knn([1, 0, 0, 0], k=0), 400, "requires k to be in the range (0, 10000]"),
    (knn([1, 0, 0, 0], k=10001), 400, "requires k to be in the range (0, 10000]"),
    ({"query": {"knn": {"vector": {"vector": [1, 0, 0, 0]}}}}, 400, "exactly one of k, distance or score"),
    ({"query": {"knn": {"vector": {"vector": [], "k": 1}}}}, 400, "query vector is empty"),
    ({"query": {"knn": {"label": {"vector": [1, 0, 0, 0], "k": 1}}}}, 400, "Field 'label' is not knn_vector type."),
    ({"query": {"knn": {"nothing": {"vector": [1, 0, 0, 0], "k": 1}}}}, 400, "Field 'nothing' is not knn_vector"),
    ({"query": {"knn": {"vector": {"vector": [1, 0, 0, 0], "k": 1, "filters": {}}}}}, 400, "unknown field [filters]"),
    ({"query": {"match_vector": {}}}, 400, "unknown query [match_vector]"),
    ({"query": {"match_all": {}}, "knn": {}}, 400, "Unknown key for a START_OBJECT in [knn]"),
    ({"query": {"term": {"label": "a", "title": "b"}}}, 400, "doesn't support multiple fields"),
    ({"query": {"match_all": {}}, "from": 9990, "size": 20}, 400, "Result window is too large"),
    ({"query": {"match_all": {}}, "size": -1}, 400, "cannot be negative"),
    ({"query": {"match_all": {}}, "sort": [{"title": "asc"}]}, 400, "Text fields are not optimised"),
    ({"query": {"match_all": {}}, "sort": [{"vector": "asc"}]}, 400, "does not support sorting"),
    ({"query": {"match_all": {}}, "sort": [{"nothing": "asc"}]}, 400, "No mapping found for [nothing]"),
    ({"query": {"match_all": {}}, "search_after": ["a"]}, 400, "without sort"),
    ({"query": {"match_all": {}}, "sort": ["label"], "search_after": ["a", "b"]}, 400, "search_after has 2 value(s)"),
    ({"query": {"knn": {"vector": {"vector": [1, 0, 0, 0], "min_score": 0.5}}}}, 400, "does not implement"),
])
def test_invalid_searches_are_rejected(loaded, body, status, expect):
    got, out = loaded("POST", "/t/_search", body)
    assert got == status, out
    assert expect in reason(out)


def test_search_error_has_opensearch_shape(loaded):
    """A sort on a text field fails on the shard as itself (no "failed to create query" wrapping)."""
    status, out = loaded("POST", "/t/_search", {"query": {"match_all": {}}, "sort": [{"title": "asc"}]})
    error = out["error"]
    assert status == 400 and out["status"] == 400
    assert error["type"] == "search_phase_execution_exception" and error["reason"] == "all shards failed"
    assert error["root_cause"][0]["type"] == "illegal_argument_exception"
    assert error["root_cause"][0]["reason"].startswith("Text fields are not optimised")
    assert error["failed_shards"][0]["reason"] == error["root_cause"][0] and "caused_by" not in error


def test_missing_index_answers_index_not_found(api):
    for method, path in [("POST", "/nope/_search"), ("GET", "/nope/_count"), ("GET", "/nope/_doc/x"),
                         ("DELETE", "/nope"), ("POST", "/nope/_refresh")]:
        status, out = api(method, path, {"query": {"match_all": {}}} if "_search" in path else None)
        assert status == 404, (method, path)
        assert out["error"]["type"] == "index_not_found_exception"
        assert out["error"]["root_cause"][0]["resource.id"] == "nope"


def test_filters_are_rejected_for_nmslib(api):
    api("PUT", "/n", knn_body(engine="nmslib"))
    status, out = api("POST", "/n/_search", knn([1, 0, 0, 0], filter={"term": {"label": "a"}}))
    assert status == 400 and "does not support filters" in reason(out)


@pytest.mark.parametrize("space, vector, expected", [
    ("innerproduct", [0.6, 0.8, 0, 0], 1.6),          # ip > 0: 1 + ip
    ("innerproduct", [-0.6, -0.8, 0, 0], 1 / 1.6),    # ip < 0: 1 / (1 - ip)
    ("l2", [0, 1, 0, 0], 1 / 3),                      # d = squared L2 = 2: 1 / (1 + d)
])
def test_knn_scores_follow_the_documented_formulas(api, space, vector, expected):
    api("PUT", "/t", knn_body(space=space))
    api.bulk({"index": {"_index": "t", "_id": "a"}}, {"vector": [1, 0, 0, 0]}, params={"refresh": "wait_for"})
    hit = api("POST", "/t/_search", knn(vector, k=1))[1]["hits"]["hits"][0]
    assert hit["_score"] == pytest.approx(expected, rel=1e-6)


def test_knn_respects_k_size_and_efficient_filter(loaded):
    hits = loaded("POST", "/t/_search", knn([1, 0, 0, 0], k=4))[1]["hits"]["hits"]
    assert [h["_id"] for h in hits][:1] == ["d0"] and len(hits) == 4
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    body = knn([1, 0, 0, 0], k=4)
    body["size"] = 2
    assert len(loaded("POST", "/t/_search", body)[1]["hits"]["hits"]) == 2
    flt = loaded("POST", "/t/_search", knn([1, 0, 0, 0], k=6, filter={"term": {"label": "b"}}))[1]
    assert {h["_id"] for h in flt["hits"]["hits"]} == {"d1", "d3", "d5"}
    terms = {"bool": {"filter": [{"terms": {"label": ["a", "b"]}}], "must_not": [{"ids": {"values": ["d0"]}}]}}
    ids = [h["_id"] for h in loaded("POST", "/t/_search", knn([1, 0, 0, 0], k=6, filter=terms))[1]["hits"]["hits"]]
    assert "d0" not in ids and len(ids) == 5
    none = loaded("POST", "/t/_search", knn([1, 0, 0, 0], filter={"term": {"label": "zzz"}}))[1]
    assert none["hits"]["hits"] == [] and none["hits"]["max_score"] is None
    assert loaded("POST", "/t/_search", knn([1, 0, 0, 0], k=1) | {"size": 10})[1]["hits"]["total"]["value"] == 1


def test_default_size_is_ten(api):
    api("PUT", "/t", knn_body())
    records = []
    for i in range(12):
        records += [{"index": {"_index": "t", "_id": str(i)}}, {"vector": [1, 0, 0, i / 100]}]
    api.bulk(*records, params={"refresh": "true"})
    body = {"query": {"knn": {"vector": {"vector": [1, 0, 0, 0], "k": 12}}}}
    assert len(api("POST", "/t/_search", body)[1]["hits"]["hits"]) == 10


def test_search_sees_writes_only_after_refresh_but_get_is_realtime(api):
    api("PUT", "/t", knn_body())
    api.bulk({"index": {"_index": "t", "_id": "a"}}, {"vector": [1, 0, 0, 0]})
    assert api("GET", "/t/_count")[1]["count"] == 0
    assert api("POST", "/t/_search", knn([1, 0, 0, 0]))[1]["hits"]["hits"] == []
    assert api("GET", "/t/_doc/a")[1]["found"] is True and api("HEAD", "/t/_doc/a")[0] == 200
    assert api("POST", "/t/_refresh")[0] == 200
    assert api("GET", "/t/_count")[1]["count"] == 1
    api.bulk({"delete": {"_index": "t", "_id": "a"}})
    assert api("GET", "/t/_count")[1]["count"] == 1 and api("HEAD", "/t/_doc/a")[0] == 404
    api("POST", "/t/_refresh")
    assert api("GET", "/t/_count")[1]["count"] == 0


def test_source_filtering_sort_search_after_and_mget(loaded):
    pages, after = [], None
    while True:
        body = {"size": 4, "query": {"match_all": {}}, "sort": [{"label": "asc"}, {"_doc": "asc"}],
                "_source": {"excludes": ["vector"]}}
        if after:
            body["search_after"] = after
        hits = loaded("POST", "/t/_search", body)[1]["hits"]["hits"]
        pages.append(hits)
        if len(hits) < 4:
            break
        after = hits[-1]["sort"]
    hits = [h for page in pages for h in page]
    assert [h["_source"]["label"] for h in hits] == ["a"] * 3 + ["b"] * 3
    assert len({h["_id"] for h in hits}) == 6 and all("vector" not in h["_source"] for h in hits)
    docs = loaded("POST", "/t/_mget", {"ids": ["d1", "zz"]}, params={"_source_includes": "vector"})[1]["docs"]
    assert docs[0]["found"] and set(docs[0]["_source"]) == {"vector"} and docs[1]["found"] is False


def test_dynamic_templates_map_new_strings_as_keywords(api):
    api("PUT", "/t", {"mappings": {"dynamic_templates": [{"kw": {"match_mapping_type": "string",
                                                                   "mapping": {"type": "keyword"}}}]}})
    api.bulk({"index": {"_index": "t", "_id": "a"}}, {"colour": "Dark Red", "n": 3}, params={"refresh": "true"})
    props = api("GET", "/t/_mapping")[1]["t"]["mappings"]["properties"]
    assert props["colour"] == {"type": "keyword"} and props["n"] == {"type": "long"}
    q = {"query": {"term": {"colour": "Dark Red"}}}
    assert api("POST", "/t/_search", q)[1]["hits"]["total"]["value"] == 1


# ----- HTTP-level rules ---------------------------------------------------------------------
def test_unknown_url_parameter_is_rejected(loaded):
    status, out = loaded("POST", "/t/_search", {"query": {"match_all": {}}}, params={"sizee": "3"})
    assert status == 400 and "contains unrecognized parameter: [sizee]" in reason(out)
    assert loaded("POST", "/t/_refresh", params={"refresh": "true"})[0] == 400
    assert loaded("POST", "/t/_search", {"query": {"match_all": {}}}, params={"size": "ten"})[0] == 400
    assert loaded("GET", "/t/_count", params={"terminate_after": "1"})[0] == 400  # valid, not implemented


def test_content_type_and_json_are_checked(loaded):
    status, out = loaded("POST", "/t/_search", raw=b'{"query": {"match_all": {}}}', ctype="text/plain")
    assert status == 406 and "Content-Type header [text/plain] is not supported" in out["error"]
    assert loaded("POST", "/t/_search", raw=b'{"query": ', ctype="application/json")[0] == 400


def test_unknown_routes_and_methods(api):
    assert api("GET", "/t/_knn_search")[0] == 400
    api("PUT", "/t", knn_body())
    assert api("PATCH", "/t/_doc/x")[0] in (405, 501)
    assert api("DELETE", "/t/_mapping")[0] == 405


# ----- auth and fault injection ------------------------------------------------------------
def test_basic_auth_is_enforced():
    with OpenSearchStandin(auth=BasicAuth({"admin": "s3cret"})) as server:
        assert httpx.get(server.url).status_code == 401
        assert httpx.get(server.url, auth=("admin", "wrong")).status_code == 401
        assert httpx.get(server.url, auth=("admin", "s3cret")).status_code == 200


def test_sigv4_signatures_are_verified(monkeypatch):
    from botocore.credentials import Credentials
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth
    from opensearchpy.exceptions import AuthorizationException

    auth = SigV4Auth("AKIDSTANDIN", "secret-key", "eu-west-1", "es")
    with OpenSearchStandin(auth=auth) as server:
        assert httpx.get(server.url).status_code == 403  # unsigned

        def client(secret="secret-key", region="eu-west-1"):
            signer = Urllib3AWSV4SignerAuth(Credentials("AKIDSTANDIN", secret), region, "es")
            return OpenSearch([server.url], http_auth=signer, max_retries=0)

        good = client()
        good.indices.create(index="t", body=knn_body())
        good.index(index="t", id="a/b c", body={"vector": [1, 0, 0, 0]}, params={"refresh": "true"})
        assert good.search(index="t", body=knn([1, 0, 0, 0]), params={"_source_excludes": "vector"})["hits"]["hits"]
        assert good.get(index="t", id="a/b c")["found"]
        with pytest.raises(AuthorizationException):
            client(secret="other").info()
        with pytest.raises(AuthorizationException):
            client(region="us-east-1").info()

        # a body changed after signing is caught
        signer = Urllib3AWSV4SignerAuth(Credentials("AKIDSTANDIN", "secret-key"), "eu-west-1", "es")
        headers = signer("POST", f"{server.url}/t/_search", b'{"size": 1}')
        r = httpx.post(f"{server.url}/t/_search", content=b'{"size": 2}',
                       headers={**headers, "Content-Type": "application/json"})
        assert r.status_code in (400, 403)


def test_injected_faults_answer_then_clear(opensearch_standin, api):
    opensearch_standin.fail(r"^GET /$", 503, times=2)
    assert api("GET", "/")[0] == 503 and api("GET", "/")[0] == 503
    assert api("GET", "/")[0] == 200
    api("PUT", "/t", knn_body())
    opensearch_standin.reject_bulk_items(1)
    out = api.bulk({"index": {"_index": "t", "_id": "a"}}, {"vector": [1, 0, 0, 0]},
                   {"index": {"_index": "t", "_id": "b"}}, {"vector": [0, 1, 0, 0]})[1]
    assert [i["index"]["status"] for i in out["items"]] == [429, 201]
    # OpenSearch's name (OpenSearchException.getExceptionName strips "OpenSearch"), not Elasticsearch's
    # es_rejected_execution_exception: opensearch-project/OpenSearch, libs/core/src/main/java/org/
    # opensearch/OpenSearchException.java.
    assert out["items"][0]["index"]["error"]["type"] == "rejected_execution_exception"
    opensearch_standin.fail(r"POST /t/_search", 429)
    status, body = api("POST", "/t/_search", {"query": {"match_all": {}}})
    assert status == 429 and body["error"]["type"] == "rejected_execution_exception"
    assert opensearch_standin.requests_to(r"POST /_bulk")


# ----- conformance with the k-NN plugin's code, per release --------------------------------
# Each case is a request and the answer upstream's code gives for it; the comment names the file
# (opensearch-project/k-NN at the release branch, or opensearch-project/OpenSearch for core).
VERSIONS = ["2.11.0", "2.19.1", "3.0.0"]


@pytest.fixture(params=VERSIONS)
def versioned(request, http):
    with OpenSearchStandin(version=request.param) as server:
        yield Client(http, server.url), server


def put_docs(api, index, vectors, refresh=True, start=0):
    records = []
    for i, v in enumerate(vectors, start):
        records += [{"index": {"_index": index, "_id": f"d{i}"}}, {"vector": v, "label": "ab"[i % 2]}]
    status, out = api.bulk(*records, params={"refresh": "true"} if refresh else None)
    assert status == 200 and not out["errors"], out


@pytest.mark.parametrize("engine", ["faiss", "lucene"])
def test_innerproduct_score_is_two_for_itself_and_a_half_for_its_negation(versioned, engine):
    # k-NN 2.19, src/main/java/org/opensearch/knn/index/engine/faiss/Faiss.java: the inner product goes
    # through SpaceType.INNER_PRODUCT.scoreTranslation(-1 * rawScore) (index/SpaceType.java):
    # ip = 1 -> d = -1 -> -d + 1 = 2.0; ip = -1 -> d = 1 -> 1 / (1 + d) = 0.5. Lucene scales alike.
    api, server = versioned
    if engine == "lucene" and server.version == "2.11.0":
        pytest.skip("lucene has innerproduct from 2.13")
    api("PUT", "/t", knn_body(engine=engine))
    put_docs(api, "t", [[0.6, 0.8, 0, 0]])
    assert api("POST", "/t/_search", knn([0.6, 0.8, 0, 0], k=1))[1]["hits"]["hits"][0]["_score"] == 2.0
    assert api("POST", "/t/_search", knn([-0.6, -0.8, 0, 0], k=1))[1]["hits"]["hits"][0]["_score"] == 0.5


def test_k_over_10000_is_an_illegal_argument(versioned):
    # k-NN 2.19 and 3.0, src/main/java/org/opensearch/knn/index/query/KNNQueryBuilder.java
    # Builder.validate: "[knn] requires k to be in the range (0, 10000]"; k-NN 2.11, same file, the
    # constructor: "[knn] requires k <= 10000". Thrown while parsing, so it is the top-level error.
    api, server = versioned
    api("PUT", "/t", knn_body())
    status, out = api("POST", "/t/_search", knn([1, 0, 0, 0], k=10001))
    assert status == 400 and out["error"]["type"] == "illegal_argument_exception"
    expected = "[knn] requires k <= 10000" if server.version == "2.11.0" else \
        "[knn] requires k to be in the range (0, 10000]"
    assert out["error"]["reason"] == expected and out["error"]["root_cause"][0]["reason"] == expected


def test_wrong_query_dimension_is_a_query_shard_exception(versioned):
    # k-NN 2.19, KNNQueryBuilder.java doToQuery throws IllegalArgumentException("Query vector has invalid
    # dimension: %d. Dimension should be: %d"); opensearch-project/OpenSearch, server/src/main/java/org/
    # opensearch/index/query/QueryShardContext.java toQuery wraps it as QueryShardException("failed to
    # create query: {}"), and action/search/SearchPhaseExecutionException.java renders all shards
    # failed with that as root cause and no top-level caused_by.
    api, _ = versioned
    api("PUT", "/t", knn_body())
    put_docs(api, "t", [[1, 0, 0, 0]])
    status, out = api("POST", "/t/_search", knn([1, 0, 0]))
    error = out["error"]
    assert status == 400 and error["type"] == "search_phase_execution_exception"
    message = "Query vector has invalid dimension: 3. Dimension should be: 4"
    assert error["root_cause"][0]["type"] == "query_shard_exception"
    assert error["root_cause"][0]["reason"] == f"failed to create query: {message}"
    assert error["failed_shards"][0]["reason"]["caused_by"] == {"type": "illegal_argument_exception",
                                                                 "reason": message}
    assert "caused_by" not in error


def test_bulk_delete_of_an_absent_id_is_not_found_but_no_error(versioned):
    # opensearch-project/OpenSearch, server/src/main/java/org/opensearch/action/delete/DeleteResponse.java
    # status(): NOT_FOUND unless deleted; action/bulk/BulkResponse.java: "errors" is hasFailures(), and
    # a not-found delete is a response, not a failure.
    api, _ = versioned
    api("PUT", "/t", knn_body())
    status, out = api.bulk({"delete": {"_index": "t", "_id": "never-there"}})
    item = out["items"][0]["delete"]
    assert status == 200 and out["errors"] is False
    assert item["status"] == 404 and item["result"] == "not_found" and "error" not in item


def test_a_long_id_fails_the_whole_bulk_request(versioned):
    # opensearch-project/OpenSearch, server/src/main/java/org/opensearch/action/index/IndexRequest.java
    # validate(): "id [..] is too long, must be no longer than 512 bytes but was: N"; action/bulk/
    # BulkRequest.java validate() gathers every item's errors, so nothing of the request is applied.
    api, _ = versioned
    api("PUT", "/t", knn_body())
    long_id = "é" * 257  # 514 bytes in UTF-8, 257 characters
    status, out = api.bulk({"index": {"_index": "t", "_id": "fine"}}, {"vector": [1, 0, 0, 0]},
                           {"index": {"_index": "t", "_id": long_id}}, {"vector": [0, 1, 0, 0]},
                           {"delete": {"_index": "t", "_id": "x" * 600}})  # deletes are not length-checked
    assert status == 400 and out["error"]["type"] == "action_request_validation_exception"
    assert out["error"]["reason"] == (f"Validation Failed: 1: id [{long_id}] is too long, must be no longer "
                                      "than 512 bytes but was: 514;")
    assert api("GET", "/t/_doc/fine")[1]["found"] is False


@pytest.mark.parametrize("engine, hits", [("faiss", 2), ("lucene", 1)])
def test_k_counts_per_segment_for_faiss_and_per_shard_for_lucene(versioned, engine, hits):
    # k-NN 2.19 (2.11, 3.0 alike), src/main/java/org/opensearch/knn/index/query/KNNQueryFactory.java makes
    # a KNNQuery for faiss/nmslib and KNNWeight.java scorer() runs searchLeaf(context, k) for each
    # segment, so k=1 over two segments gives up to two hits; lucene's KnnFloatVectorQuery keeps the
    # best k (max(k, ef_search)) of the whole shard.
    api, server = versioned
    if engine == "lucene" and server.version == "2.11.0":
        pytest.skip("lucene has innerproduct from 2.13")
    api("PUT", "/t", knn_body(engine=engine))
    put_docs(api, "t", [[1, 0, 0, 0]])                # refresh 1: segment 1
    put_docs(api, "t", [[0.8, 0.6, 0, 0]], start=1)   # refresh 2: segment 2
    found = api("POST", "/t/_search", knn([1, 0, 0, 0], k=1))[1]["hits"]  # size 10
    assert [h["_id"] for h in found["hits"]] == ["d0", "d1"][:hits] and found["total"]["value"] == hits


def test_faiss_filters_need_2_9():
    # k-NN 2.8, src/main/java/org/opensearch/knn/index/query/KNNQueryBuilder.java doToQuery: a filter on
    # any engine with its own segment files is refused, "Engine [FAISS] does not support filters"
    # (the enum's name); 2.9 index/util/KNNEngine.java adds FAISS to ENGINES_SUPPORTING_FILTERS.
    for version, ok in (("2.8.0", False), ("2.9.0", True)):
        with OpenSearchStandin(version=version) as server:
            api = Client(httpx.Client(timeout=10), server.url)
            api("PUT", "/t", knn_body())
            put_docs(api, "t", [[1, 0, 0, 0]])
            status, out = api("POST", "/t/_search", knn([1, 0, 0, 0], filter={"term": {"label": "a"}}))
            api.http.close()
        assert (status == 200) is ok, out
        if not ok:
            assert out["error"]["root_cause"][0]["reason"] == \
                "failed to create query: Engine [FAISS] does not support filters"


def test_nmslib_is_refused_from_3_0_and_only_logged_as_deprecated_before():
    # k-NN 3.0, src/main/java/org/opensearch/knn/index/mapper/KNNVectorFieldMapper.java
    # validateBlockedKNNEngine: "nmslib engine is deprecated in OpenSearch  and cannot be used for new
    # index creation in OpenSearch from  3.0.0." (KNNEngine.java: NMSLIB restricted from V_3_0_0).
    # k-NN 2.19, index/engine/EngineResolver.java only logs the deprecation: no Warning header.
    with OpenSearchStandin(version="3.0.0") as server:
        response = httpx.put(f"{server.url}/t", json=knn_body(engine="nmslib"))
    assert response.status_code == 400 and "cannot be used for new index creation" in response.text
    with OpenSearchStandin(version="2.19.1") as server:
        response = httpx.put(f"{server.url}/t", json=knn_body(engine="nmslib"))
    assert response.status_code == 200 and "Warning" not in response.headers


@pytest.mark.parametrize("version, expected", [("2.11.0", 1 / 1.4), ("2.19.1", 0.8)])
def test_nmslib_cosine_score_changed_in_2_19(version, expected):
    # cos = 0.6. nmslib's raw score is 1 - cos. k-NN 2.11 (to 2.18) src/main/java/org/opensearch/knn/index/
    # SpaceType.java COSINESIMIL: 1 / (1 + raw) = 1 / 1.4; k-NN 2.19 same file (#2357, "one formula"):
    # max((2 - raw) / 2, 0) = (1 + cos) / 2 = 0.8.
    with OpenSearchStandin(version=version) as server:
        api = Client(httpx.Client(timeout=10), server.url)
        api("PUT", "/t", knn_body(engine="nmslib", space="cosinesimil"))
        put_docs(api, "t", [[1, 0, 0, 0]])
        score = api("POST", "/t/_search", knn([0.6, 0.8, 0, 0], k=1))[1]["hits"]["hits"][0]["_score"]
        api.http.close()
    assert score == pytest.approx(expected, rel=1e-6)


def test_method_parameters_need_2_16(versioned):
    # k-NN 2.19, src/main/java/org/opensearch/knn/index/query/request/MethodParameter.java: ef_search is
    # a query parameter from V_2_16_0; k-NN 2.11, KNNQueryBuilder.java fromXContent throws
    # ParsingException "[knn] unknown token [START_OBJECT]" for any object but filter.
    api, server = versioned
    api("PUT", "/t", knn_body())
    put_docs(api, "t", [[1, 0, 0, 0]])
    status, out = api("POST", "/t/_search", knn([1, 0, 0, 0], method_parameters={"ef_search": 64}))
    if server.version == "2.11.0":
        assert status == 400 and out["error"]["type"] == "parsing_exception"
        assert out["error"]["reason"] == "[knn] unknown token [START_OBJECT]"
    else:
        assert status == 200 and server.knn_searches[-1]["ef_search"] == 64


@pytest.mark.parametrize("engine, mapping_ef, query_ef, expected", [
    ("faiss", None, None, 100),   # the graph's default, whatever index.knn.algo_param.ef_search says
    ("faiss", 77, None, 77),      # the graph's own value from method.parameters.ef_search
    ("faiss", 77, 64, 64),        # the query's method_parameters win
    ("nmslib", None, None, 33),   # nmslib alone reads the index setting
    ("lucene", None, 64, 64),     # luceneK = max(k, ef_search)
])
def test_effective_ef_search_per_engine(api, opensearch_standin, engine, mapping_ef, query_ef, expected):
    # k-NN 2.19: jni/src/faiss_wrapper.cpp (query: method_parameters.ef_search, else hnsw.efSearch of the
    # graph, set at build from the mapping's ef_search); src/main/java/org/opensearch/knn/index/util/
    # IndexUtil.java getParametersAtLoading (the index setting, for nmslib only); index/query/
    # KNNQueryFactory.java (lucene: max(k, ef_search)); util/IndexHyperParametersUtil.java (default 100).
    params = {"m": 16, "ef_construction": 100, **({"ef_search": mapping_ef} if mapping_ef else {})}
    body = knn_body(engine=engine, params=params)
    body["settings"]["index"]["knn.algo_param.ef_search"] = 33
    api("PUT", "/t", body)
    put_docs(api, "t", [[1, 0, 0, 0]])
    extra = {"method_parameters": {"ef_search": query_ef}} if query_ef else {}
    assert api("POST", "/t/_search", knn([1, 0, 0, 0], k=1, **extra))[0] == 200
    assert opensearch_standin.knn_searches[-1]["ef_search"] == expected


def test_delayed_answers_arrive_late(opensearch_standin, http):
    import time

    opensearch_standin.delay(r"^GET /$", 0.4)
    started = time.monotonic()
    assert http.get(opensearch_standin.url).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert http.get(opensearch_standin.url).status_code == 200 and time.monotonic() - started < 0.4
