"""One HTTP contract, run against both adapters of :mod:`lookalike.api.http`: the FastAPI app and
the API Gateway/Lambda handler must answer every request here identically (status, error code,
the headers a client relies on, the JSON body).

The service behind them is a real :class:`SearchService` over a FAISS index, with a tiny
deterministic embedder so the suite needs no model; the model path has its own tests.
"""

from __future__ import annotations

import base64
import copy
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.api.app import create_app
from lookalike.api.lambda_app import LambdaApp
from lookalike.errors import BackendUnavailable
from lookalike.index.faiss_index import FaissIndex
from lookalike.search.schema import Limits
from lookalike.search.service import SearchService
from tests.support.cloud import load_event

ORIGIN = "https://search.example.org"
KEY = "s3cret-key"


class MeanColour:
    """A deterministic stand-in model: the mean RGB of the image, as a unit vector."""

    name, dim, fingerprint = "mean-colour", 3, None

    def encode(self, images):
        rows = np.array([np.asarray(im.convert("RGB"), np.float32).reshape(-1, 3).mean(0) + 1 for im in images])
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def png(colour=(200, 30, 30)) -> str:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    embedder = MeanColour()
    index = FaissIndex(tmp_path_factory.mktemp("idx"), embedder.dim, model={"name": embedder.name, "dim": 3})
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 10, 10)]
    vectors = embedder.encode([Image.new("RGB", (4, 4), c) for c in colours])
    index.add([f"id{i}" for i in range(4)], vectors, [{"label": "red" if c[0] > 200 else "other"} for c in colours])
    return SearchService(embedder, index, limits=Limits())


class Fastapi:
    name = "fastapi"

    def __init__(self, settings, factory):
        self.client = TestClient(create_app(settings.replace(web_dir=settings.cache_dir / "no-web"),
                                            service_factory=factory))

    def __call__(self, method, path, headers=None, body=None):
        r = self.client.request(method, path, headers=headers or {}, content=body)
        parsed = r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, parsed


class Lambda:
    name = "lambda"

    def __init__(self, settings, factory):
        self.app = LambdaApp(settings, service_factory=factory)

    def __call__(self, method, path, headers=None, body=None):
        event = copy.deepcopy(load_event("healthz"))
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in (headers or {}).items()}
        event.update(resource=path, path=path, httpMethod=method, headers=headers,
                     multiValueHeaders={k: [v] for k, v in headers.items()},
                     body=body.decode() if isinstance(body, bytes) else body, isBase64Encoded=False)
        out = self.app.handle(event, None)
        return out["statusCode"], {k.lower(): v for k, v in out["headers"].items()}, \
            (json.loads(out["body"]) if out["body"] else None)


def _factory(service, with_index: bool):
    def make(settings):
        if not with_index:
            raise BackendUnavailable("No index in /nowhere yet: run `lookalike index DIR` first.")
        return service
    return make


@pytest.fixture(params=[Fastapi, Lambda], ids=["fastapi", "lambda"])
def adapter(request):
    return request.param


@pytest.fixture
def call(adapter, settings_factory, service):
    """``call(method, path, headers, body, *, index=True, **settings)`` on the adapter under test."""
    def run(method, path, headers=None, body=None, *, index=True, **overrides):
        settings = settings_factory(**{"cors_origins": (ORIGIN,), **overrides})
        return adapter(settings, _factory(service, index))(method, path, headers, body)
    return run


def search_body(**extra) -> bytes:
    return json.dumps({"image": png(), "k": 2, **extra}).encode()


JSON = {"content-type": "application/json"}


def test_healthz_with_an_index(call):
    status, headers, body = call("GET", "/healthz")
    assert status == 200 and body == {"status": "ok", "count": 4, "model": "mean-colour", "dim": 3}
    assert headers["x-request-id"]


def test_healthz_without_an_index_is_503_and_says_why(call):
    status, headers, body = call("GET", "/healthz", index=False)
    assert status == 503 and body["status"] == "unavailable" and "lookalike index" in body["message"]
    assert headers["retry-after"] == "5"


def test_healthz_head_has_the_status_and_no_body(call):
    assert call("HEAD", "/healthz")[0] == 200 and call("HEAD", "/healthz")[2] is None
    assert call("HEAD", "/healthz", index=False)[0] == 503


def test_search_answers_with_the_same_shape(call):
    status, headers, body = call("POST", "/search", JSON, search_body())
    assert status == 200 and [r["id"] for r in body["results"]] == ["id3", "id0"]  # nearest red first
    assert set(body["results"][0]) == {"id", "label", "score", "url"} and headers["content-type"] == "application/json"


@pytest.mark.parametrize("method, path, allow", [("GET", "/search", "OPTIONS, POST"),
                                                 ("PUT", "/search", "OPTIONS, POST"),
                                                 ("DELETE", "/search", "OPTIONS, POST"),
                                                 ("POST", "/healthz", "GET, HEAD, OPTIONS")])
def test_wrong_method_is_405_with_a_true_allow(call, method, path, allow):
    status, headers, body = call(method, path, {**JSON, "origin": ORIGIN})
    assert status == 405 and headers["allow"] == allow
    assert body["error"]["code"] == "method_not_allowed" and path in body["error"]["message"]
    assert headers["access-control-allow-origin"] == ORIGIN  # browsers can read it


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "image/png"])
def test_search_needs_json(call, content_type):
    headers = {"content-type": content_type} if content_type else {}
    status, _, body = call("POST", "/search", headers, search_body())
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"


def test_oversize_body_is_413(call):
    big = json.dumps({"image": "A" * (7 * 1024 * 1024)}).encode()
    status, _, body = call("POST", "/search", JSON, big)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("key", [None, "wrong", "é-not-ascii"])
def test_missing_or_wrong_key_is_401(call, key):
    headers = {**JSON, **({"x-api-key": key} if key else {})}
    if key and not key.isascii():
        headers["x-api-key"] = key.encode()  # raw UTF-8 header bytes
    status, _, body = call("POST", "/search", headers, search_body(), api_key=KEY)
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_the_right_key_is_let_in(call):
    assert call("POST", "/search", {**JSON, "x-api-key": KEY}, search_body(), api_key=KEY)[0] == 200


def test_bad_request_is_4xx_while_no_index(call):
    status, _, body = call("POST", "/search", JSON, b'{"k": 3}', index=False)
    assert status == 400 and body["error"]["code"] == "invalid_input"


def test_cors_preflight_from_an_allowed_origin(call):
    status, headers, body = call("OPTIONS", "/search", {"origin": ORIGIN, "access-control-request-method": "POST",
                                                        "access-control-request-headers": "content-type,x-api-key"})
    assert status == 204 and body is None
    assert headers["access-control-allow-origin"] == ORIGIN and headers["vary"] == "Origin"
    assert headers["access-control-allow-methods"] == "POST"
    assert headers["access-control-allow-headers"] == "content-type, x-api-key"
    assert headers["access-control-max-age"] == "600"


def test_cors_preflight_from_another_origin_is_403(call):
    status, headers, body = call("OPTIONS", "/search", {"origin": "https://evil.example",
                                                        "access-control-request-method": "POST"})
    assert status == 403 and body["error"]["code"] == "cors_forbidden"
    assert "access-control-allow-origin" not in headers


def test_plain_options_lists_the_methods(call):
    status, headers, body = call("OPTIONS", "/healthz")
    assert status == 204 and headers["allow"] == "GET, HEAD, OPTIONS" and body is None


def test_any_origin_with_star(call):
    status, headers, _ = call("GET", "/healthz", {"origin": "https://anyone.example"}, cors_origins=("*",))
    assert status == 200 and headers["access-control-allow-origin"] == "*" and "vary" not in headers


def test_both_adapters_agree_request_by_request(settings_factory, service):
    """The same requests through both adapters: identical status, error code and body."""
    requests = [("GET", "/healthz", {}, None), ("GET", "/search", JSON, None), ("POST", "/search", {}, b"{}"),
                ("POST", "/search", JSON, b"not json"), ("POST", "/search", JSON, search_body(k=0)),
                ("POST", "/search", JSON, search_body(filter={"label": "red"})),
                ("OPTIONS", "/search", {"origin": ORIGIN, "access-control-request-method": "POST"}, None)]
    settings = settings_factory(cors_origins=(ORIGIN,))
    fast, lam = Fastapi(settings, _factory(service, True)), Lambda(settings, _factory(service, True))
    for method, path, headers, body in requests:
        a, b = fast(method, path, headers, body), lam(method, path, headers, body)
        if a[2] and "took_ms" in a[2]:
            a[2]["took_ms"] = b[2]["took_ms"] = 0
        assert (a[0], a[2]) == (b[0], b[2]), (method, path)
        for header in ("allow", "access-control-allow-origin", "access-control-allow-methods", "retry-after"):
            assert a[1].get(header) == b[1].get(header), (method, path, header)


def test_search_by_id_leaves_the_entry_out(call):
    status, _, body = call("POST", "/search", JSON, json.dumps({"id": "id0", "k": 2}).encode())
    ids = [r["id"] for r in body["results"]]
    assert status == 200 and len(ids) == 2 and ids[0] == "id3" and "id0" not in ids


def test_search_by_unknown_id_is_404(call):
    status, _, body = call("POST", "/search", JSON, json.dumps({"id": "nope", "k": 2}).encode())
    assert status == 404 and body["error"]["code"] == "not_found" and "nope" in body["error"]["message"]


@pytest.mark.parametrize("payload", [{"id": "id0", "image": "AAAA"}, {"id": ""}, {"id": 5}, {"id": "x" * 600}])
def test_search_by_id_needs_exactly_one_sane_id(call, payload):
    status, _, body = call("POST", "/search", JSON, json.dumps(payload).encode())
    assert status == 400 and body["error"]["code"] == "invalid_input"
