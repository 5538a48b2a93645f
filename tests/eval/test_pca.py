"""PCA: the fit agrees with scikit-learn, and the ONNX head computes the same projection."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embedders.base import l2_normalise
from lookalike.errors import ConfigError
from lookalike.eval.pca import fit_pca


def data(n=300, dim=40, seed=0):
    rng = np.random.default_rng(seed)
    # Correlated features: a few strong directions plus small noise.
    basis = rng.normal(size=(5, dim))
    return (rng.normal(size=(n, 5)) * [5, 4, 3, 2, 1]) @ basis + 0.1 * rng.normal(size=(n, dim))


def test_fit_agrees_with_scikit_learn():
    from sklearn.decomposition import PCA

    x = data()
    pca = fit_pca(x, 8)
    reference = PCA(n_components=8, svd_solver="full").fit(l2_normalise(x))
    np.testing.assert_allclose(pca.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-4)
    # Components are equal up to sign; ours have a fixed sign.
    dots = np.abs(np.sum(pca.components * reference.components_, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-4)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(8), atol=1e-5)
    assert pca.explained_variance_ratio[:5].sum() > 0.95  # five strong directions


def test_transform_and_truncate():
    x = data()
    pca = fit_pca(x, 16)
    y = pca.transform(x[:10])
    expected = l2_normalise((l2_normalise(x[:10]) - pca.mean) @ pca.components.T)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    small = pca.truncate(4)
    assert small.dim == 4 and small.dim_in == 40
    np.testing.assert_array_equal(small.components, pca.components[:4])
    with pytest.raises(ConfigError):
        pca.truncate(17)
    with pytest.raises(ConfigError, match="dimension"):
        fit_pca(x[:5], 6)
    with pytest.raises(ValueError, match=r"\(n, 40\)"):
        pca.transform(np.ones((2, 3)))


def test_onnx_head_equals_the_projection(tmp_path):
    from lookalike.embedders.heads import apply_head, head_dims, head_info

    x = data()
    pca = fit_pca(x, 12)
    path = pca.export_onnx(tmp_path / "pca-12.onnx", {"backbone": "toy"})
    assert head_dims(path) == (40, 12)
    info = head_info(path)
    assert info["kind"] == "pca" and info["dim_out"] == 12 and info["backbone"] == "toy"
    assert info["explained_variance"] == pytest.approx(pca.explained_variance_ratio.sum(), abs=1e-5)
    for n in (1, 50):
        np.testing.assert_allclose(apply_head(path, x[:n]), pca.transform(x[:n]), atol=1e-5)


def test_pca_head_through_the_real_embedder(tmp_path, embedder, demo_dir):
    """`--head pca-N.onnx` works through the same embedder protocol as any head."""
    from lookalike.embedders import create_embedder
    from lookalike.imaging import load_image_file
    from tests.conftest import CACHE_DIR

    images = [load_image_file(p, max_pixels=10**7)[1] for p in sorted(demo_dir.rglob("*.png"))[::20]]
    backbone = embedder.encode(images)
    pca = fit_pca(backbone, 4)
    path = pca.export_onnx(tmp_path / "pca-4.onnx")
    with_head = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, head=path)
    assert with_head.dim == 4
    np.testing.assert_allclose(with_head.encode(images), pca.transform(backbone), atol=1e-5)
