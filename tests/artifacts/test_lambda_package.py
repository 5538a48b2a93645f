"""dist/lambda.zip: small, reproducible, and importable by a bare Python 3.12 that has only what
the Lambda runtime has (boto3) — no numpy, torch, ONNX Runtime or FAISS anywhere on the path."""

from __future__ import annotations

import zipfile

import pytest

from lookalike.artifacts.packaging import build_lambda_zip, prepare_lambda_deps, unzipped_size
from tests.support.cloud import EVENTS, run_in_runtime, runtime_boto3_dir

pytestmark = pytest.mark.slow  # installs the pinned wheels with pip (PyPI)

LIMIT = 15 * 1024 * 1024
HEAVY = ("numpy", "torch", "onnxruntime", "faiss", "sklearn", "scipy", "boto3", "botocore", "grpc", "google")


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """The zip built twice, each from its own fresh install of the pinned wheels."""
    root = tmp_path_factory.mktemp("lambda")
    return [build_lambda_zip(root / f"lambda-{i}.zip", deps_dir=prepare_lambda_deps(root / f"deps-{i}"))
            for i in range(2)]


@pytest.fixture(scope="module")
def unpacked(zips, tmp_path_factory):
    target = tmp_path_factory.mktemp("task")  # like /var/task
    with zipfile.ZipFile(zips[0]) as zf:
        zf.extractall(target)
    return target


@pytest.fixture(scope="module")
def runtime_boto3(tmp_path_factory):
    return runtime_boto3_dir(tmp_path_factory.mktemp("runtime"))


def test_rebuild_is_byte_identical(zips):
    assert zips[0].read_bytes() == zips[1].read_bytes()


def test_size_and_contents(zips):
    size = unzipped_size(zips[0])
    print(f"lambda.zip: {zips[0].stat().st_size / 1e6:.1f} MB zipped, {size / 1e6:.1f} MB unzipped")
    assert size < LIMIT
    with zipfile.ZipFile(zips[0]) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) and "handler.py" in names
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    tops = {n.split("/")[0] for n in names}
    assert not tops & set(HEAVY), tops & set(HEAVY)
    assert {"PIL", "opensearchpy", "lookalike"} <= tops
    assert "lookalike/cloud/sagemaker_server.py" not in names and "lookalike/embedders/onnx.py" not in names
    assert not any(n.endswith((".pyc", "/RECORD")) or n.startswith("bin/") for n in names)
    assert any(n.startswith("PIL/_imaging.cpython-312-") for n in names)


def test_imports_cleanly_without_heavy_packages(unpacked, runtime_boto3):
    out = run_in_runtime(unpacked, runtime_boto3, (
        "import handler, lookalike.api.lambda_app, lookalike.cloud.service, lookalike.index.opensearch, opensearchpy\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r) - {'boto3', 'botocore'})\n"
        "print(json.dumps({'heavy': heavy, 'version': list(sys.version_info[:2]),\n"
        "                  'pil': __import__('PIL').__file__}))\n") % (HEAVY,))
    assert out["heavy"] == [] and out["version"] == [3, 12]
    assert out["pil"].startswith(str(unpacked))


def test_decodes_every_supported_format_like_the_local_code(unpacked, runtime_boto3, tmp_path):
    from PIL import Image

    from lookalike.imaging import decode_image

    gradient = Image.linear_gradient("L").resize((40, 30)).convert("RGB")
    samples = {}
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"):
        samples[fmt] = tmp_path / f"sample.{fmt.lower()}"
        gradient.save(samples[fmt], format=fmt)
    samples["LAB"] = tmp_path / "lab.tiff"
    Image.new("RGB", (4, 3), (9, 99, 199)).convert("LAB").save(samples["LAB"], format="TIFF")
    paths = {name: str(path) for name, path in samples.items()}
    out = run_in_runtime(unpacked, runtime_boto3, (
        "from lookalike.imaging import decode_image\nresult = {}\n"
        f"for name, path in {paths!r}.items():\n"
        "    image = decode_image(open(path, 'rb').read(), max_pixels=10**6)\n"
        "    result[name] = [list(image.size), list(image.getpixel((2, 2)))]\n"
        "print(json.dumps(result))\n"))
    for name, path in samples.items():
        local = decode_image(path.read_bytes(), max_pixels=10**6)
        size, pixel = out[name]
        assert size == list(local.size), name
        assert all(abs(a - b) <= 1 for a, b in zip(pixel, local.getpixel((2, 2)))), (name, pixel)


def test_handler_answers_events_without_backends(unpacked, runtime_boto3):
    """Preflight and input validation need no backend; search without OpenSearch configured is a clear 500."""
    events = {name: str(EVENTS / f"{name}.json") for name in ("preflight", "k_out_of_range", "search")}
    out = run_in_runtime(unpacked, runtime_boto3, (
        "import handler\nout = {}\n"
        f"for name, path in {events!r}.items():\n"
        "    r = handler.handler(json.load(open(path)), None)\n"
        "    out[name] = [r['statusCode'], json.loads(r['body']) if r['body'] else None, r['headers']]\n"
        "print(json.dumps(out))\n"), env={"LOOKALIKE_CORS_ORIGINS": "https://lookalike.example.com",
                                          "LOOKALIKE_IMAGES_BUCKET": "images", "LOOKALIKE_SAGEMAKER_ENDPOINT": "ep"})
    assert out["preflight"][0] == 204
    assert out["preflight"][2]["Access-Control-Allow-Origin"] == "https://lookalike.example.com"
    assert out["k_out_of_range"][:2] == [400, {"error": {"code": "invalid_input",
                                                         "message": "'k' must be in 1..100, got 101."}}]
    status, body, _ = out["search"]
    assert status == 500 and body["error"]["code"] == "config_error" and "OPENSEARCH_URL" in body["error"]["message"]
