"""The HTTP API against a real uvicorn server on 127.0.0.1: contract, bad input, concurrency, auth, CORS."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.conftest import LiveServer, b64, demo_images

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1

QUERY = demo_images()[0]  # a bird


def search(server, payload, **kw):
    return httpx.post(server.url + "/search", json=payload, timeout=30, **kw)


def assert_error(response, status, code=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_healthz_and_openapi(live_server):
    health = httpx.get(live_server.url + "/healthz").json()
    assert health == {"status": "ok", "count": 187, "model": "efficientnet-lite2", "dim": 1280}
    spec = httpx.get(live_server.url + "/openapi.json").json()
    assert "/search" in spec["paths"] and "requestBody" in spec["paths"]["/search"]["post"]
    assert httpx.get(live_server.url + "/docs").status_code == 200


def test_request_ids_are_echoed_or_generated(live_server):
    sent = httpx.get(live_server.url + "/healthz", headers={"x-request-id": "client-42.a:b"})
    assert sent.headers["x-request-id"] == "client-42.a:b"
    for header in ({}, {"x-request-id": "x" * 65}, {"x-request-id": "bad id\twith space"}):
        r = httpx.post(live_server.url + "/search", json={"k": 3}, headers=header)
        assert r.status_code == 400  # error responses carry an id too
        assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])


def test_search_contract(live_server):
    data = QUERY.read_bytes()
    response = search(live_server, {"image": b64(data), "k": 6})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "took_ms"} and body["took_ms"] > 0
    results = body["results"]
    assert len(results) == 6
    assert all(set(r) == {"id", "label", "score", "url"} for r in results)
    assert results[0]["id"] == hashlib.sha256(data).hexdigest()[:16]
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-4) and results[0]["label"] == "birds"
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # The URL serves the indexed image itself, and a thumbnail.
    image = httpx.get(live_server.url + results[0]["url"])
    assert image.status_code == 200 and image.content == data
    thumb = httpx.get(live_server.url + results[0]["url"] + "?size=thumb")
    assert thumb.headers["content-type"] == "image/jpeg" and max(Image.open(io.BytesIO(thumb.content)).size) <= 256


def test_default_k_data_url_and_filter(live_server):
    data = QUERY.read_bytes()
    body = search(live_server, {"image": "data:image/png;base64," + b64(data)}).json()
    assert len(body["results"]) == 5
    fish = search(live_server, {"image": b64(data), "k": 8, "filter": {"label": "fish"}}).json()["results"]
    assert len(fish) == 8 and {r["label"] for r in fish} == {"fish"}
    many = search(live_server, {"image": b64(data), "k": 100}).json()["results"]
    assert len(many) == 100


def bomb() -> bytes:
    return png_bytes(Image.new("L", (12_000, 12_000), 0))


@pytest.mark.parametrize("name,make,status,code", [
    ("invalid base64", lambda d: {"image": "this is not base64!", "k": 5}, 400, "invalid_input"),
    ("not an image", lambda d: {"image": b64(b"hello world, plain text"), "k": 5}, 400, "invalid_image"),
    ("truncated image", lambda d: {"image": b64(d[: len(d) // 2]), "k": 5}, 400, "invalid_image"),
    ("decompression bomb", lambda d: {"image": b64(bomb()), "k": 5}, 413, "image_too_large"),
    ("k zero", lambda d: {"image": b64(d), "k": 0}, 400, "invalid_input"),
    ("k too big", lambda d: {"image": b64(d), "k": 101}, 400, "invalid_input"),
    ("k not a number", lambda d: {"image": b64(d), "k": "lots"}, 400, "invalid_input"),
    ("missing image", lambda d: {"k": 5}, 400, "invalid_input"),
    ("not an object", lambda d: [1, 2, 3], 400, "invalid_input"),
    ("bad filter", lambda d: {"image": b64(d), "filter": {"path": "/etc/passwd"}}, 400, "invalid_input"),
])
def test_bad_input_gets_4xx_json(live_server, name, make, status, code):
    assert_error(search(live_server, make(QUERY.read_bytes())), status, code)
    assert httpx.get(live_server.url + "/healthz").status_code == 200


def test_body_over_6mb(live_server):
    huge = {"image": b64(b"\0" * (6 * 1024 * 1024))}
    assert_error(search(live_server, huge), 413, "payload_too_large")

    def chunks():  # no Content-Length: the server must count while reading
        body = json.dumps(huge).encode()
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    response = httpx.post(live_server.url + "/search", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("headers,content,status", [
    ({"content-type": "text/plain"}, b'{"image": "aGk="}', 415),
    ({}, b'{"image": "aGk="}', 415),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x--", 415),
    ({"content-type": "application/json"}, b"{not json", 400),
    ({"content-type": "application/json"}, b"", 400),
])
def test_wrong_content_type_and_malformed_json(live_server, headers, content, status):
    assert_error(httpx.post(live_server.url + "/search", content=content, headers=headers), status)


def test_unknown_routes_and_ids(live_server):
    assert_error(httpx.get(live_server.url + "/images/doesnotexist"), 404, "not_found")
    assert_error(httpx.get(live_server.url + "/nope/nope"), 404)
    assert_error(httpx.get(live_server.url + "/search"), 405)
    assert_error(httpx.get(live_server.url + "/images/x?size=huge"), 400)


def test_concurrent_requests(live_server):
    queries = demo_images()[::12][:12]
    expected = {q: search(live_server, {"image": b64(q.read_bytes()), "k": 5}).json()["results"] for q in queries}
    bad = {"image": "%%%", "k": 5}

    def one(i):
        if i % 5 == 4:
            return None, search(live_server, bad).status_code
        q = queries[i % len(queries)]
        return q, search(live_server, {"image": b64(q.read_bytes()), "k": 5})

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(one, range(80)))
    for q, response in outcomes:
        if q is None:
            assert response == 400
        else:
            assert response.status_code == 200
            assert [r["id"] for r in response.json()["results"]] == [r["id"] for r in expected[q]]
    assert httpx.get(live_server.url + "/healthz").json()["status"] == "ok"


def test_api_key_and_signed_image_urls(demo_index_dir):
    server = LiveServer(demo_index_dir, env={"LOOKALIKE_API_KEY": "s3cret-key"})
    try:
        payload = {"image": b64(QUERY.read_bytes()), "k": 3}
        assert_error(search(server, payload), 401, "unauthorized")
        assert_error(search(server, payload, headers={"x-api-key": "wrong"}), 401, "unauthorized")
        ok = search(server, payload, headers={"x-api-key": "s3cret-key"})
        assert ok.status_code == 200
        url = ok.json()["results"][0]["url"]
        assert "?sig=" in url
        assert httpx.get(server.url + url).status_code == 200  # works in an <img> tag: no header needed
        bare = url.split("?")[0]
        assert_error(httpx.get(server.url + bare), 401)
        assert_error(httpx.get(server.url + bare + "?sig=forged"), 401)
        assert httpx.get(server.url + bare, headers={"x-api-key": "s3cret-key"}).status_code == 200
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()


def test_cors(demo_index_dir, live_server):
    origin = "https://search.example.org"
    preflight = {"origin": origin, "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type,x-api-key"}
    # Default: no origins allowed, no CORS headers at all.
    r = httpx.options(live_server.url + "/search", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    server = LiveServer(demo_index_dir, env={"LOOKALIKE_CORS_ORIGINS": origin})
    try:
        r = httpx.options(server.url + "/search", headers=preflight)
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == origin
        assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
        r = httpx.options(server.url + "/search", headers={**preflight, "origin": "https://evil.example"})
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"
        r = search(server, {"image": b64(QUERY.read_bytes()), "k": 1}, headers={"origin": origin})
        assert r.headers["access-control-allow-origin"] == origin
    finally:
        server.stop()


def test_no_index_yet_then_index_appears(tmp_path, demo_index_dir):
    """A server started before any index answers 503 JSON, then serves once an index is saved."""
    target = tmp_path / "later"
    server = LiveServer(target)
    try:
        assert_error(search(server, {"image": b64(QUERY.read_bytes())}), 503, "backend_unavailable")
        assert httpx.get(server.url + "/healthz").status_code == 503
        shutil.copytree(demo_index_dir, target, dirs_exist_ok=True)
        assert search(server, {"image": b64(QUERY.read_bytes())}).status_code == 200
    finally:
        server.stop()
