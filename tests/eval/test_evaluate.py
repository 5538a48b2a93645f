"""Timing of approaches with the real embedder and index, and the evaluation of a two-step approach."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.eval.datasets import image_folder, stratified_sample
from lookalike.eval.evaluate import Gallery, evaluate_approach, time_approaches


@pytest.fixture(scope="module")
def small(demo_dir, embedder):
    ds = image_folder(demo_dir)
    ds = ds.subset(stratified_sample(ds.labels, 40, seed=0))
    return ds, embedder.encode([ds.image(i) for i in range(len(ds))])


def test_time_approaches_with_the_real_embedder(tmp_path, small, embedder):
    import faiss

    from lookalike.embedders import create_embedder
    from lookalike.eval.pca import fit_pca
    from tests.conftest import CACHE_DIR

    ds, vectors = small
    gallery = Gallery(list(ds.labels), ds, np.arange(5), tmp_path)
    head = fit_pca(vectors, 8).export_onnx(tmp_path / "pca-8.onnx")
    plain = evaluate_approach(gallery, "backbone", "b", vectors)
    from lookalike.embedders.heads import apply_head

    reduced = evaluate_approach(gallery, "pca", "p", apply_head(head, vectors), head=head)
    untimed = evaluate_approach(gallery, "x", "x", vectors, timing=False)
    made = []

    def make(h):
        made.append(h)
        return create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, head=h)

    threads = faiss.omp_get_max_threads()
    time_approaches(gallery, [plain, reduced, untimed], make, n_images=2)
    assert made == [None, head]  # one embedder per distinct head
    for r in (plain, reduced):
        assert 0 < r.embed_p50_s < 5 and 0 < r.search_p50_s < 1 and r.search_one is None
        assert r.time_per_query_s == pytest.approx(r.embed_p50_s + r.search_p50_s)
    assert untimed.embed_p50_s is None and untimed.time_per_query_s is None
    assert faiss.omp_get_max_threads() == threads


def test_two_step_approach_metrics(tmp_path, small):
    from lookalike.eval.classifiers import fit_classifier

    ds, vectors = small
    labels = list(ds.labels)
    gallery = Gallery(labels, ds, np.arange(3), tmp_path)
    perfect = fit_classifier(vectors, labels, "knn", k=1)  # predicts each gallery item's own label
    result = evaluate_approach(gallery, "knn", "k", vectors, classifier=perfect, timing=False)
    assert result.accuracy == 1.0 and result.predicted == labels
    # Every result lies in the query's own (correctly predicted) class: P@K is 1 while the class
    # has K other members, then falls as results run out.
    sizes = {c: labels.count(c) for c in set(labels)}
    for k in (1, 2, 3):
        expected = np.mean([min(k, sizes[c] - 1) / k for c in labels])
        assert result.precision[k] == pytest.approx(expected)
    assert result.map_at_r == pytest.approx(1.0) and result.map_at_r_self == pytest.approx(1.0)
