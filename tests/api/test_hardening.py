"""The HTTP server against hostile input and unkind clients, over real sockets.

Most cases run the real app under the real uvicorn (:func:`lookalike.api.server`'s protocol) in
a thread, with a small real service; the memory case runs ``lookalike serve`` itself.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from lookalike.api.app import create_app
from lookalike.api.server import protocol
from tests.api.test_http_contract import MeanColour, png
from tests.conftest import LiveServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Threaded:
    """The app under uvicorn with lookalike's protocol, in a thread on 127.0.0.1."""

    def __init__(self, app, *, header_timeout: float = 10.0):
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                http=protocol(header_timeout), timeout_keep_alive=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from lookalike.index.faiss_index import FaissIndex
    from lookalike.search.schema import Limits
    from lookalike.search.service import SearchService

    embedder = MeanColour()
    index = FaissIndex(tmp_path_factory.mktemp("idx"), 3, model={"name": embedder.name, "dim": 3})
    index.add(["a", "b"], embedder.encode([Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]),
              [{"label": "red"}, {"label": "blue"}])
    return SearchService(embedder, index, limits=Limits())


@pytest.fixture(scope="module")
def server(settings_factory, service, tmp_path_factory):
    settings = settings_factory(api_key="k3y", body_timeout=2.0, web_dir=tmp_path_factory.mktemp("noweb"))
    running = Threaded(create_app(settings, service=service), header_timeout=1.5)
    yield running
    running.stop()


def url(server, path="/search"):
    return f"http://127.0.0.1:{server.port}{path}"


def post(server, body: bytes, headers=None, path="/search"):
    return httpx.post(url(server, path), content=body, headers={"content-type": "application/json",
                                                                "x-api-key": "k3y", **(headers or {})}, timeout=30)


# ----- 2. bad input is a 4xx, never a 5xx --------------------------------------------------
NESTED = "[" * 100_000 + "]" * 100_000
BAD_BODIES = {
    "nested 100k deep": NESTED,
    "nested inside filter": '{"image": "AAAA", "filter": {"label": ' + NESTED + "}}",
    "unterminated objects": '{"a":' * 5000,
    "k superscript two": '{"image": "%s", "k": "\u00b2"}' % png(),
    "k 5000 digits": '{"image": "%s", "k": %s}' % (png(), "9" * 5000),
    "k as text": '{"image": "%s", "k": "5"}' % png(),
    "k arabic digit": '{"image": "%s", "k": "\u0665"}' % png(),
    "k null": '{"image": "%s", "k": null}' % png(),
    "k fraction": '{"image": "%s", "k": 5.5}' % png(),
    "empty image": '{"image": ""}',
    "unknown field": '{"image": "%s", "K": 5}' % png(),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_bodies_are_400(server, name):
    r = post(server, BAD_BODIES[name].encode())
    assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_input", "invalid_image"), r.text


def test_non_ascii_key_and_signature_are_401(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:  # raw bytes: clients refuse to send these
        body = b'{"image": "AAAA"}'
        s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nx-api-key: \xc3\xa9\r\n"
                  b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 401") and b'"unauthorized"' in answer
    r = httpx.get(url(server, "/images/a?sig=%C3%A9"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_ppm_is_not_an_image_here(server):
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PPM")
    r = post(server, json.dumps({"image": base64.b64encode(out.getvalue()).decode()}).encode())
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image"


@pytest.mark.parametrize("encode", [base64.encodebytes, base64.urlsafe_b64encode,
                                    lambda raw: base64.b64encode(raw).rstrip(b"=")], ids=["mime", "urlsafe", "unpadded"])
def test_base64_variants_are_accepted(server, encode):
    out = io.BytesIO()
    Image.new("RGB", (9, 7), (250, 5, 5)).save(out, format="PNG")
    r = post(server, json.dumps({"image": encode(out.getvalue()).decode(), "k": 1}).encode())
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "a"


# ----- 3. clients that send the whole body first still get the answer ----------------------
def _urllib(server, body: bytes, content_type="application/json"):
    request = urllib.request.Request(url(server), data=body, method="POST",
                                     headers={"content-type": content_type, "x-api-key": "k3y"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("size", [7 * 1024 * 1024, 20 * 1024 * 1024])
def test_urllib_gets_the_413_for_a_big_body(server, size):
    status, body = _urllib(server, b"x" * size)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_urllib_gets_the_415(server):
    status, body = _urllib(server, b"x" * (3 * 1024 * 1024), content_type="text/plain")
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"


def test_http_client_connection_close_gets_the_413(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/search", body=b"x" * (8 * 1024 * 1024),
                 headers={"content-type": "application/json", "connection": "close", "x-api-key": "k3y"})
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == "payload_too_large"


# ----- 4. after a 500 the connection stays usable -----------------------------------------
def test_keep_alive_survives_a_500(settings_factory, service, tmp_path):
    class Broken:
        index, embedder, limits = service.index, service.embedder, service.limits

        def search(self, request):
            raise RuntimeError("a bug")

    running = Threaded(create_app(settings_factory(web_dir=tmp_path), service=Broken()))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
        conn.request("POST", "/search", body=json.dumps({"image": png()}), headers={"content-type": "application/json"})
        r = conn.getresponse()
        assert r.status == 500 and json.loads(r.read())["error"]["code"] == "internal_error"
        assert r.getheader("connection") != "close"
        conn.request("GET", "/healthz")  # same connection
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    finally:
        running.stop()


# ----- 5. a client that goes away mid-body is one line in the log ---------------------------
def test_disconnect_mid_body_is_one_log_line(server, caplog):
    with caplog.at_level(logging.DEBUG):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nx-api-key: k3y\r\n"
                      b"content-length: 100000\r\n\r\n{\"image\": \"AAAA")
            time.sleep(0.3)
        time.sleep(0.5)
    text = caplog.text
    assert "Traceback" not in text and "Exception in ASGI" not in text and "unhandled" not in text
    assert "went away" in text
    assert post(server, json.dumps({"image": png()}).encode()).status_code == 200


# ----- 6. slow clients cannot hold sockets ------------------------------------------------
def test_slowloris_headers_are_cut_off(server):
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    try:
        for s in sockets:
            s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # keep trickling: each byte would reset uvicorn's keep-alive timer
            time.sleep(0.5)
            for s in sockets:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
        time.sleep(1.5)
        closed = 0
        for s in sockets:
            s.settimeout(2)
            data = _read_all(s)
            closed += data.startswith(b"HTTP/1.1 408") or data == b""
        assert closed == len(sockets)
    finally:
        for s in sockets:
            s.close()


def test_slow_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nx-api-key: k3y\r\n"
                  b"content-length: 1000\r\n\r\n{")
        s.settimeout(10)
        started = time.monotonic()
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
    assert b"connection: close" in answer.lower() and time.monotonic() - started < 8


@pytest.mark.parametrize("raw", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS ClientHello on the plain port
    b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",  # a header line without a colon
    # both framings, and a request after it that must not be answered (RFC 9112 section 6.1: close)
    b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n{}{}{}",
], ids=["tls-client-hello", "header-without-colon", "length-and-chunked", "two-lengths"])
def test_bytes_that_are_not_http_get_a_json_400(server, raw):
    """Answered in the API's error shape (by the server's protocol, or for both framings at once by
    the app's edge) and the connection closed: a request it cannot frame cannot be kept alive."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(raw)
        s.settimeout(5)
        answer = _read_all(s)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower(), answer
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_endless_headers_are_cut_off_at_a_bound(server):
    """Header lines that never end the header block: refused once they pass h11's 16 KB bound,
    long before the header deadline, not buffered (uvicorn's httptools protocol keeps them all)."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        line, sent = b"X-Junk: " + b"a" * 8000 + b"\r\n", 0
        try:
            while sent < 256 * 1024 * 1024:  # the server closes long before this
                s.sendall(line * 8)
                sent += 8 * len(line)
        except OSError:
            pass
        s.settimeout(5)
        answer = _read_all(s)
    assert sent < 64 * 1024 * 1024, sent  # what the socket buffers took before the reset (~5 MB here)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"]["code"] == "bad_request", answer


def test_pipelined_requests_are_answered_in_order(server):
    """Two requests in one write (HTTP/1.1 pipelining): both answered, in order, and the header
    deadline, re-armed after the first answer, does not cut the second one off."""
    search = json.dumps({"image": png(), "k": 1}).encode()
    raw = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nx-api-key: k3y\r\n"
           b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(search), search))
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(raw)
        s.settimeout(10)
        answer = _read_all(s)
    first, second = answer.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and b'"status":"ok"' in first
    assert second.startswith(b"200") and json.loads(second.partition(b"\r\n\r\n")[2])["results"][0]["id"] == "a"


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


# ----- 13. HEAD and OPTIONS ----------------------------------------------------------------
def test_head_and_options_are_true(server):
    r = httpx.head(url(server, "/healthz"))
    assert r.status_code == 200 and r.content == b""
    assert httpx.head(url(server, "/images/a?size=thumb"), headers={"x-api-key": "k3y"}).status_code in (200, 404)
    r = httpx.options(url(server, "/search"))
    assert r.status_code == 204 and r.headers["allow"] == "OPTIONS, POST"


# ----- 1. memory: sixteen 39.7-megapixel requests at once ----------------------------------
def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_sixteen_huge_images_at_once_stay_under_a_gigabyte(demo_index_dir):
    """A 50 KB PNG of 6300 x 6300 blank pixels decodes to ~120 MB; sixteen at once must neither
    take the server past ~1 GB nor be dropped: each gets 200, or 503 with Retry-After."""
    out = io.BytesIO()
    Image.new("RGB", (6300, 6300), (255, 255, 255)).save(out, format="PNG")
    body = json.dumps({"image": base64.b64encode(out.getvalue()).decode(), "k": 3})
    server = LiveServer(demo_index_dir)
    try:
        before = _rss_mb(server.proc.pid)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: httpx.post(server.url + "/search", content=body, timeout=120,
                                                         headers={"content-type": "application/json"}), range(16)))
        statuses = [r.status_code for r in answers]
        assert all(s in (200, 503) for s in statuses), statuses
        assert all(r.headers.get("retry-after") for r in answers if r.status_code == 503)
        assert statuses.count(200) >= 4, statuses  # the budget admits them in turn, it does not refuse all
        peak, after = _peak_rss_mb(server.proc.pid), _rss_mb(server.proc.pid)
        print(f"server RSS before {before:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB; statuses {statuses}")
        assert peak < 1100, f"peak RSS {peak:.0f} MB"
        assert after < before + 250, f"RSS after the burst {after:.0f} MB (before {before:.0f} MB)"
    finally:
        server.stop()
