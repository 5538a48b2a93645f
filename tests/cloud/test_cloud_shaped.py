"""The cloud deployment, shaped on 127.0.0.1: the Lambda handler (in-process and as the built zip
under Python 3.12) with the Terraform environment variables, the model archive under the real
SageMaker serving stack (TorchServe + toolkit, tests/cloud/conftest.py) behind AWS's InvokeEndpoint
front door, the OpenSearch stand-in (SigV4 verified) filled by ``lookalike push``, and moto's S3
holding the demo images. Answers, and errors, must equal the local FAISS search and API."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from lookalike.api.app import create_app
from lookalike.api.lambda_app import LambdaApp
from lookalike.artifacts.packaging import build_lambda_zip, prepare_lambda_deps
from lookalike.imaging import decode_image
from lookalike.search.schema import SearchRequest
from lookalike.search.local import build_local_service
from tests.support.cloud import (
    AWS_TEST_ENV,
    EVENTS,
    FIXTURE_IMAGE,
    REGION,
    Endpoint,
    MotoServer,
    bad_inputs,
    load_event,
    run_in_runtime,
    runtime_boto3_dir,
    with_body,
)
from tests.conftest import ROOT, b64, demo_images, free_port
from tests.support.opensearch_standin import OpenSearchStandin, SigV4Auth

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1

BUCKET = "lookalike-images-test"
PREFIX = "images/"
ORIGIN = "https://lookalike.example.com"
TTL = 600
INDEX = "demo"


@dataclass
class Cloud:
    sagemaker: Endpoint
    moto: MotoServer
    opensearch: OpenSearchStandin

    def aws_env(self, **overrides: str) -> dict[str, str]:
        """Credentials and where boto3 sends each service (what a real account would resolve)."""
        return {**AWS_TEST_ENV, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL_S3": self.moto.url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker.url,
                **overrides}

    def lambda_env(self, **overrides: str) -> dict[str, str]:
        """The Lambda function's environment, with the names Terraform sets."""
        return {"LOOKALIKE_SAGEMAKER_ENDPOINT": self.sagemaker.endpoint,
                "LOOKALIKE_OPENSEARCH_URL": self.opensearch.url, "LOOKALIKE_OPENSEARCH_INDEX": INDEX,
                "LOOKALIKE_OPENSEARCH_AUTH": "sigv4",
                "LOOKALIKE_IMAGES_BUCKET": BUCKET, "LOOKALIKE_IMAGES_PREFIX": PREFIX,
                "LOOKALIKE_CORS_ORIGINS": ORIGIN, "LOOKALIKE_URL_TTL_SECONDS": str(TTL), **overrides}

    def cli(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("LOOKALIKE_", "AWS_"))}
        full.update({**self.aws_env(), **(env or {})})
        result = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env=full, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture(scope="module")
def cloud(sagemaker, demo_index_dir, demo_dir):
    started = []
    try:
        started.append(MotoServer())
        started.append(OpenSearchStandin(auth=SigV4Auth(AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                                                        AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"], REGION, "es")).start())
        cloud = Cloud(sagemaker, *started)
        cloud.moto.s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        cloud.cli("push", "--to", "opensearch", "--url", cloud.opensearch.url, "--index-name", INDEX,
                  "--index-dir", str(demo_index_dir), "--auth", "sigv4", "--region", REGION, "--quiet")
        uploaded = json.loads(cloud.cli("cloud-upload", str(demo_dir), "--bucket", BUCKET, "--prefix", PREFIX,
                                        "--region", REGION).stdout)
        assert uploaded == {"uploaded": 187, "present": 0}
        yield cloud
    finally:
        for server in reversed(started):
            server.stop()


def environment(mp: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in list(os.environ):
        if key.startswith(("LOOKALIKE_", "AWS_")):
            mp.delenv(key)
    for key, value in env.items():
        mp.setenv(key, value)


@pytest.fixture(scope="module")
def handler(cloud):
    """lambda/handler.py imported as the Lambda runtime imports it, with the function's environment."""
    with pytest.MonkeyPatch.context() as mp:
        environment(mp, {**cloud.lambda_env(), **cloud.aws_env()})
        yield runpy.run_path(str(ROOT / "lambda" / "handler.py"))["handler"]


@pytest.fixture(scope="module")
def local(settings_factory, demo_index_dir):
    """`lookalike search` / `lookalike serve`: the local service over the FAISS demo index."""
    return build_local_service(settings_factory(index_dir=demo_index_dir))


@pytest.fixture(scope="module")
def sha_to_file(demo_dir):
    return {hashlib.sha256(p.read_bytes()).hexdigest()[:16]: p for p in demo_images()}


def answer(handler, event) -> tuple[int, dict, dict]:
    response = handler(event, None)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None, response["headers"]


def check_presigned(url: str, id: str, sha_to_file) -> None:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == f"/{BUCKET}/{PREFIX}{id}.png"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and len(query["X-Amz-Signature"]) == 64
    assert query["X-Amz-Expires"] == str(TTL) and f"/{REGION}/s3/aws4_request" in query["X-Amz-Credential"]
    fetched = httpx.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == sha_to_file[id].read_bytes()


@pytest.mark.parametrize("event_name", ["search", "search_filter", "search_base64_body"])
def test_search_equals_local_faiss_search(handler, local, sha_to_file, event_name):
    event = load_event(event_name)
    status, body, headers = answer(handler, event)
    assert status == 200, body
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    payload = json.loads(event["body"]) if not event["isBase64Encoded"] else None
    k = (payload or {}).get("k", 5)
    flt = (payload or {}).get("filter")
    expected = local.search(SearchRequest(image=FIXTURE_IMAGE.read_bytes(), k=k, filter=flt)).to_dict()["results"]
    assert [r["id"] for r in body["results"]] == [r["id"] for r in expected]
    assert [r["label"] for r in body["results"]] == [r["label"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in body["results"]], [r["score"] for r in expected], atol=1e-4)
    for result in body["results"]:
        check_presigned(result["url"], result["id"], sha_to_file)


def test_more_queries_equal_local(handler, local):
    for path in demo_images()[3::31]:
        status, body, _ = answer(handler, with_body("search", json.dumps({"image": b64(path.read_bytes()), "k": 10})))
        expected = local.search(SearchRequest(image=path.read_bytes(), k=10)).to_dict()["results"]
        assert status == 200 and [r["id"] for r in body["results"]] == [r["id"] for r in expected], path


def test_search_by_id_reads_the_stored_vector_from_opensearch(handler, local, cloud, sha_to_file):
    """{"id"} through the Lambda: the vector comes from OpenSearch (_mget), the endpoint is not called,
    and the answer equals the local "more like this"; an unknown id is the local API's 404."""
    query_id = local.search(SearchRequest(image=FIXTURE_IMAGE.read_bytes(), k=1)).results[0].id
    cloud.opensearch.requests.clear()
    status, body, _ = answer(handler, with_body("search", json.dumps({"id": query_id, "k": 6})))
    assert cloud.opensearch.requests_to(r"_mget")  # the stored vector, read from OpenSearch
    expected = local.search(SearchRequest(id=query_id, k=6)).to_dict()["results"]
    assert status == 200 and query_id not in [r["id"] for r in body["results"]]
    assert [r["id"] for r in body["results"]] == [r["id"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in body["results"]], [r["score"] for r in expected], atol=1e-4)
    check_presigned(body["results"][0]["url"], body["results"][0]["id"], sha_to_file)
    status, body, _ = answer(handler, with_body("search", json.dumps({"id": "0123456789abcdef", "k": 6})))
    assert status == 404 and body["error"]["code"] == "not_found"


BAD = bad_inputs()


@pytest.fixture(scope="module")
def local_api(settings_factory, local):
    return TestClient(create_app(settings_factory(cors_origins=(ORIGIN,)), service=local))


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_same_status_and_code_as_local_api(handler, local_api, name):
    event, request = BAD[name]
    status, body, headers = answer(handler, event)
    reference = local_api.post("/search", **request)
    assert (status, body["error"]["code"]) == (reference.status_code, reference.json()["error"]["code"])
    assert 400 <= status < 500 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Traceback" not in json.dumps(body)


def test_preflight_and_health(handler, cloud):
    status, _, headers = answer(handler, load_event("preflight"))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN
    status, body, _ = answer(handler, load_event("healthz"))
    assert (status, body["count"], body["model"], body["dim"]) == (200, 187, "efficientnet-lite2", 1280)
    # The OpenSearch calls were SigV4-signed with the function's credentials and verified.
    assert cloud.opensearch.requests_to(r"/_search") and all(
        r.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256") for r in cloud.opensearch.requests_to(".*"))


def app_with(cloud, mp, **overrides) -> LambdaApp:
    aws = {k: v for k, v in overrides.items() if k.startswith("AWS_")}
    lookalike = {k: v for k, v in overrides.items() if k.startswith("LOOKALIKE_")}
    environment(mp, {**cloud.lambda_env(**lookalike), **cloud.aws_env(**aws)})
    return LambdaApp.from_environ()


def test_sagemaker_down_is_503(cloud):
    with pytest.MonkeyPatch.context() as mp:
        app = app_with(cloud, mp, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=f"http://127.0.0.1:{free_port()}")
        status, body, headers = answer(app.handle, load_event("search"))
    assert status == 503 and body["error"]["code"] == "backend_unavailable"
    assert "unreachable" in body["error"]["message"] and headers["Access-Control-Allow-Origin"] == ORIGIN


def test_missing_endpoint_is_503(cloud):
    with pytest.MonkeyPatch.context() as mp:
        app = app_with(cloud, mp, LOOKALIKE_SAGEMAKER_ENDPOINT="not-deployed")
        status, body, _ = answer(app.handle, load_event("search"))
    assert status == 503 and "does not exist" in body["error"]["message"]


def assert_clean(response: dict) -> dict:
    """A JSON error as the local API writes it: nothing of the container's traceback or paths."""
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    for leak in ("Traceback", 'File "', "sagemaker_inference", ".py", "InferenceError", "\n", "{"):
        assert leak not in body["error"]["message"], (leak, response["body"])
    return body["error"]


def test_endpoint_pixel_limit_gives_the_local_413(cloud, local_api):
    """A limit mismatch (the function allows more pixels than the archive): the container refuses
    the bomb with its 413 and the client gets the local API's 413 image_too_large, not a 502."""
    event, request = BAD["bomb"]
    with pytest.MonkeyPatch.context() as mp:
        app = app_with(cloud, mp, LOOKALIKE_MAX_IMAGE_PIXELS="100000000")
        response = app.handle(event, None)
    error = assert_clean(response)
    reference = local_api.post("/search", **request)
    assert (response["statusCode"], error["code"]) == (reference.status_code, reference.json()["error"]["code"]) \
        == (413, "image_too_large")
    assert "40000000" in error["message"]  # the archive's own limit, in lookalike's words


@pytest.mark.parametrize("name", ["not_an_image", "truncated"])
def test_container_refusing_the_image_gives_the_local_400(cloud, local_api, monkeypatch, name):
    """With the Lambda's own decode skipped (as in a function older than its model archive), the
    image reaches the real container, whose 400 + traceback becomes the local API's 400 JSON."""
    import lookalike.cloud.service

    monkeypatch.setattr(lookalike.cloud.service, "decode_image", lambda data, max_pixels: None)
    event, request = BAD[name]
    with pytest.MonkeyPatch.context() as mp:
        app = app_with(cloud, mp)
        response = app.handle(event, None)
    error = assert_clean(response)
    reference = local_api.post("/search", **request)
    assert (response["statusCode"], error) == (reference.status_code, reference.json()["error"])
    assert (response["statusCode"], error["code"]) == (400, "invalid_image")


def test_built_zip_under_python312(cloud, tmp_path_factory, local, sha_to_file):
    """dist/lambda.zip itself: unpacked like /var/task, run by a bare Python 3.12 with the runtime's boto3."""
    root = tmp_path_factory.mktemp("lambda-zip")
    package = build_lambda_zip(root / "lambda.zip", deps_dir=prepare_lambda_deps(root / "deps"))
    task = root / "task"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(task)
    events = {name: str(EVENTS / f"{name}.json") for name in ("search", "not_an_image", "preflight")}
    out = run_in_runtime(task, runtime_boto3_dir(root), (
        "import handler\nout = {}\n"
        f"for name, path in {events!r}.items():\n"
        "    r = handler.handler(json.load(open(path)), None)\n"
        "    out[name] = [r['statusCode'], json.loads(r['body']) if r['body'] else None]\n"
        "out['numpy'] = 'numpy' in sys.modules\n"
        "print(json.dumps(out))\n"), env={**cloud.lambda_env(), **cloud.aws_env()})
    assert out["numpy"] is False
    status, body = out["search"]
    expected = local.search(SearchRequest(image=FIXTURE_IMAGE.read_bytes(), k=5)).to_dict()["results"]
    assert status == 200 and [r["id"] for r in body["results"]] == [r["id"] for r in expected]
    check_presigned(body["results"][0]["url"], body["results"][0]["id"], sha_to_file)
    status, body = out["not_an_image"]
    assert status == 400 and body["error"]["code"] == "invalid_image"
    assert out["preflight"][0] == 204


def test_cloud_index_cli(cloud, tmp_path, demo_dir, embedder, sha_to_file):
    """`lookalike cloud-index DIR`: upload to S3 and embed through the endpoint into OpenSearch."""
    folder = tmp_path / "photos"
    picked = []
    for label in ("fish", "planets"):
        (folder / label).mkdir(parents=True)
        for path in sorted((demo_dir / label).glob("*.png"))[:3]:
            shutil.copy(path, folder / label / path.name)
            picked.append(folder / label / path.name)
    args = ["cloud-index", str(folder), "--endpoint", cloud.sagemaker.endpoint, "--opensearch-url",
            cloud.opensearch.url, "--opensearch-index", "fresh", "--bucket", BUCKET, "--prefix", "fresh/",
            "--region", REGION, "--json"]
    env = {"LOOKALIKE_OPENSEARCH_AUTH": "sigv4"}
    first = json.loads(cloud.cli(*args, env=env).stdout)
    assert first["upload"] == {"uploaded": 6, "present": 0}
    assert (first["index"]["indexed"], first["count"]) == (6, 6)
    again = json.loads(cloud.cli(*args, env=env).stdout)
    assert again["upload"] == {"uploaded": 0, "present": 6} and again["index"]["skipped"] == 6

    from lookalike.index.opensearch import OpenSearchIndex

    with pytest.MonkeyPatch.context() as mp:
        environment(mp, cloud.aws_env())
        index = OpenSearchIndex.connect(cloud.opensearch.url, "fresh", auth="sigv4", region=REGION)
        ids = [hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in picked]
        expected = embedder.encode([decode_image(p.read_bytes(), max_pixels=40_000_000) for p in picked])
        np.testing.assert_allclose(index.get_vectors(ids), expected, atol=1e-5)
        assert index.model["name"] == "efficientnet-lite2"
        assert [index.get(i)["label"] for i in ids] == ["fish"] * 3 + ["planets"] * 3

        app = app_with(cloud, mp, LOOKALIKE_OPENSEARCH_INDEX="fresh", LOOKALIKE_IMAGES_PREFIX="fresh/")
        status, body, _ = answer(app.handle, with_body("search", json.dumps({"image": b64(picked[4].read_bytes())})))
    assert status == 200 and body["results"][0]["id"] == ids[4] and len(body["results"]) == 5
    url = body["results"][0]["url"]
    assert urlsplit(url).path == f"/{BUCKET}/fresh/{ids[4]}.png"
    assert httpx.get(url, timeout=10).content == picked[4].read_bytes()


# ----- an index with label-free post-processing (lookalike.index.postprocessing) --------------
PROCESSED = "demo-power-center"


@pytest.fixture(scope="module")
def processed_index_dir(demo_index_dir, tmp_path_factory):
    """The demo index converted to ``power-center`` in place of re-embedding (the stored vectors invert)."""
    from lookalike.index import postprocessing
    from lookalike.index.faiss_index import FaissIndex

    path = tmp_path_factory.mktemp("demo-power-center") / "index"
    shutil.copytree(demo_index_dir, path)
    index = FaissIndex.load(path)
    assert postprocessing.prepare(index, "power-center").fitted_count == 187
    index.save()
    return path


@pytest.fixture(scope="module")
def processed(cloud, processed_index_dir, settings_factory):
    """The local service over the post-processed index, pushed to OpenSearch as PROCESSED."""
    cloud.cli("push", "--to", "opensearch", "--url", cloud.opensearch.url, "--index-name", PROCESSED,
              "--index-dir", str(processed_index_dir), "--auth", "sigv4", "--region", REGION, "--quiet")
    return build_local_service(settings_factory(index_dir=processed_index_dir))


@pytest.mark.parametrize("vectors", ["numpy", "lists"])
def test_post_processed_index_lambda_equals_local(cloud, processed, local, monkeypatch, vectors):
    """The Lambda reads the transform from the OpenSearch mapping's _meta and applies it to each query
    (pure Python when the endpoint's vectors are lists, as in the Lambda package without numpy);
    its answers equal the local post-processed search, and differ from the plain index's."""
    import lookalike.cloud.sagemaker_embedder as sagemaker_embedder

    if vectors == "lists":
        monkeypatch.setattr(sagemaker_embedder, "_as_vectors", lambda rows, dim: rows)
    with pytest.MonkeyPatch.context() as mp:
        app = app_with(cloud, mp, LOOKALIKE_OPENSEARCH_INDEX=PROCESSED)
        assert app.service().index.model["postprocess"] == processed.index.model["postprocess"]
        differs = 0
        for path in demo_images()[5::37]:
            status, body, _ = answer(app.handle, with_body("search", json.dumps({"image": b64(path.read_bytes()),
                                                                                 "k": 8})))
            expected = processed.search(SearchRequest(image=path.read_bytes(), k=8)).to_dict()["results"]
            assert status == 200 and [r["id"] for r in body["results"]] == [r["id"] for r in expected], path
            np.testing.assert_allclose([r["score"] for r in body["results"]], [r["score"] for r in expected],
                                       atol=1e-4)
            plain = local.search(SearchRequest(image=path.read_bytes(), k=8)).to_dict()["results"]
            differs += max(abs(a["score"] - b["score"]) for a, b in zip(expected, plain)) > 0.01
        assert differs == len(demo_images()[5::37])  # the transform changes every answer's scores
        query_id = expected[0]["id"]
        status, body, _ = answer(app.handle, with_body("search", json.dumps({"id": query_id, "k": 6})))
    by_id = processed.search(SearchRequest(id=query_id, k=6)).to_dict()["results"]
    assert status == 200 and [r["id"] for r in body["results"]] == [r["id"] for r in by_id]
