"""int8 (real quantization of Lite2 with the bundled calibration set) and the OpenVINO engine
against ONNX Runtime fp32 on real images."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embedders import create_embedder
from lookalike.embedders.quantize import calibration_files
from lookalike.errors import ConfigError
from lookalike.imaging import decode_image
from tests.conftest import CACHE_DIR, demo_images

pytestmark = pytest.mark.slow  # quantizes the real model once (cached in CACHE_DIR, like the fp32 export)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def assert_close_to(reference: np.ndarray, vectors: np.ndarray, minimum: float, mean: float) -> None:
    """Unit-length float32 vectors of the reference's shape, within these cosines of it."""
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = cosines(vectors, reference)
    assert cos.min() > minimum and cos.mean() > mean, cos


@pytest.fixture(scope="module")
def images():
    return [decode_image(p.read_bytes(), max_pixels=40_000_000) for p in demo_images()[::15]]


@pytest.fixture(scope="module")
def reference(embedder, images):
    return embedder.encode(images)


@pytest.fixture(scope="module")
def int8():
    return create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="onnxruntime", precision="int8")


def test_int8_model_is_quantized_once_and_cached(int8, embedder):
    from lookalike.embedders.quantize import ensure_int8

    path = int8.model_path
    assert path.parent == CACHE_DIR / "models" and "-int8-" in path.name and path.with_suffix(".json").is_file()
    assert path.stat().st_size < embedder.model_path.stat().st_size / 3  # int8 weights
    stamp = path.stat().st_mtime_ns
    assert ensure_int8(embedder.model_path, CACHE_DIR, embedder.spec) == path
    assert path.stat().st_mtime_ns == stamp
    assert len(calibration_files()) == 300


def test_int8_embeds_close_to_fp32(int8, embedder, images, reference):
    assert_close_to(reference, int8.encode(images), 0.93, 0.98)
    assert int8.name == embedder.name and int8.dim == embedder.dim
    assert int8.fingerprint.endswith("@onnxruntime-int8") and int8.fingerprint != embedder.fingerprint


def test_openvino_fp32_matches_onnx_runtime(embedder, images, reference):
    for bulk in (False, True):  # latency: one stream; throughput: the images spread over streams
        ov = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="fp32",
                             bulk=bulk)
        # One fixed input shape: a batch of any size never makes the plugin prepare a new one.
        assert ov._compiled.input(0).partial_shape.is_static
        vectors = ov.encode(images)
        np.testing.assert_allclose(vectors, reference, atol=5e-4)
        assert cosines(vectors, reference).min() > 0.99999
        # Pixels scaled inside OpenVINO's graph (+u8) give ONNX Runtime's vectors from numpy's scaling.
        assert ov.fingerprint == embedder.fingerprint + "+u8@openvino-fp32"
    np.testing.assert_allclose(ov.encode(images[:1]), reference[:1], atol=5e-4)  # one image, fewer than streams


def test_openvino_takes_pillows_pixels_as_they_are(embedder, images):
    """OpenVINO's prepare hands over the resized crop's uint8 pixels (grey in three equal channels)
    and scales them in its graph; float arrays (another engine's prepared input) are refused."""
    from PIL import Image

    from lookalike.embedders.preprocess import resize_and_crop

    ov = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="fp32", bulk=True)
    crop = embedder.spec.crop
    assert ov.prepared_shape == (crop, crop, 3) and ov.prepared_dtype == np.uint8
    pixels = ov.prepare(images[0])
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, np.asarray(resize_and_crop(images[0], embedder.spec)))
    grey = images[1].convert("L")
    spent = np.zeros_like(pixels)
    again = ov.prepare(grey, out=spent)
    assert again is spent and np.array_equal(again, np.asarray(resize_and_crop(grey.convert("RGB"), embedder.spec)))
    np.testing.assert_allclose(ov.encode([grey]), embedder.encode([grey.convert("RGB")]), atol=5e-4)
    with pytest.raises(ValueError, match="uint8"):
        ov.encode_prepared(embedder.prepare(images[0])[None].transpose(0, 2, 3, 1).copy())
    with pytest.raises(ValueError, match="shape"):
        ov.encode_prepared(np.zeros((1, 3, crop, crop), np.uint8))
    with pytest.raises(ValueError, match="RGB or L"):
        ov.prepare(Image.new("RGBA", (8, 8)))


def test_openvino_int8_runs_the_same_file_close_to_onnx_runtime(int8, images):
    ov = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="int8", bulk=True)
    assert ov.model_path == int8.model_path
    cos = cosines(ov.encode(images), int8.encode(images))
    assert cos.min() > 0.95 and cos.mean() > 0.98, cos
    assert ov.fingerprint != int8.fingerprint


def test_two_images_a_request_give_the_vectors_of_one(images, monkeypatch):
    """The throughput session runs two images a request on AMX CPUs: the vectors are the same as
    one a request, for odd batches (the tail padded, its extra vector dropped) as for even ones."""
    import lookalike.embedders.openvino as ovm

    amx, vnni = "flags\t: fpu avx512f avx512_vnni amx_int8 amx_tile", "flags\t: fpu avx512f avx512_vnni"
    assert ovm.images_per_request(True, amx) == 2
    assert ovm.images_per_request(False, amx) == ovm.images_per_request(True, vnni) == 1
    made = {}
    for per in (1, 2):
        monkeypatch.setattr(ovm, "images_per_request", lambda bulk, cpuinfo=None, per=per: per)
        made[per] = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="int8",
                                    bulk=True)
        assert tuple(made[per]._compiled.input(0).shape)[0] == per
    batch = np.stack([made[1].prepare(image) for image in images])
    for n in (1, 2, 3, len(batch)):
        np.testing.assert_array_equal(made[2].encode_prepared(batch[:n]), made[1].encode_prepared(batch[:n]))


def test_queued_requests_give_the_same_vectors(images, monkeypatch):
    """The throughput session keeps REQUESTS_PER_STREAM requests a stream in flight; the latency
    session one (a single image on it skips the stream's thread). The vectors are those of one
    request a stream, in the batch's order."""
    import lookalike.embedders.openvino as ovm

    made = {}
    for queued in (1, 2):
        monkeypatch.setattr(ovm, "REQUESTS_PER_STREAM", queued)
        made[queued] = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino",
                                       precision="int8", bulk=True)
    streams = int(made[1]._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    assert (made[1]._infer.jobs, made[2]._infer.jobs) == (streams, 2 * streams)
    latency = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="int8")
    assert latency._infer.jobs == int(latency._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    batch = np.stack([made[1].prepare(image) for image in images])
    for n in (1, 3, len(batch)):
        np.testing.assert_array_equal(made[2].encode_prepared(batch[:n]), made[1].encode_prepared(batch[:n]))
    # The latency session runs a single image with infer() and a batch with start/wait: the same
    # vectors from the same compiled model.
    one_by_one = np.concatenate([latency.encode_prepared(batch[i:i + 1]) for i in range(3)])
    np.testing.assert_array_equal(one_by_one, latency.encode_prepared(batch[:3]))


def test_bf16_only_under_openvino(images, reference):
    with pytest.raises(ConfigError, match="openvino"):
        create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="onnxruntime", precision="bf16")
    try:
        bf16 = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="bf16")
    except ConfigError as exc:  # a CPU without AVX-512 BF16 or AMX says so in one line
        assert "no bf16 support" in str(exc) and "\n" not in str(exc)
        pytest.skip(f"this CPU runs no bf16: {exc}")
    assert cosines(bf16.encode(images), reference).min() > 0.97


def test_int8_bf16_runs_the_int8_file_with_its_float_part_in_bf16(int8, images, reference):
    with pytest.raises(ConfigError, match="openvino"):
        create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="onnxruntime", precision="int8-bf16")
    try:
        mixed = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="int8-bf16",
                                bulk=True)
    except ConfigError as exc:  # a CPU without AVX-512 BF16 or AMX says so in one line
        assert "no bf16 support" in str(exc) and "\n" not in str(exc)
        pytest.skip(f"this CPU runs no bf16: {exc}")
    ov8 = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="int8", bulk=True)
    assert mixed.model_path == int8.model_path
    vectors, ints = mixed.encode(images), ov8.encode(images)
    assert cosines(vectors, reference).min() > 0.93 and cosines(vectors, reference).mean() > 0.98
    assert not np.array_equal(vectors, ints)  # the first convolution really ran in another precision
    assert mixed.fingerprint.endswith("@openvino-int8-bf16") and mixed.fingerprint != ov8.fingerprint


def _conv_weight_ranges(path) -> list[tuple[int, int]]:
    """(group, largest |int8 weight|) of each quantized convolution of a QDQ file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    ranges = []
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in dequantized:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            weights = numpy_helper.to_array(inits[dequantized[node.input[1]]]).astype(np.int32)
            ranges.append((group, int(np.abs(weights).max())))
    return ranges


@pytest.fixture(scope="module")
def w7():
    return create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="openvino", precision="int8-w7",
                           bulk=True)


def test_int8_w7_is_its_own_file_with_the_summed_weights_in_half_the_range(w7, int8, embedder):
    """Without VNNI, u8 x s8 products are added in pairs into 16 bits: 255 x 127 x 2 overflows,
    255 x 64 x 2 does not. The regular convolutions' weights must stay within 64; the int8 file's
    use the full range (so this would fail on it)."""
    from lookalike.embedders.quantize import ensure_int8

    path = w7.model_path
    assert path.parent == CACHE_DIR / "models" and "-int8w7-" in path.name and path != int8.model_path
    assert path.stat().st_size < embedder.model_path.stat().st_size / 3
    stamp = path.stat().st_mtime_ns
    assert ensure_int8(embedder.model_path, CACHE_DIR, embedder.spec, half_range=True) == path
    assert path.stat().st_mtime_ns == stamp
    regular = [m for group, m in _conv_weight_ranges(path) if group == 1]
    assert len(regular) > 30 and max(regular) <= 64
    assert max(m for group, m in _conv_weight_ranges(int8.model_path) if group == 1) == 127


def test_int8_w7_embeds_close_to_fp32_under_openvino_only(w7, embedder, images, reference):
    assert_close_to(reference, w7.encode(images), 0.9, 0.97)
    assert w7.fingerprint.endswith("@openvino-int8-w7") and w7.fingerprint != embedder.fingerprint
    with pytest.raises(ConfigError, match="openvino") as excinfo:
        create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, engine="onnxruntime", precision="int8-w7")
    assert "\n" not in str(excinfo.value)
