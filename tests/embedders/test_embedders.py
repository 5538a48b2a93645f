"""Embedders: ImageNet EfficientNet-Lite2 via ONNX Runtime, ResNet50 export, custom ONNX models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.embedders import Embedder, create_embedder
from lookalike.embedders.backbones import RANDOM, build, get_backbone
from lookalike.embedders.export import cache_key, ensure_onnx
from lookalike.errors import ConfigError
from lookalike.imaging import decode_image
from tests.conftest import CACHE_DIR, demo_images

pytestmark = pytest.mark.slow


def load(path: Path) -> Image.Image:
    return decode_image(path.read_bytes(), max_pixels=40_000_000)


@pytest.fixture(scope="module")
def samples():
    paths = demo_images()
    return [load(p) for p in paths[::20]]


def test_protocol_shape_dtype_norm(embedder, samples):
    assert isinstance(embedder, Embedder)
    assert embedder.name == "efficientnet-lite2" and embedder.dim == 1280
    vectors = embedder.encode(samples)
    assert vectors.shape == (len(samples), 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 1280)


def test_deterministic_and_batch_independent(embedder, samples):
    a = embedder.encode(samples)
    b = embedder.encode(samples)
    np.testing.assert_array_equal(a, b)
    singles = np.concatenate([embedder.encode([im]) for im in samples])
    np.testing.assert_allclose(a, singles, atol=1e-5)


def test_prepare_path_equals_encode(embedder, samples):
    batch = np.stack([embedder.prepare(im) for im in samples])
    np.testing.assert_allclose(embedder.encode_prepared(batch), embedder.encode(samples), atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        embedder.encode_prepared(np.zeros((1, 3, 224, 224), np.float32))


def test_bulk_session_sleeps_plans_no_memory_pattern_and_embeds_the_same(embedder, samples):
    bulk = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, bulk=True)
    options = bulk._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.enable_mem_pattern is False
    assert embedder._session.get_session_options().enable_mem_pattern is True
    # Batches of different shapes (the last batch of an ingest is short) give the same vectors.
    np.testing.assert_allclose(bulk.encode(samples), embedder.encode(samples), atol=1e-5)
    np.testing.assert_allclose(bulk.encode(samples[:3]), embedder.encode(samples[:3]), atol=1e-5)


def test_onnx_matches_torch(embedder, samples):
    import torch

    model = build("efficientnet-lite2")
    batch = np.stack([embedder.prepare(im) for im in samples[:4]])
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embedder.encode_prepared(batch), expected, atol=1e-4)


def test_imagenet_semantics_same_class_neighbours_beat_chance(embedder):
    """On the demo set, the nearest neighbour shares the query's class far more often than chance."""
    paths = demo_images()
    labels = np.array([p.parent.name for p in paths])
    vectors = embedder.encode([load(p) for p in paths])
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top5 = np.argsort(-sims, axis=1)[:, :5]
    precision_at_5 = (labels[top5] == labels[:, None]).mean()
    counts = {c: (labels == c).sum() for c in set(labels)}
    chance = sum(n * (n - 1) for n in counts.values()) / (len(labels) * (len(labels) - 1))
    assert chance < 0.15
    assert precision_at_5 > 4 * chance, (precision_at_5, chance)
    assert precision_at_5 > 0.6


def test_export_is_cached_and_keyed_by_weights(tmp_path):
    first = ensure_onnx("efficientnet-lite2", CACHE_DIR)
    mtime = first.stat().st_mtime_ns
    assert ensure_onnx("efficientnet-lite2", CACHE_DIR) == first and first.stat().st_mtime_ns == mtime
    assert json.loads(first.with_suffix(".json").read_text())["crop"] == 260
    other = tmp_path / "w.pth"
    other.write_bytes(b"different weights")
    assert cache_key("efficientnet-lite2", other) != first.stem.split("-")[-1]


def test_resnet50_random_weights_export_shape(tmp_path, samples):
    """Shape/export check only: no ImageNet ResNet50 weights exist on this machine."""
    assert get_backbone("resnet50").dim == 2048
    emb = create_embedder("resnet50", cache_dir=tmp_path, weights=RANDOM)
    assert emb.dim == 2048 and emb.spec.crop == 224
    vectors = emb.encode(samples[:2])
    assert vectors.shape == (2, 2048)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_resnet50_loads_torchvision_style_state_dict(tmp_path):
    import torch

    model = build("resnet50", RANDOM)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)  # a torchvision checkpoint carries the classifier too
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    reloaded = build("resnet50", path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        create_embedder("resnet50", cache_dir=tmp_path, weights=tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="unknown backbone"):
        create_embedder("vgg16", cache_dir=tmp_path)


def test_custom_onnx_model_with_spec(tmp_path, samples):
    """--model accepts any ONNX extractor; a 4-D feature map output is average-pooled."""
    import torch

    from lookalike.embedders.export import export_module

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)

        def forward(self, x):
            return self.conv(x)  # (n, 8, h, w)

    torch.manual_seed(0)
    path = tmp_path / "tiny.onnx"
    export_module(Tiny(), path, (1, 3, 64, 64))
    with pytest.raises(ConfigError, match="preprocessing spec"):
        create_embedder(cache_dir=tmp_path, model=path)
    path.with_suffix(".json").write_text(json.dumps(
        {"resize": 72, "crop": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resample": "bilinear"}))
    emb = create_embedder(cache_dir=tmp_path, model=path)
    assert emb.name == "tiny" and emb.dim == 8
    assert emb.encode(samples[:3]).shape == (3, 8)


def test_head_is_applied_after_backbone(tmp_path, embedder, samples):
    import torch

    from lookalike.embedders.export import export_module

    torch.manual_seed(0)
    head = torch.nn.Linear(1280, 16)
    path = tmp_path / "proj16.onnx"
    export_module(head, path, (1, 1280))
    emb = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, head=path)
    assert emb.name == "efficientnet-lite2+proj16" and emb.dim == 16
    base = embedder.encode(samples[:2])
    with torch.no_grad():
        expected = head(torch.from_numpy(base)).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.encode(samples[:2]), expected, atol=1e-5)


def test_broken_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    bad.with_suffix(".json").write_text('{"resize": 256, "crop": 224, "mean": [0,0,0], "std": [1,1,1]}')
    with pytest.raises(ConfigError, match="cannot load"):
        create_embedder(cache_dir=tmp_path, model=bad)
