"""The Python API end to end with the real model: add a folder, search by path/bytes/image/id,
duplicates, labels, delete."""

from __future__ import annotations

import shutil

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
