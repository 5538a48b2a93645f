"""The model archive behind `lookalike sagemaker-serve`, called the way SageMaker clients call it:
boto3 ``sagemaker-runtime`` ``invoke_endpoint`` and the container contract (``/ping``, ``/invocations``)."""

from __future__ import annotations

import base64
import json
import statistics
import time

import httpx
import numpy as np
import pytest
from botocore.exceptions import ClientError

from lookalike.cloud.sagemaker_embedder import SageMakerEmbedder
from lookalike.imaging import decode_image
from tests.support.cloud import AWS_TEST_ENV, SageMakerServer, build_model_archive
from tests.conftest import ARTIFACTS, demo_images

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1

MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    archive = build_model_archive(tmp_path_factory.mktemp("dist") / "model.tar.gz")
    server = SageMakerServer(archive, endpoint="lookalike-test")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runtime(server):
    import boto3

    return boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="eu-west-1",
                        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"])


def local_vectors(embedder, paths) -> np.ndarray:
    return embedder.encode([decode_image(p.read_bytes(), max_pixels=MAX_PIXELS) for p in paths])


def test_boto3_invoke_endpoint_equals_local_embedder(server, runtime, embedder):
    paths = demo_images()[::37]
    for path in paths:
        response = runtime.invoke_endpoint(EndpointName=server.endpoint, Body=path.read_bytes(),
                                           ContentType="image/png", Accept="application/json")
        assert response["ContentType"] == "application/json"
        answer = json.loads(response["Body"].read())
        assert answer["dim"] == 1280 and answer["model"] == embedder.name
        np.testing.assert_allclose(np.asarray(answer["vectors"], np.float32), local_vectors(embedder, [path]),
                                   atol=1e-5)


def test_json_batch(server, runtime, embedder):
    paths = demo_images()[5:9]
    body = json.dumps({"images": [base64.b64encode(p.read_bytes()).decode() for p in paths]})
    response = runtime.invoke_endpoint(EndpointName=server.endpoint, Body=body, ContentType="application/json")
    vectors = np.asarray(json.loads(response["Body"].read())["vectors"], np.float32)
    np.testing.assert_allclose(vectors, local_vectors(embedder, paths), atol=1e-5)


def test_unsupported_content_type_is_415_through_boto3(server, runtime):
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_endpoint(EndpointName=server.endpoint, Body=b"hello", ContentType="text/plain")
    error = excinfo.value.response
    assert error["Error"]["Code"] == "ModelError" and error["OriginalStatusCode"] == 415
    assert "text/plain" in error["Error"]["Message"] and "not supported" in error["Error"]["Message"]


def test_bad_image_is_400_through_boto3(server, runtime):
    data = demo_images()[0].read_bytes()
    for body in (b"definitely not an image", data[: len(data) // 2]):
        with pytest.raises(ClientError) as excinfo:
            runtime.invoke_endpoint(EndpointName=server.endpoint, Body=body, ContentType="image/png")
        assert excinfo.value.response["OriginalStatusCode"] == 400
        assert "invalid_image" in excinfo.value.response["OriginalMessage"]


def test_unknown_endpoint_is_a_validation_error(server, runtime):
    with pytest.raises(ClientError) as excinfo:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"x", ContentType="image/png")
    assert excinfo.value.response["Error"]["Code"] == "ValidationError"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-endpoint" in excinfo.value.response["Error"]["Message"]


def test_container_contract(server, embedder):
    assert httpx.get(server.url + "/ping").status_code == 200
    path = demo_images()[11]
    ok = httpx.post(server.url + "/invocations", content=path.read_bytes(),
                    headers={"content-type": "image/png", "accept": "application/json"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/json"
    np.testing.assert_allclose(np.asarray(ok.json()["vectors"], np.float32), local_vectors(embedder, [path]),
                               atol=1e-5)
    assert httpx.post(server.url + "/invocations", content=b"x", headers={"content-type": "text/csv"}).status_code \
        == 415
    assert httpx.post(server.url + "/invocations", content=b"x",
                      headers={"content-type": "image/jpeg"}).status_code == 400


def test_sagemaker_embedder_equals_local_embedder(server, runtime, embedder):
    paths = demo_images()[20:26]
    remote = SageMakerEmbedder(server.endpoint, runtime)
    assert (remote.name, remote.dim) == (embedder.name, embedder.dim)
    expected = local_vectors(embedder, paths)
    decoded = [decode_image(p.read_bytes(), max_pixels=MAX_PIXELS) for p in paths]
    np.testing.assert_allclose(remote.encode(decoded), expected, atol=1e-5)  # PNG of the decoded pixels
    np.testing.assert_allclose(remote.encode_bytes([p.read_bytes() for p in paths]), expected, atol=1e-5)


def test_latency_per_image(server, runtime):
    """Round trip of one image through boto3 → server → inference.py (recorded for the docs)."""
    paths = demo_images()[::9][:20]
    bodies = [p.read_bytes() for p in paths]
    runtime.invoke_endpoint(EndpointName=server.endpoint, Body=bodies[0], ContentType="image/png")  # warm
    timings = []
    for body in bodies:
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName=server.endpoint, Body=body, ContentType="image/png")["Body"].read()
        timings.append((time.perf_counter() - started) * 1000)
    report = {"images": len(timings), "median_ms": round(statistics.median(timings), 1),
              "p90_ms": round(sorted(timings)[int(0.9 * len(timings)) - 1], 1),
              "mean_bytes": round(statistics.mean(len(b) for b in bodies))}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "sagemaker-latency.json").write_text(json.dumps(report, indent=2))
    print("sagemaker-protocol latency:", report)
    assert report["median_ms"] < 2000
