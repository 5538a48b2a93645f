"""The Lambda edge (lookalike.cloud.lambda_app) on API Gateway event fixtures: routing, CORS,
errors, logging — and the same status and error code as the local FastAPI app for every bad input."""

from __future__ import annotations

import base64
import io
import json
import logging
import runpy

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.api.app import create_app
from lookalike.api.lambda_app import LambdaApp
from lookalike.errors import BackendUnavailable
from lookalike.index.faiss_index import FaissIndex
from lookalike.index.ingest import ingest_folder
from lookalike.search.schema import Limits
from lookalike.search.compat import model_info
from lookalike.search.service import SearchService
from tests.support.cloud import FIXTURE_IMAGE, bad_inputs, load_event
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # embeds with the real model

ORIGIN = "https://lookalike.example.com"


@pytest.fixture(scope="module")
def settings(settings_factory):
    return settings_factory(cors_origins=(ORIGIN,))


@pytest.fixture(scope="module")
def service(settings, embedder, demo_dir, tmp_path_factory):
    """The local search service over two demo classes (birds, fish)."""
    index = FaissIndex(tmp_path_factory.mktemp("idx"), embedder.dim, model=model_info(embedder))
    for label in ("birds", "fish"):
        ingest_folder(demo_dir / label, index, embedder, progress=False, save=False)
    return SearchService(embedder, index, limits=Limits.from_settings(settings))


@pytest.fixture(scope="module")
def app(settings, service):
    return LambdaApp(settings, service_factory=lambda s: service)


@pytest.fixture(scope="module")
def api(settings, service):
    return TestClient(create_app(settings, service=service))


def body_of(response: dict):
    return json.loads(response["body"]) if response["body"] else None


def png(size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def test_fixture_image_is_the_demo_file():
    payload = json.loads(load_event("search")["body"])
    assert base64.b64decode(payload["image"]) == FIXTURE_IMAGE.read_bytes()


def test_search_event(app, api):
    response = app.handle(load_event("search"), None)
    assert response["statusCode"] == 200
    headers = response["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Access-Control-Allow-Origin"] == ORIGIN and headers["Vary"] == "Origin"
    assert headers["X-Request-Id"] == load_event("search")["requestContext"]["requestId"]
    body = body_of(response)
    assert set(body) == {"results", "took_ms"} and len(body["results"]) == 5
    assert set(body["results"][0]) == {"id", "label", "score", "url"}
    assert body["results"][0]["label"] == "birds" and body["results"][0]["score"] > 0.99  # itself
    local = api.post("/search", json=json.loads(load_event("search")["body"])).json()
    assert [(r["id"], r["score"]) for r in body["results"]] == [(r["id"], r["score"]) for r in local["results"]]


def test_base64_encoded_body_and_filter(app):
    plain = body_of(app.handle(load_event("search"), None))
    encoded = body_of(app.handle(load_event("search_base64_body"), None))
    assert [r["id"] for r in encoded["results"]] == [r["id"] for r in plain["results"]]
    filtered = body_of(app.handle(load_event("search_filter"), None))
    assert len(filtered["results"]) == 3 and {r["label"] for r in filtered["results"]} == {"birds"}


BAD = bad_inputs()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_matches_the_local_api(app, api, name):
    event, request = BAD[name]
    response = app.handle(event, None)
    local = api.post("/search", **request)
    assert 400 <= response["statusCode"] < 500
    assert (response["statusCode"], body_of(response)["error"]["code"]) == \
        (local.status_code, local.json()["error"]["code"])
    assert response["headers"]["Access-Control-Allow-Origin"] == ORIGIN  # browsers can read the error


def test_preflight(app, settings, service):
    response = app.handle(load_event("preflight"), None)
    assert response["statusCode"] == 204 and response["body"] == ""
    assert response["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["headers"]["Access-Control-Allow-Methods"]
    assert "content-type" in response["headers"]["Access-Control-Allow-Headers"]
    other = load_event("preflight")
    other["headers"]["Origin"] = "https://evil.example.net"
    refused = app.handle(other, None)
    assert refused["statusCode"] == 403 and "Access-Control-Allow-Origin" not in refused["headers"]
    anyone = LambdaApp(settings.replace(cors_origins=("*",)), service_factory=lambda s: service)
    assert anyone.handle(other, None)["headers"]["Access-Control-Allow-Origin"] == "*"


def test_routes(app, service):
    health = app.handle(load_event("healthz"), None)
    assert health["statusCode"] == 200 and body_of(health)["count"] == len(service.index)
    assert app.handle(load_event("get_search"), None)["statusCode"] == 405
    unknown = load_event("healthz")
    unknown["resource"] = unknown["path"] = "/admin"
    response = app.handle(unknown, None)
    assert response["statusCode"] == 404 and body_of(response)["error"]["code"] == "not_found"


def test_api_key(settings, service):
    app = LambdaApp(settings.replace(api_key="s3cret"), service_factory=lambda s: service)
    event = load_event("search")
    assert app.handle(event, None)["statusCode"] == 401
    event["headers"]["x-api-key"] = "s3cret"
    assert app.handle(event, None)["statusCode"] == 200


def test_backend_down_then_up(settings, service):
    calls = []

    def factory(s):
        calls.append(1)
        if len(calls) == 1:
            raise BackendUnavailable("OpenSearch is not reachable.")
        return service

    app = LambdaApp(settings, service_factory=factory)
    first = app.handle(load_event("search"), None)
    assert first["statusCode"] == 503 and body_of(first)["error"]["code"] == "backend_unavailable"
    assert app.handle(load_event("search"), None)["statusCode"] == 200


def test_unexpected_error_is_a_generic_500(settings):
    def factory(s):
        raise RuntimeError("secret internals")

    response = LambdaApp(settings, service_factory=factory).handle(load_event("search"), None)
    assert response["statusCode"] == 500
    assert body_of(response) == {"error": {"code": "internal_error", "message": "Internal server error."}}


def test_config_error_answers_every_request():
    app = LambdaApp.from_environ({"LOOKALIKE_K_MAX": "many"})
    response = app.handle(load_event("search"), None)
    assert response["statusCode"] == 500 and body_of(response)["error"]["code"] == "config_error"
    assert "LOOKALIKE_K_MAX" in body_of(response)["error"]["message"]


def test_logs_carry_request_id_not_image_bytes(app, caplog):
    event = load_event("search")
    with caplog.at_level(logging.DEBUG, logger="lookalike"):
        app.handle(event, None)
    text = caplog.text
    assert event["requestContext"]["requestId"] in text
    assert json.loads(event["body"])["image"][:40] not in text


def test_handler_module_builds_its_app_from_the_environment(monkeypatch):
    for key in ("LOOKALIKE_CORS_ORIGINS", "LOOKALIKE_SAGEMAKER_ENDPOINT", "LOOKALIKE_OPENSEARCH_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOOKALIKE_CORS_ORIGINS", f"{ORIGIN},https://other.example.org")
    module = runpy.run_path(str(ROOT / "lambda" / "handler.py"))
    response = module["handler"](load_event("preflight"), None)
    assert response["statusCode"] == 204 and response["headers"]["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("name", ["invalid_json", "k_out_of_range", "missing_image", "invalid_base64"])
def test_bad_request_is_4xx_while_backend_is_down(settings, name):
    def factory(s):
        raise BackendUnavailable("OpenSearch is not reachable.")

    response = LambdaApp(settings, service_factory=factory).handle(load_event(name), None)
    assert response["statusCode"] == 400 and body_of(response)["error"]["code"] == "invalid_input"


def test_opensearch_calls_are_bounded_by_the_invocations_remaining_time(settings, monkeypatch):
    """With a Lambda context, OpenSearch calls get the remaining time less a second (a 503, not a kill)."""
    from lookalike.index import opensearch

    seen = []
    real = opensearch.deadline

    def spy(seconds):
        seen.append(seconds)
        return real(seconds)

    monkeypatch.setattr(opensearch, "deadline", spy)

    class Context:
        aws_request_id = "ctx-1"

        def get_remaining_time_in_millis(self):
            return 12_000

    response = LambdaApp(settings, service_factory=lambda s: (_ for _ in ()).throw(
        BackendUnavailable("down"))).handle(load_event("healthz"), Context())
    assert response["statusCode"] == 503 and seen == [11.0]
