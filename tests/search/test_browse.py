"""Browsing: pages in id order continue after the last id; labels with counts."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import InvalidInput
from lookalike.index.faiss_index import FaissIndex
from lookalike.search.browse import list_images, list_labels


@pytest.fixture
def index(tmp_path):
    index = FaissIndex(tmp_path, 2)
    ids = [f"id{i:02d}" for i in range(25)]
    index.add(ids, np.tile(np.array([[1, 0]], np.float32), (25, 1)),
              [{"label": "even" if i % 2 == 0 else "odd"} for i in range(25)])
    return index


def url(id_, meta):
    return f"/images/{id_}"


def test_pages_walk_every_entry_once(index):
    seen, after = [], None
    while True:
        page = list_images(index, url, limit=10, after=after)
        seen += [row["id"] for row in page["images"]]
        assert page["total"] == 25
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 25


def test_label_filter_and_urls(index):
    page = list_images(index, url, label="odd", limit=200)
    assert page["total"] == 12 and {r["label"] for r in page["images"]} == {"odd"} and page["next"] is None
    assert page["images"][0]["url"] == "/images/" + page["images"][0]["id"]


def test_labels_count(index):
    assert list_labels(index) == {"labels": [{"label": "even", "count": 13}, {"label": "odd", "count": 12}],
                                  "total": 25}


@pytest.mark.parametrize("limit", [0, 201, True, "5"])
def test_limit_is_checked(index, limit):
    with pytest.raises(InvalidInput):
        list_images(index, url, limit=limit)
