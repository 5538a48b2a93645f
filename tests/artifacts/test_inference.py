"""model_package/code/inference.py: the four SageMaker functions, and the real inference toolkit running them."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.imaging import decode_image
from tests.conftest import CACHE_DIR, ROOT, demo_images

pytestmark = pytest.mark.slow  # loads the real ONNX model

INFERENCE = ROOT / "model_package" / "code" / "inference.py"


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def inference():
    spec = importlib.util.spec_from_file_location("lookalike_inference_under_test", INFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The model archive's files written as a folder (what SageMaker unpacks into /opt/ml/model)."""
    from lookalike.artifacts.packaging import model_archive_files

    root = tmp_path_factory.mktemp("model")
    for name, source in model_archive_files(backbone="efficientnet-lite2", cache_dir=CACHE_DIR).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
    return root


@pytest.fixture(scope="module")
def model(inference, model_dir):
    return inference.model_fn(str(model_dir))


def status_of(excinfo) -> tuple[int, str]:
    return excinfo.value.status_code, json.loads(excinfo.value.message)["error"]["code"]


@pytest.mark.parametrize("fmt,content_type", [
    ("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp"),
    ("GIF", "image/gif"), ("TIFF", "image/tiff"), ("PNG", "application/octet-stream"), ("PNG", "IMAGE/PNG; q=1"),
])
def test_input_fn_decodes_raw_images(inference, fmt, content_type):
    data = encode(Image.new("RGB", (20, 10), (255, 0, 0)), fmt)
    images = inference.input_fn(bytearray(data), content_type)
    assert len(images) == 1 and images[0].mode == "RGB" and images[0].size == (20, 10)


def test_input_fn_json_single_and_batch(inference):
    png = encode(Image.new("RGB", (8, 8), "blue"), "PNG")
    one = inference.input_fn(json.dumps({"image": base64.b64encode(png).decode()}), "application/json")
    many = inference.input_fn(json.dumps({"images": [base64.b64encode(png).decode()] * 3}).encode(),
                              "application/json; charset=utf-8")
    assert len(one) == 1 and len(many) == 3
    assert inference.input_fn('{"images": []}', "application/json") == []


@pytest.mark.parametrize("body,content_type,status,code", [
    (b"\x89PNG", "text/plain", 415, "unsupported_media_type"),
    (b"\x89PNG", "", 415, "unsupported_media_type"),
    (b"not an image", "image/png", 400, "invalid_image"),
    (b"", "image/png", 400, "invalid_input"),
    ("{not json", "application/json", 400, "invalid_input"),
    ('{"image": "!!!"}', "application/json", 400, "invalid_input"),
    ('{"image": "aGk=", "images": []}', "application/json", 400, "invalid_input"),
    ('{"images": "aGk="}', "application/json", 400, "invalid_input"),
    ('[1, 2]', "application/json", 400, "invalid_input"),
])
def test_input_fn_errors_carry_status_and_code(inference, body, content_type, status, code):
    with pytest.raises(inference.InferenceError) as excinfo:
        inference.input_fn(body, content_type)
    assert status_of(excinfo) == (status, code)


def test_truncated_image_and_bomb_and_batch_limit(inference):
    png = encode(Image.new("RGB", (64, 64), "red"), "PNG")
    with pytest.raises(inference.InferenceError) as excinfo:
        inference.input_fn(png[: len(png) // 2], "image/png")
    assert status_of(excinfo) == (400, "invalid_image")
    bomb = encode(Image.new("1", (8000, 6000)), "PNG")  # 48 MP, a few KB
    with pytest.raises(inference.InferenceError) as excinfo:
        inference.input_fn(bomb, "image/png")
    assert status_of(excinfo) == (413, "image_too_large")
    payload = json.dumps({"images": [base64.b64encode(png).decode()] * (inference.MAX_BATCH + 1)})
    with pytest.raises(inference.InferenceError) as excinfo:
        inference.input_fn(payload, "application/json")
    assert status_of(excinfo) == (413, "payload_too_large")


def test_decoder_bug_is_not_reported_as_unsupported(inference, monkeypatch):
    def broken(body, content_type):
        raise KeyError("bug in a decoder")

    monkeypatch.setitem(inference.DECODERS, "image/png", broken)
    with pytest.raises(KeyError):
        inference.input_fn(b"x", "image/png")


def test_predict_and_output_equal_the_local_embedder(inference, model, embedder):
    paths = demo_images()[::40]
    images = [decode_image(p.read_bytes(), max_pixels=40_000_000) for p in paths]
    body = json.dumps({"images": [base64.b64encode(p.read_bytes()).decode() for p in paths]})
    payload, content_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"),
                                                                     model), "application/json")
    answer = json.loads(payload)
    assert content_type == "application/json"
    assert answer["dim"] == 1280 and answer["model"] == embedder.name == model.name
    vectors = np.asarray(answer["vectors"], dtype=np.float32)
    np.testing.assert_allclose(vectors, embedder.encode(images), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_output_fn_refuses_other_accept_types(inference, model):
    prediction = inference.predict_fn([], model)
    assert json.loads(inference.output_fn(prediction, "*/*")[0]) == {
        "vectors": [], "dim": 1280, "model": "efficientnet-lite2", "engine": "onnxruntime", "precision": "fp32"}
    with pytest.raises(inference.InferenceError) as excinfo:
        inference.output_fn(prediction, "text/csv")
    assert status_of(excinfo) == (415, "unsupported_media_type")


def test_model_fn_reads_the_manifest(model_dir, model):
    manifest = json.loads((model_dir / "lookalike-model.json").read_text())
    assert manifest["name"] == model.name and manifest["dim"] == model.dim
    # The container prepares pixels with the shipped Pillow wheel, whichever Pillow this process has.
    assert manifest["fingerprint"] == model.fingerprint_with("pillow")
    # fp32 by default, and the manifest says why (the endpoint's CPU is unknown).
    assert (manifest["engine"], manifest["precision"]) == ("onnxruntime", "fp32") == (model.engine, model.precision)
    assert "VNNI" in manifest["choice"]


def write_archive(root: Path, **kwargs) -> Path:
    from lookalike.artifacts.packaging import model_archive_files

    for name, source in model_archive_files(backbone="efficientnet-lite2", cache_dir=CACHE_DIR, **kwargs).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
    return root


def test_int8_archive_embeds_under_inference_py(inference, tmp_path, embedder):
    """PRECISION=int8: the quantized model under ONNX Runtime in inference.py, unchanged; the answer
    and the manifest say int8, and the vectors are the local int8 embedder's."""
    from lookalike.embedders import create_embedder

    root = write_archive(tmp_path / "model", precision="int8")
    manifest = json.loads((root / "lookalike-model.json").read_text())
    local = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="onnxruntime", precision="int8")
    assert (manifest["engine"], manifest["precision"], manifest["fingerprint"]) == (
        "onnxruntime", "int8", local.fingerprint_with("pillow"))
    assert (root / manifest["model"]).stat().st_size == local.model_path.stat().st_size
    model = inference.model_fn(str(root))
    paths = demo_images()[5::50]
    body = json.dumps({"images": [base64.b64encode(p.read_bytes()).decode() for p in paths]})
    answer = json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"),
                                                                 model), "application/json")[0])
    assert (answer["engine"], answer["precision"], answer["model"]) == ("onnxruntime", "int8", embedder.name)
    images = [decode_image(p.read_bytes(), max_pixels=40_000_000) for p in paths]
    vectors = np.asarray(answer["vectors"], np.float32)
    np.testing.assert_allclose(vectors, local.encode(images), atol=1e-5)
    assert np.einsum("ij,ij->i", vectors, embedder.encode(images)).min() > 0.93
    with pytest.raises(ValueError, match="fp32 or int8"):
        write_archive(tmp_path / "bf16", precision="bf16")


class _Request:
    def __init__(self, headers):
        self.headers = headers

    def get_request_properties(self):
        return self.headers


class _Context:
    """The parts of the model server's request context the toolkit's Transformer uses."""

    def __init__(self, model_dir, headers):
        self.system_properties = {"model_dir": str(model_dir)}
        self.request_processor = [_Request(headers)]
        self.status = (200, "")
        self.content_type = None

    def set_response_status(self, code, phrase):
        self.status = (code, phrase)

    def set_response_content_type(self, index, content_type):
        self.content_type = content_type


def test_real_inference_toolkit_maps_errors_to_status_codes(model_dir, embedder, monkeypatch):
    """sagemaker-inference's Transformer (what the SageMaker containers run) drives inference.py."""
    transformer_module = pytest.importorskip("sagemaker_inference.transformer")
    monkeypatch.syspath_prepend(str(model_dir / "code"))
    monkeypatch.setitem(sys.modules, "inference", None)  # restored (removed) after the test
    del sys.modules["inference"]  # the toolkit imports the user module by this name
    transformer = transformer_module.Transformer()
    image = demo_images()[3].read_bytes()

    def call(body: bytes, headers: dict):
        context = _Context(model_dir, headers)
        out = transformer.transform([{"body": bytearray(body)}], context)
        return context, out[0]

    context, out = call(image, {"Content-Type": "image/png", "Accept": "application/json"})
    assert context.status[0] == 200 and context.content_type == "application/json"
    expected = embedder.encode([decode_image(image, max_pixels=40_000_000)])
    np.testing.assert_allclose(np.asarray(json.loads(out)["vectors"], np.float32), expected, atol=1e-6)

    context, out = call(image, {"Content-Type": "text/plain"})
    assert context.status[0] == 415 and "unsupported_media_type" in out
    context, out = call(b"garbage", {"Content-Type": "image/jpeg"})
    assert context.status[0] == 400 and "invalid_image" in out
    context, out = call(b'{"image": 5}', {"Content-Type": "application/json"})
    assert context.status[0] == 400 and "invalid_input" in out


def test_the_pixel_limit_comes_from_the_archive_manifest(inference, model_dir, tmp_path):
    """inference.py reads no environment: the limit is the one the archive was built with."""
    import shutil

    from lookalike import limits

    manifest = json.loads((model_dir / "lookalike-model.json").read_text())
    assert manifest["limits"] == {"max_image_pixels": limits.MAX_IMAGE_PIXELS}
    small = tmp_path / "model"
    shutil.copytree(model_dir, small)
    (small / "lookalike-model.json").write_text(json.dumps({**manifest, "limits": {"max_image_pixels": 1000}}))
    try:
        inference.model_fn(str(small))
        with pytest.raises(Exception) as excinfo:
            inference.input_fn(encode(Image.new("RGB", (40, 40)), "PNG"), "image/png")
        assert status_of(excinfo) == (413, "image_too_large")
        assert "os.environ" not in INFERENCE.read_text()
    finally:
        inference.model_fn(str(model_dir))
