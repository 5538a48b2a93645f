"""Duplicate groups: exact copies from ingest's metadata, near duplicates by blocked k-NN."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index.faiss_index import FaissIndex
from lookalike.search.duplicates import find_duplicates, near_pairs, page


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_near_pairs_match_all_pairs_in_python():
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(40, 16)))
    vectors = unit(np.concatenate([base, base[:10] + rng.normal(scale=0.05, size=(10, 16))]))
    rows, cols, scores = near_pairs(vectors, 0.9, block=7)  # blocks that do not divide n
    sims = vectors @ vectors.T
    expected = {(i, j) for i in range(len(vectors)) for j in range(i + 1, len(vectors)) if sims[i, j] >= 0.9}
    assert set(zip(rows.tolist(), cols.tolist())) == expected and len(expected) >= 10
    np.testing.assert_allclose(scores, sims[rows, cols], atol=1e-6)


def test_groups_are_transitive_sorted_and_scored(tmp_path):
    index = FaissIndex(tmp_path, 3)
    vectors = unit([[1, 0, 0], [1, 0.15, 0], [1, 0.3, 0], [0, 1, 0], [0, 1, 0.1], [0, 0, 1]])
    index.add(list("abcdef"), vectors, [{"label": "x", "path": f"/p/{c}.png"} for c in "abcdef"])
    groups = find_duplicates(index, threshold=0.985)
    assert [(g.kind, sorted(m["id"] for m in g.members)) for g in groups] == [("near", ["a", "b", "c"]),
                                                                             ("near", ["d", "e"])]
    first = groups[0]
    assert first.id == "near:b" and first.members[0]["id"] == "b" and first.members[0]["score"] == pytest.approx(1.0)
    assert all(m["path"].startswith("/p/") for m in first.members)
    assert find_duplicates(index, threshold=0.9999) == []


def test_exact_copies_come_first(tmp_path):
    index = FaissIndex(tmp_path, 3)
    index.add(["a", "b"], unit([[1, 0, 0], [0, 1, 0]]),
              [{"label": "x", "path": "/p/a.png", "copies": ["/q/a-copy.png"]}, {"label": "y", "path": "/p/b.png"}])
    groups = find_duplicates(index)
    assert len(groups) == 1 and groups[0].kind == "exact" and groups[0].size == 2
    assert [m["path"] for m in groups[0].members] == ["/p/a.png", "/q/a-copy.png"]


def test_paging_continues_after_a_group():
    from lookalike.search.duplicates import Group

    groups = [Group(f"near:{i}", "near", []) for i in range(5)]
    first, after = page(groups, limit=2)
    second, after2 = page(groups, limit=2, after=after)
    last, end = page(groups, limit=2, after=after2)
    assert [g.id for g in first + second + last] == [g.id for g in groups] and end is None


def test_threshold_is_checked(tmp_path):
    with pytest.raises(ValueError):
        find_duplicates(FaissIndex(tmp_path, 3), threshold=1.5)
