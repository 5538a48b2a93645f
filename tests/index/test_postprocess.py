"""The post-processing transform: fit, apply, invert, storage, the pure-Python path and the ONNX head."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.embedders.base import l2_normalise
from lookalike.errors import ConfigError
from lookalike.index.postprocess import PostProcess, TransformedEmbedder, embedder_applies, power_normalise


def relu_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Non-negative unit vectors with a shared component, like ReLU-pooled backbone features."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(0.3, 1.0, (n, dim)), 0) + np.linspace(2, 0, dim)
    return l2_normalise(x)


@pytest.fixture
def fitted():
    x = relu_vectors(50)
    return x, PostProcess.fit("power-center", x)


def test_apply_is_sqrt_then_center_then_l2(fitted):
    x, t = fitted
    y = np.sqrt(x) / np.linalg.norm(np.sqrt(x), axis=1, keepdims=True)
    np.testing.assert_allclose(t.mean, y.mean(axis=0), atol=1e-6)
    expected = (y - y.mean(axis=0)) / np.linalg.norm(y - y.mean(axis=0), axis=1, keepdims=True)
    np.testing.assert_allclose(t.apply(x), expected, atol=1e-6)
    assert t.fitted_count == 50 and t.dim == 32 and t.active
    # Centering changes the vectors: the mean direction is gone from the transformed collection.
    assert np.linalg.norm(t.apply(x).mean(axis=0)) < 0.2 < np.linalg.norm(x.mean(axis=0))


def test_invert_recovers_the_backbone_vectors(fitted):
    x, t = fitted
    np.testing.assert_allclose(t.invert(t.apply(x)), x, atol=1e-5)
    other = relu_vectors(10, seed=3)  # vectors it was not fitted on invert as well
    np.testing.assert_allclose(t.invert(t.apply(other)), other, atol=1e-5)
    unfitted = PostProcess.unfitted("power-center", 32)
    np.testing.assert_allclose(unfitted.apply(x), power_normalise(x), atol=1e-6)
    np.testing.assert_allclose(unfitted.invert(unfitted.apply(x)), x, atol=1e-5)


def test_pure_python_apply_equals_numpy(fitted):
    x, t = fitted
    for row in x[:5]:
        assert isinstance(t.apply_one(row.tolist()), list)
        np.testing.assert_allclose(t.apply_one(row.tolist()), t.apply(row[None])[0], atol=1e-6)
    lists = t.apply_rows([r.tolist() for r in x[:3]])
    assert isinstance(lists, list) and np.allclose(lists, t.apply(x[:3]), atol=1e-6)
    with pytest.raises(ValueError, match="expected 32 values"):
        t.apply_one([0.1] * 31)


def test_dict_round_trip_is_json_and_keeps_the_digest(fitted):
    x, t = fitted
    data = json.loads(json.dumps(t.to_dict()))
    assert set(data) == {"kind", "format", "dim", "fitted_count", "mean", "digest"}
    back = PostProcess.from_dict(data)
    assert back.digest == t.digest and back.fitted_count == 50
    np.testing.assert_array_equal(back.apply(x), t.apply(x))
    assert PostProcess.fit("power-center", x[:40]).digest != t.digest
    data["mean"] = PostProcess.fit("power-center", x[:40]).to_dict()["mean"]
    with pytest.raises(ConfigError, match="digest"):
        PostProcess.from_dict(data)


def test_no_entry_is_none_and_changes_nothing(fitted):
    x, _ = fitted
    for stored in (None, {}, {"kind": "none"}):
        t = PostProcess.from_dict(stored)
        assert not t.active and t.digest == "none"
        np.testing.assert_array_equal(t.apply(x), x)
    with pytest.raises(ConfigError, match="unknown post-processing"):
        PostProcess("whiten")


def test_onnx_head_equals_numpy(fitted, tmp_path):
    pytest.importorskip("onnx")
    from lookalike.embedders.heads import apply_head, head_info

    x, t = fitted
    path = t.export_onnx(tmp_path / "pp.onnx")
    np.testing.assert_allclose(apply_head(path, x), t.apply(x), atol=1e-6)
    assert head_info(path)["postprocess"] == t.digest

    class WithHead:
        head_path = path

    assert embedder_applies(WithHead(), t)  # the service then does not apply it a second time
    assert not embedder_applies(WithHead(), PostProcess.fit("power-center", x[:20]))
    assert not embedder_applies(object(), t)


def test_transformed_embedder_applies_the_transform(fitted):
    x, t = fitted

    class Fake:
        name, dim, fingerprint = "fake", 32, "fp"

        def prepare(self, image):
            return image

        def encode_prepared(self, batch):
            return np.asarray(batch, np.float32)

        def encode(self, images):
            return np.asarray(images, np.float32)

    wrapped = TransformedEmbedder(Fake(), t)
    assert (wrapped.name, wrapped.dim, wrapped.fingerprint) == ("fake", 32, "fp")
    np.testing.assert_allclose(wrapped.encode_prepared(x), t.apply(x), atol=1e-7)
    np.testing.assert_allclose(wrapped.encode(list(x)), t.apply(x), atol=1e-7)
