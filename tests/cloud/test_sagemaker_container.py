"""The model archive under the real SageMaker serving stack (TorchServe + the toolkit, in its own
virtualenv without lookalike), called the way SageMaker clients call it: boto3 ``sagemaker-runtime``
``invoke_endpoint`` through AWS's front door, and the container contract (``/ping``, ``/invocations``).
The error answers are compared with the captured ones in tests/fixtures/sagemaker/errors.json,
which the SageMakerEmbedder unit tests replay."""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import time

import numpy as np
import pytest
from botocore.exceptions import ClientError

from lookalike.cloud.sagemaker_embedder import SageMakerEmbedder, model_error
from lookalike.errors import BackendUnavailable, InvalidInput, PayloadTooLarge, UpstreamError
from lookalike.imaging import decode_image
from tests.conftest import ARTIFACTS, ROOT, demo_images
from tests.support.cloud import Endpoint
from tests.support.invoke_endpoint import InvokeEndpointForwarder
from tests.support.procfs import is_loopback

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts TorchServe on 127.0.0.1

MAX_PIXELS = 40_000_000
CAPTURED = ROOT / "tests" / "fixtures" / "sagemaker" / "errors.json"
# LOOKALIKE_CAPTURE_SAGEMAKER_ERRORS=1 rewrites the captured answers from the live container.
RECAPTURE = os.environ.get("LOOKALIKE_CAPTURE_SAGEMAKER_ERRORS") == "1"
FIXTURES = json.loads(CAPTURED.read_text())
CASES = {case["name"]: case for case in FIXTURES["cases"]}


@pytest.fixture(scope="module")
def runtime(sagemaker):
    return sagemaker.runtime()


def local_vectors(embedder, paths) -> np.ndarray:
    return embedder.encode([decode_image(p.read_bytes(), max_pixels=MAX_PIXELS) for p in paths])


def request_body(request: dict) -> bytes:
    if "body_fill" in request:
        char, size = request["body_fill"]
        return char.encode() * size
    return base64.b64decode(request["body_base64"]) if "body_base64" in request else request["body"].encode()


def answer_of(sagemaker, name: str) -> dict:
    """The container's answer to a captured request, in the fixture's shape."""
    request = CASES[name]["request"]
    status, headers, body = sagemaker.container.invoke(request_body(request), request["content_type"],
                                                       request.get("accept"))
    return {"status": status, "content_type": headers.get("content-type"), "body": body.decode("utf-8", "replace")}


def shape(answer: dict) -> tuple:
    """What must stay as captured: status, content type, the message line, a traceback or not, and
    the exception named last (the rest holds this machine's paths)."""
    lines = answer["body"].splitlines()
    traceback = len(lines) > 1 and lines[1] == "Traceback (most recent call last):"
    return (answer["status"], answer["content_type"], lines[0] if lines else "", traceback,
            lines[-1].split(":")[0] if traceback else None)


def check_captured(name: str, answer: dict) -> None:
    if RECAPTURE:
        CASES[name]["answer"] = answer
        CAPTURED.write_text(json.dumps(FIXTURES, indent=1) + "\n")
    assert shape(answer) == shape(CASES[name]["answer"])


def test_runs_the_archive_in_the_toolkit_virtualenv(sagemaker):
    """The stack is the real one: its own venv without lookalike, the archive's wheels installed at
    start, one worker (SAGEMAKER_MODEL_SERVER_WORKERS), listening on loopback only."""
    python = sagemaker.container.venv / "bin" / "python"
    probe = subprocess.run([str(python), "-I", "-c", "import lookalike"], capture_output=True, text=True,
                           cwd=sagemaker.container.base)  # where the launcher runs (not this checkout)
    assert probe.returncode != 0 and "No module named 'lookalike'" in probe.stderr
    log = sagemaker.container.log_path.read_text(errors="replace")
    assert "Successfully installed" in log and "onnxruntime-1.32.0" in log
    status, _, body = sagemaker.container.request("GET", "/models/model")
    assert status == 200 and len(json.loads(body)[0]["workers"]) == 1
    roles = sorted(sagemaker.container.processes().values())
    assert roles.count("java") == 1 and roles.count("worker") == 1
    listening = sagemaker.container.listening()  # inference + management, metrics, 2 x gRPC
    assert len(listening) == 4 and all(is_loopback(ip) for ip, _ in listening), listening


def test_boto3_invoke_endpoint_equals_local_embedder(sagemaker, runtime, embedder):
    for path in demo_images()[::37]:
        response = runtime.invoke_endpoint(EndpointName=sagemaker.endpoint, Body=path.read_bytes(),
                                           ContentType="image/png", Accept="application/json")
        assert response["ContentType"] == "application/json"
        answer = json.loads(response["Body"].read())
        assert answer["dim"] == 1280 and answer["model"] == embedder.name
        np.testing.assert_allclose(np.asarray(answer["vectors"], np.float32), local_vectors(embedder, [path]),
                                   atol=1e-5)


def test_json_batch(sagemaker, runtime, embedder):
    paths = demo_images()[5:9]
    body = json.dumps({"images": [base64.b64encode(p.read_bytes()).decode() for p in paths]})
    response = runtime.invoke_endpoint(EndpointName=sagemaker.endpoint, Body=body, ContentType="application/json")
    vectors = np.asarray(json.loads(response["Body"].read())["vectors"], np.float32)
    np.testing.assert_allclose(vectors, local_vectors(embedder, paths), atol=1e-5)


def test_model_error_carries_the_json_and_the_traceback(sagemaker, runtime):
    """What the Lambda's embedder must clean up: the toolkit's body is the JSON error + traceback."""
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_endpoint(EndpointName=sagemaker.endpoint, Body=b"hello", ContentType="text/plain")
    error = excinfo.value.response
    assert error["Error"]["Code"] == "ModelError" and error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 415
    first, rest = error["OriginalMessage"].split("\n", 1)
    assert json.loads(first)["error"]["code"] == "unsupported_media_type"
    assert rest.startswith("Traceback (most recent call last):") and "InferenceError" in rest


def test_unknown_endpoint_is_a_validation_error(runtime):
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"x", ContentType="image/png")
    assert excinfo.value.response["Error"]["Code"] == "ValidationError"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-endpoint" in excinfo.value.response["Error"]["Message"]


def test_container_contract(sagemaker, embedder):
    assert sagemaker.container.request("GET", "/ping")[0] == 200
    path = demo_images()[11]
    status, headers, body = sagemaker.container.invoke(path.read_bytes(), "image/png", "application/json")
    assert status == 200 and headers["content-type"] == "application/json"
    np.testing.assert_allclose(np.asarray(json.loads(body)["vectors"], np.float32),
                               local_vectors(embedder, [path]), atol=1e-5)


@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if "setup" not in case))
def test_error_answers_are_the_captured_ones(sagemaker, name):
    check_captured(name, answer_of(sagemaker, name))


def test_sagemaker_embedder_equals_local_embedder(sagemaker, runtime, embedder):
    paths = demo_images()[20:26]
    remote = SageMakerEmbedder(sagemaker.endpoint, runtime)
    assert (remote.name, remote.dim) == (embedder.name, embedder.dim)
    expected = local_vectors(embedder, paths)
    decoded = [decode_image(p.read_bytes(), max_pixels=MAX_PIXELS) for p in paths]
    np.testing.assert_allclose(remote.encode(decoded), expected, atol=1e-5)  # PNG of the decoded pixels
    np.testing.assert_allclose(remote.encode_bytes([p.read_bytes() for p in paths]), expected, atol=1e-5)


@pytest.mark.parametrize("name, kind, status, code", [
    ("not_an_image", InvalidInput, 400, "invalid_image"),
    ("truncated_png", InvalidInput, 400, "invalid_image"),
    ("pixel_bomb", PayloadTooLarge, 413, "image_too_large"),
    ("over_torchserve_size_limit", PayloadTooLarge, 413, "payload_too_large"),
])
def test_embedder_turns_real_errors_into_the_local_ones(sagemaker, runtime, name, kind, status, code):
    """The image's own errors, as the real container words them, become lookalike's errors."""
    remote = SageMakerEmbedder(sagemaker.endpoint, runtime, name="efficientnet-lite2", dim=1280,
                               max_payload=8 * 2 ** 20)  # past the client's own cap, to TorchServe's
    with pytest.raises(kind) as excinfo:
        remote.encode_bytes([request_body(CASES[name]["request"])])
    assert (excinfo.value.status, excinfo.value.code) == (status, code)
    assert "Traceback" not in excinfo.value.message and "\n" not in excinfo.value.message
    captured = CASES[name]["answer"]["body"].split("\n", 1)[0]
    if captured:  # lookalike's own message, word for word
        assert excinfo.value.message == json.loads(captured)["error"]["message"]


def test_model_failure_is_502_without_its_text(sagemaker, runtime):
    """A real 500 (the toolkit decodes a JSON body as UTF-8 before inference.py sees it)."""
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_endpoint(EndpointName=sagemaker.endpoint, Body=request_body(CASES["json_not_utf8"]["request"]),
                                ContentType="application/json")
    response = excinfo.value.response
    assert response["OriginalStatusCode"] == 500 and "codec can't decode" in response["OriginalMessage"]
    error = model_error(response["OriginalStatusCode"], response["OriginalMessage"], sagemaker.endpoint)
    assert isinstance(error, UpstreamError) and (error.status, error.code) == (502, "bad_gateway")
    assert "codec" not in error.message and "Traceback" not in error.message and len(error.message) < 100


def test_no_answer_in_time_is_503(sagemaker, runtime):
    """SageMaker's own timeout (a ModelError with status 0), here a front door with a short one."""
    impatient = InvokeEndpointForwarder(sagemaker.container.url, endpoint=sagemaker.endpoint, timeout=0.01).start()
    try:
        remote = SageMakerEmbedder(sagemaker.endpoint, Endpoint(sagemaker.container, impatient).runtime(),
                                   name="efficientnet-lite2", dim=1280)
        with pytest.raises(BackendUnavailable, match="did not answer in time"):
            remote.encode_bytes([p.read_bytes() for p in demo_images()[:16]])
    finally:
        impatient.stop()


def test_latency_per_image(sagemaker, runtime):
    """Round trip of one image through boto3 → front door → TorchServe → inference.py (for the docs)."""
    bodies = [p.read_bytes() for p in demo_images()[::9][:20]]
    runtime.invoke_endpoint(EndpointName=sagemaker.endpoint, Body=bodies[0], ContentType="image/png")  # warm
    timings = []
    for body in bodies:
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName=sagemaker.endpoint, Body=body, ContentType="image/png")["Body"].read()
        timings.append((time.perf_counter() - started) * 1000)
    report = {"images": len(timings), "median_ms": round(statistics.median(timings), 1),
              "p90_ms": round(sorted(timings)[int(0.9 * len(timings)) - 1], 1),
              "mean_bytes": round(statistics.mean(len(b) for b in bodies)),
              "cold_start_s": round(sagemaker.container.cold_start_s, 1)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "sagemaker-latency.json").write_text(json.dumps(report, indent=2))
    print("sagemaker container latency:", report)
    assert report["median_ms"] < 2000


def test_no_free_worker_is_503(sagemaker, runtime):
    """TorchServe's own JSON error (503, no worker), then the worker back: the module's last test."""
    container = sagemaker.container
    assert container.request("PUT", "/models/model?min_worker=0&max_worker=0&synchronous=true")[0] == 200
    try:
        check_captured("no_worker", answer_of(sagemaker, "no_worker"))
        remote = SageMakerEmbedder(sagemaker.endpoint, runtime, name="efficientnet-lite2", dim=1280)
        with pytest.raises(BackendUnavailable) as excinfo:
            remote.encode_bytes([demo_images()[0].read_bytes()])
        assert excinfo.value.status == 503 and "ServiceUnavailableException" not in excinfo.value.message
    finally:
        container.request("PUT", "/models/model?min_worker=1&max_worker=1&synchronous=true", timeout=300)
        deadline = time.monotonic() + 300
        while not container.workers_ready() and time.monotonic() < deadline:
            time.sleep(0.5)
    assert container.workers_ready()
