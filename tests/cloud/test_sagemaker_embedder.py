"""SageMakerEmbedder against a scripted SageMaker runtime on 127.0.0.1: real boto3, real HTTP,
answers and failures in the shapes the service uses (throttling, ModelError, missing endpoint),
and the error bodies captured from the real container (tests/fixtures/sagemaker/) replayed."""

from __future__ import annotations

import base64
import functools
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from lookalike.cloud.sagemaker_embedder import EncodedImage, SageMakerEmbedder
from lookalike import limits
from lookalike.errors import BackendUnavailable, InvalidInput, PayloadTooLarge, UpstreamError
from tests.support.cloud import AWS_TEST_ENV
from tests.support.invoke_endpoint import model_error_body
from tests.conftest import ROOT, free_port

DIM = 4


class ScriptedRuntime:
    """Answers ``POST /endpoints/{name}/invocations``: first the scripted failures, then vectors
    computed from the request (the mean RGB of each decoded image), recording every request."""

    def __init__(self, endpoint: str = "ep"):
        self.endpoint, self.script, self.requests = endpoint, [], []
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                runtime.requests.append((self.path, self.headers["Content-Type"], body))
                status, headers, payload = runtime.answer(self.path, self.headers["Content-Type"], body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, content_type: str, body: bytes):
        if path != f"/endpoints/{self.endpoint}/invocations":
            return error(400, "ValidationError", {"message": f"Endpoint {path.split('/')[2]} of account 1 not found."})
        if self.script:
            status, headers, payload, *delay = self.script.pop(0)
            time.sleep(delay[0] if delay else 0)
            return status, headers, payload
        if content_type == "application/json":
            images = [base64.b64decode(s) for s in json.loads(body)["images"]]
        else:
            images = [body]
        vectors = [self.vector(data) for data in images]
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"vectors": vectors, "dim": DIM, "model": "toy"}).encode()

    @staticmethod
    def vector(data: bytes) -> list[float]:
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
        return [float(pixels[..., c].mean()) for c in range(3)] + [float(pixels.size)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def error(status: int, kind: str, body: dict):
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": kind}, json.dumps(body).encode()


THROTTLED = error(400, "ThrottlingException", {"message": "Rate exceeded"})
NOT_READY = error(429, "ModelNotReadyException", {"message": "Model is loading"})


@pytest.fixture(scope="module")
def _server():
    server = ScriptedRuntime()
    yield server
    server.close()


@pytest.fixture
def runtime(_server):
    _server.script, _server.requests = [], []
    return _server


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    """boto3 signs every request; any key works against the local stand-in."""
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)


@functools.cache
def client(url: str):
    from lookalike.cloud.aws import sagemaker_runtime_client
    from lookalike.config import Settings

    settings = Settings.from_env({"AWS_REGION": "eu-west-1"}, endpoint_url=url)
    return sagemaker_runtime_client(settings, read_timeout=5)


def embedder(url: str, **kwargs) -> SageMakerEmbedder:
    return SageMakerEmbedder("ep", client(url), backoff=0.001, **kwargs)


def png_image(colour, size=(6, 4)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_encode_sends_pixels_losslessly_and_batches(runtime):
    images = [png_image((10 * i, 200 - i, 7)) for i in range(5)]
    emb = embedder(runtime.url)
    vectors = emb.encode(images)
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32
    expected = [[10 * i, 200 - i, 7, 72] for i in range(5)]
    np.testing.assert_array_equal(vectors, np.asarray(expected, np.float32))
    assert emb.name == "toy" and emb.dim == DIM
    assert [r[1] for r in runtime.requests] == ["application/json"]  # one batched request


def test_payload_limit_splits_requests_and_single_images_go_raw(runtime):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)) for _ in range(4)]  # ~7.5 KB PNGs
    small = embedder(runtime.url, max_payload=12_000)
    assert small.encode(images).shape == (4, DIM)
    assert [r[1] for r in runtime.requests] == ["application/octet-stream"] * 4
    with pytest.raises(PayloadTooLarge) as excinfo:  # what the local API answers for a body too large
        embedder(runtime.url, max_payload=5_000).encode(images[:1])
    assert (excinfo.value.status, excinfo.value.code) == (413, "payload_too_large")


def test_encoded_images_are_forwarded_as_they_are(runtime):
    out = io.BytesIO()
    png_image((1, 2, 3)).save(out, format="JPEG", quality=90)
    data = out.getvalue()
    embedder(runtime.url).encode([EncodedImage(data)])
    assert runtime.requests[0][2] == data
    embedder(runtime.url).encode_bytes([data])
    assert runtime.requests[1][2] == data


def test_describe_asks_the_endpoint(runtime):
    emb = embedder(runtime.url)
    assert (emb.name, emb.dim) == ("toy", DIM)
    assert runtime.requests[0][1:] == ("application/json", b'{"images": []}')
    assert embedder(runtime.url).encode([]).shape == (0, DIM)


def test_throttling_is_retried_with_backoff(runtime):
    runtime.script = [THROTTLED, NOT_READY, THROTTLED]
    vectors = embedder(runtime.url).encode([png_image((9, 9, 9))])
    assert vectors[0, 0] == 9 and len(runtime.requests) == 4


def test_throttling_that_persists_is_503(runtime):
    runtime.script = [THROTTLED] * 10
    with pytest.raises(BackendUnavailable, match="busy or unavailable"):
        embedder(runtime.url, max_attempts=3).encode([png_image((9, 9, 9))])
    assert len(runtime.requests) == 3


CAPTURED = {case["name"]: case for case in
            json.loads((ROOT / "tests" / "fixtures" / "sagemaker" / "errors.json").read_text())["cases"]}
# What the client gets for each error the real container answered with (the local API's answer
# for the same image; 502/503 for what is not the image's fault).
EXPECTED = {
    "not_an_image": (400, "invalid_image"), "truncated_png": (400, "invalid_image"),
    "invalid_json": (400, "invalid_input"), "invalid_base64": (400, "invalid_input"),
    "pixel_bomb": (413, "image_too_large"), "too_many_images": (413, "payload_too_large"),
    "over_torchserve_size_limit": (413, "payload_too_large"),
    "unsupported_content_type": (502, "bad_gateway"), "no_content_type": (502, "bad_gateway"),
    "unsupported_accept": (502, "bad_gateway"), "json_not_utf8": (502, "bad_gateway"),
    "no_worker": (503, "backend_unavailable"),
}


def model_error_answer(status: int, body: str):
    """What SageMaker returns for a container's non-2xx answer (424 ModelError)."""
    return error(424, "ModelError", model_error_body(status, body, "ep", "eu-west-1"))


def clean(message: str) -> bool:
    return not any(leak in message for leak in ("Traceback", 'File "', "/", "\n", "InferenceError", "Exception"))


def test_every_captured_answer_has_an_expectation():
    assert set(EXPECTED) == set(CAPTURED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_container_errors_become_the_local_ones(runtime, name):
    answer = CAPTURED[name]["answer"]
    runtime.script = [model_error_answer(answer["status"], answer["body"])]
    with pytest.raises((InvalidInput, PayloadTooLarge, UpstreamError, BackendUnavailable)) as excinfo:
        embedder(runtime.url, name="toy", dim=DIM).encode_bytes([b"image"])
    assert (excinfo.value.status, excinfo.value.code) == EXPECTED[name]
    assert clean(excinfo.value.message), excinfo.value.message
    first = answer["body"].split("\n", 1)[0]
    if excinfo.value.status in (400, 413) and first:  # lookalike's own message, word for word
        assert excinfo.value.message == json.loads(first)["error"]["message"]
    assert len(runtime.requests) == 1  # a model error is not retried


def test_read_timeout_is_503_and_not_retried(runtime):
    from lookalike.cloud.aws import sagemaker_runtime_client
    from lookalike.config import Settings

    impatient = sagemaker_runtime_client(Settings.from_env({"AWS_REGION": "eu-west-1"}, endpoint_url=runtime.url),
                                         read_timeout=0.3)
    runtime.script = [(200, {"Content-Type": "application/json"}, b"{}", 1.0)]
    with pytest.raises(BackendUnavailable, match="did not answer in time"):
        SageMakerEmbedder("ep", impatient, name="toy", dim=DIM, backoff=0.001).encode_bytes([b"image"])
    assert len(runtime.requests) == 1


def test_batches_hold_at_most_the_endpoint_s_image_count(runtime):
    images = [png_image((i, 0, 0), size=(2, 2)) for i in range(limits.MAX_IMAGES_PER_REQUEST + 6)]
    assert embedder(runtime.url).encode(images).shape == (len(images), DIM)
    sizes = [len(json.loads(body)["images"]) for _, _, body in runtime.requests]
    assert sizes == [limits.MAX_IMAGES_PER_REQUEST, 6]


def test_batches_hold_at_most_the_decode_budget_in_pixels(runtime):
    """Few bytes, many pixels (flat 20 MP PNGs): two per request under the 48 MP budget, not all."""
    side = int((limits.DECODE_BUDGET_PIXELS * 0.4) ** 0.5)
    out = io.BytesIO()
    Image.new("RGB", (side, side), (5, 6, 7)).save(out, format="PNG")
    flat = out.getvalue()
    runtime.script = [(200, {"Content-Type": "application/json"},
                       json.dumps({"vectors": [[0.0] * DIM] * n, "dim": DIM, "model": "toy"}).encode())
                      for n in (2, 2, 1)]
    assert embedder(runtime.url, name="toy", dim=DIM).encode_bytes([flat] * 5).shape == (5, DIM)
    assert [r[1] for r in runtime.requests] == ["application/json"] * 2 + ["application/octet-stream"]
    assert [len(json.loads(r[2])["images"]) for r in runtime.requests[:2]] == [2, 2]


def test_unknown_endpoint_is_503(runtime):
    emb = SageMakerEmbedder("nope", client(runtime.url), backoff=0.001)
    with pytest.raises(BackendUnavailable, match="does not exist"):
        emb.encode([png_image((1, 1, 1))])


def test_unreachable_endpoint_is_503():
    emb = SageMakerEmbedder("ep", client(f"http://127.0.0.1:{free_port()}"), backoff=0.001, max_attempts=2)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        emb.encode([png_image((1, 1, 1))])


@pytest.mark.parametrize("answer", [
    (200, {"Content-Type": "application/json"}, b"<html>oops</html>"),
    (200, {"Content-Type": "application/json"}, b'{"vectors": [[1, 2]], "dim": 2, "model": "toy"}'),
    (200, {"Content-Type": "application/json"}, b'{"vectors": [], "dim": 4, "model": "toy"}'),
    (200, {"Content-Type": "application/json"}, b'[1, 2, 3]'),
])
def test_nonsense_answers_are_502(runtime, answer):
    runtime.script = [answer]
    with pytest.raises(UpstreamError):
        embedder(runtime.url, name="toy", dim=DIM).encode([png_image((1, 1, 1))])


def test_no_endpoint_configured():
    with pytest.raises(BackendUnavailable, match="LOOKALIKE_SAGEMAKER_ENDPOINT"):
        SageMakerEmbedder("", client=None)
