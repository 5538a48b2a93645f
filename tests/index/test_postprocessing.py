"""When an index's post-processing is fitted, kept, refitted and reported as drifted."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lookalike.index import postprocessing
from lookalike.index.faiss_index import FaissIndex
from lookalike.index.postprocess import PostProcess
from tests.index.test_postprocess import relu_vectors

DIM = 32


def ids(n: int, start: int = 0) -> list[str]:
    return [f"{i:04d}" for i in range(start, start + n)]


def add(index, transform, backbone, first: int = 0) -> None:
    index.add(ids(len(backbone), first), transform.apply(backbone), [{"label": "x"}] * len(backbone))
    postprocessing.record_changes(index, len(backbone))


@pytest.fixture
def built(tmp_path):
    """A new power-center index after its first run: 40 entries, fitted at the end."""
    index = FaissIndex(tmp_path / "idx", DIM, model={"name": "fake"})
    backbone = relu_vectors(40)
    transform = postprocessing.prepare(index, "power-center")
    assert transform.active and transform.fitted_count == 0  # power normalisation only while it fills
    add(index, transform, backbone)
    out = postprocessing.finish(index)
    assert out.refitted == "first fit" and out.fitted_count == 40
    index.save()
    return index, backbone


def test_first_run_fits_on_everything_and_stores_it_with_the_vectors(built):
    index, backbone = built
    loaded = FaissIndex.load(index.path)
    fitted = PostProcess.fit("power-center", backbone)
    # Fitted on the vectors reconstructed from the stored ones: equal up to float rounding.
    np.testing.assert_allclose(PostProcess.of_index(loaded).mean, fitted.mean, atol=1e-6)
    assert PostProcess.of_index(loaded).fitted_count == 40
    np.testing.assert_allclose(loaded.get_vectors(ids(40)), fitted.apply(backbone), atol=1e-5)
    assert postprocessing.changed(loaded) == 0


def test_an_unchanged_run_changes_nothing(built):
    index, _ = built
    before = (index.model["postprocess"], index.get_vectors(ids(40)))
    transform = postprocessing.prepare(index, None)  # the index's own
    out = postprocessing.finish(index)
    assert transform.digest == before[0]["digest"] and out.refitted is None and out.drift is None
    assert index.model["postprocess"] == before[0]
    np.testing.assert_array_equal(index.get_vectors(ids(40)), before[1])


def test_refit_once_changes_reach_the_fitted_count(built):
    index, backbone = built
    transform = postprocessing.prepare(index, None)
    more = relu_vectors(39, seed=1)
    add(index, transform, more, first=40)
    out = postprocessing.finish(index)
    assert out.refitted is None and out.changed == 39  # below the 40 it was fitted on: kept
    assert postprocessing.current(index).digest == transform.digest
    index.delete(["0000"])
    postprocessing.record_changes(index, 1)
    out = postprocessing.finish(index)
    assert out.refitted and out.fitted_count == 78 and postprocessing.changed(index) == 0
    everything = np.concatenate([backbone[1:], more])
    refitted = PostProcess.fit("power-center", everything)
    assert postprocessing.current(index).digest != transform.digest
    np.testing.assert_allclose(postprocessing.current(index).mean, refitted.mean, atol=1e-5)
    # Every entry was replaced by the refitted transform of its (reconstructed) backbone vector.
    np.testing.assert_allclose(index.get_vectors(ids(39, 1) + ids(39, 40)), refitted.apply(everything), atol=1e-4)
    assert index.get("0001") == {"label": "x"}


def test_refit_can_be_forced(built):
    index, backbone = built
    index.delete(ids(10))
    postprocessing.record_changes(index, 10)
    out = postprocessing.finish(index, force=True)
    assert out.refitted == "forced" and out.fitted_count == 30
    np.testing.assert_allclose(postprocessing.current(index).mean, PostProcess.fit("power-center", backbone[10:]).mean,
                               atol=1e-6)


def test_drift_warning_names_the_numbers_and_the_command(built, caplog):
    index, _ = built
    transform = postprocessing.prepare(index, None)
    # Few entries, but unlike the rest: the mean moves far without reaching the refit count.
    odd = np.zeros((15, DIM), np.float32)
    odd[:, -3:] = 1.0
    add(index, transform, odd / np.linalg.norm(odd, axis=1, keepdims=True), first=40)
    with caplog.at_level(logging.WARNING):
        out = postprocessing.finish(index, command="lookalike index X --refit")
    assert out.refitted is None and out.drift > postprocessing.DRIFT_WARNING
    assert "drifted" in out.warning and "15 changes" in out.warning and "lookalike index X --refit" in out.warning
    assert out.warning in caplog.text and "\n" not in out.warning
    calm = relu_vectors(5, seed=7)
    index2, _ = index, None
    index2.delete(ids(15, 40))
    add(index2, transform, calm, first=40)
    assert postprocessing.drift(index2) < postprocessing.DRIFT_WARNING


def test_an_index_built_before_keeps_its_vectors(tmp_path):
    index = FaissIndex(tmp_path / "old", DIM, model={"name": "fake"})  # no postprocess entry at all
    x = relu_vectors(5)
    index.add(ids(5), x, [{}] * 5)
    transform = postprocessing.prepare(index, None)
    assert transform.kind == "none" and "postprocess" not in index.model
    out = postprocessing.finish(index, force=True)
    assert out.kind == "none" and out.refitted is None
    np.testing.assert_array_equal(index.get_vectors(ids(5)), x)


def test_switching_kind_converts_the_stored_vectors(built):
    index, backbone = built
    postprocessing.prepare(index, "none")
    assert index.model["postprocess"] == {"kind": "none"}
    np.testing.assert_allclose(index.get_vectors(ids(40)), backbone, atol=1e-5)
    postprocessing.prepare(index, "power-center")
    np.testing.assert_allclose(index.get_vectors(ids(40)), PostProcess.fit("power-center", backbone).apply(backbone),
                               atol=1e-5)


def test_push_refuses_to_mix_two_post_processings(built, tmp_path):
    from lookalike.errors import ConfigError
    from lookalike.index.push import check_same_postprocessing, push_index

    index, _ = built
    plain = FaissIndex(tmp_path / "plain", DIM, model={"name": "fake"})  # stands in for the remote index
    plain.name = "photos"
    with pytest.raises(ConfigError, match="push with --recreate"):
        push_index(index, plain)
    assert len(plain) == 0  # refused before anything was written
    same = FaissIndex(tmp_path / "same", DIM, model=dict(index.model))
    check_same_postprocessing(index, same)  # created from the local model info: the same transform


class VectorEmbedder:
    """An embedder whose "image" is already its backbone vector."""

    name, dim = "fake", DIM

    def __init__(self, head_path=None):
        self.head_path = head_path

    def encode(self, images):
        return np.asarray(images, np.float32).reshape(len(images), DIM)


def test_the_service_transforms_image_queries_once(built, tmp_path):
    pytest.importorskip("onnx")
    from lookalike.search.schema import Limits
    from lookalike.search.service import SearchService

    index, backbone = built
    transform = postprocessing.current(index)
    query = relu_vectors(1, seed=9)[0]
    service = SearchService(VectorEmbedder(), index, limits=Limits())
    hits = service.search_image(query, 5).results
    expected = index.get_vectors(ids(40)) @ transform.apply(query[None])[0]
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True)[:5], abs=1e-5)
    # An embedder whose head is this very transform emits final vectors: the service leaves them alone.
    head = transform.export_onnx(tmp_path / "pp.onnx")
    final = SearchService(VectorEmbedder(head), index, limits=Limits())
    assert final.query_vectors(transform.apply(query[None])) == pytest.approx(transform.apply(query[None]))
    assert [h.id for h in final.search_image(transform.apply(query[None])[0], 5).results] == [h.id for h in hits]
    # By id: the stored vector as it is.
    by_id = service.search_id(hits[0].id, 3).results
    stored = index.get_vectors([hits[0].id])[0]
    assert by_id[0].score == pytest.approx(max(s for i, s in zip(ids(40), index.get_vectors(ids(40)) @ stored)
                                               if i != hits[0].id), abs=1e-5)
