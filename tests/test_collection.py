"""The Python API end to end with the real model: add a folder, search by path/bytes/image/id,
duplicates, labels, delete."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from lookalike.imaging import to_rgb

from lookalike import Collection
from lookalike.errors import LookalikeError
from tests.conftest import CACHE_DIR

pytestmark = pytest.mark.slow  # embeds with the real model


@pytest.fixture(scope="module")
def folder(tmp_path_factory, demo_dir):
    root = tmp_path_factory.mktemp("photos")
    for label in ("birds", "fish"):
        (root / label).mkdir()
        for path in sorted((demo_dir / label).glob("*.png"))[:5]:
            shutil.copy(path, root / label / path.name)
    first = sorted((root / "birds").glob("*.png"))[0]
    shutil.copy(first, root / "birds" / "exact-copy.png")
    with Image.open(first) as im:  # flattened on white like the index sees it, then made smaller
        to_rgb(im).resize((im.width // 2, im.height // 2)).save(root / "birds" / "half-size.png")
    return root


@pytest.fixture(scope="module")
def photos(folder, tmp_path_factory):
    collection = Collection(tmp_path_factory.mktemp("index"), cache_dir=CACHE_DIR)
    report = collection.add(folder)
    assert report.indexed == 11 and not report.failed  # the exact copy shares its original's entry
    return collection


def test_search_by_path_bytes_image_and_id(photos, folder):
    query = sorted((folder / "fish").glob("*.png"))[1]
    by_path = photos.search(query, k=3)
    assert by_path[0].score > 0.999 and by_path[0].label == "fish" and by_path[0].path.endswith(query.name)
    assert [h.id for h in photos.search(query.read_bytes(), k=3)] == [h.id for h in by_path]
    with Image.open(query) as im:
        assert photos.search(im.convert("RGB"), k=1)[0].id == by_path[0].id
    similar = photos.search(id=by_path[0].id, k=3)
    assert by_path[0].id not in [h.id for h in similar] and len(similar) == 3
    assert all(h.label == "fish" for h in photos.search(query, k=4, label="fish"))


def test_duplicates_find_the_copy_and_the_resized_one(photos, folder):
    groups = photos.duplicates(threshold=0.85)  # a half-size copy of a small stamp scores about 0.90
    kinds = {g.kind: g for g in groups}
    assert {m["path"].rsplit("/", 1)[-1] for m in kinds["exact"].members} >= {"exact-copy.png"}
    near = [g for g in groups if g.kind == "near" and any(m["path"].endswith("half-size.png") for m in g.members)]
    assert near and near[0].size == 2


def test_labels_len_embed_and_delete(photos, folder):
    assert photos.labels() == {"birds": 6, "fish": 5} and len(photos) == 11
    vectors = photos.embed([sorted((folder / "fish").glob("*.png"))[0]])
    assert vectors.shape == (1, 1280) and vectors.dtype.name == "float32"
    gone = photos.search(sorted((folder / "fish").glob("*.png"))[0], k=1)[0].id
    assert photos.delete([gone, "not-there"]) == 1 and len(photos) == 10


def test_a_query_needs_one_of_image_and_id(photos):
    with pytest.raises(LookalikeError):
        photos.search()
    with pytest.raises(LookalikeError):
        photos.search(b"x", id="y")


# ----- label-free post-processing (lookalike.index.postprocessing) ---------------------------
@pytest.fixture(scope="module")
def processed(folder, tmp_path_factory):
    collection = Collection(tmp_path_factory.mktemp("processed"), cache_dir=CACHE_DIR, postprocess="power-center")
    report = collection.add(folder)
    assert report.indexed == 11 and report.postprocess.refitted == "first fit"
    return collection


def _stored(collection):
    from lookalike.index.faiss_index import FaissIndex

    index = FaissIndex.load(collection.settings.index_dir)
    ids = [i for i, _ in index.items()]
    return index, ids, index.get_vectors(ids)


def test_a_post_processed_index_stores_transformed_vectors_and_queries_go_through_it(processed, folder):
    from lookalike.index.postprocess import PostProcess

    index, ids, stored = _stored(processed)
    transform = PostProcess.of_index(index)
    assert transform.kind == "power-center" and transform.fitted_count == 11
    backbone = processed.service.embedder.encode([to_rgb(Image.open(index.get(i)["path"])) for i in ids])
    np.testing.assert_allclose(stored, transform.apply(backbone), atol=2e-4)
    query = sorted((folder / "fish").glob("*.png"))[2]
    hits = processed.search(query, k=4)
    raw = processed.embed([query])
    # The scores are those of the transformed query: a service that skipped the transform would
    # score the raw vector, which differs by far more than rounding.
    expected = stored @ transform.apply(raw)[0]
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True)[:4], abs=1e-4)
    assert max(abs(stored @ raw[0] - expected)) > 0.05
    assert hits[0].score > 0.999 and hits[0].path.endswith(query.name)


def test_re_indexing_an_unchanged_folder_changes_nothing(processed, folder):
    before_index, before_ids, before = _stored(processed)
    report = processed.add(folder)
    assert report.indexed == 0 and report.postprocess.refitted is None
    after_index, after_ids, after = _stored(processed)
    assert after_ids == before_ids and after_index.model == before_index.model
    np.testing.assert_array_equal(after, before)


def test_duplicates_of_a_post_processed_index_use_the_backbone_similarities(processed):
    groups = processed.duplicates(threshold=0.85)  # the backbone's threshold, as for a plain index
    near = [g for g in groups if g.kind == "near" and any(m["path"].endswith("half-size.png") for m in g.members)]
    assert near and near[0].size == 2
    assert any(m["path"].endswith("exact-copy.png") for g in groups if g.kind == "exact" for m in g.members)


def test_refit_flag_and_automatic_refit(processed, folder, demo_dir, tmp_path, monkeypatch, capsys):
    from lookalike.cli import main

    _, _, before = _stored(processed)
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(CACHE_DIR))
    assert main(["index", str(folder), "--index-dir", str(processed.settings.index_dir), "--refit", "--quiet"]) == 0
    assert "post-processing power-center refitted on 11 (forced)" in capsys.readouterr().out
    _, _, after = _stored(processed)
    np.testing.assert_allclose(after, before, atol=1e-5)  # the same entries: the same fit, up to rounding
    # Fewer new entries than the fit counted: the transform stays; as many: it is fitted again.
    more = tmp_path / "more"
    shutil.copytree(folder, more)
    (more / "planets").mkdir()
    planets = sorted((demo_dir / "planets").glob("*.png"))
    for path in planets[:5]:
        shutil.copy(path, more / "planets" / path.name)
    first = processed.add(more).postprocess
    assert first.refitted is None and first.changed == 5 and first.fitted_count == 11
    (more / "roadsigns").mkdir()
    for path in planets[5:10] + sorted((demo_dir / "roadsigns").glob("*.png"))[:1]:
        shutil.copy(path, more / path.parent.name / path.name)
    second = processed.add(more).postprocess
    assert second.refitted == "11 entries changed since the fit on 11" and second.fitted_count == 22
    index, ids, stored = _stored(processed)
    assert len(ids) == 22 and postprocessing_changed(index) == 0


def postprocessing_changed(index) -> int:
    from lookalike.index.postprocessing import changed

    return changed(index)
