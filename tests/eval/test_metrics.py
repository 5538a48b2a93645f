"""Retrieval metrics against values computed by hand on a toy gallery, in both protocols."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.eval.metrics import (average_precision_at_r, drop_self, map_at_r_both, precision_at_k, rank_gallery,
                               ranked_relevance, relevant_counts, without_self)

# Five unit vectors at angles 0°, 10°, 30°, 100°, 110°: cosine similarity falls with the angle
# between them, so every ranking can be read off the angles.
ANGLES = np.radians([0, 10, 30, 100, 110])
TOY = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)
LABELS = ["a", "a", "b", "b", "a"]
IDS = ["p0", "p1", "p2", "p3", "p4"]
# Full rankings (self first), by angle difference:
#   q0: p0 p1 p2 p3 p4    q1: p1 p0 p2 p3 p4    q2: p2 p1 p0 p3 p4
#   q3: p3 p4 p2 p1 p0    q4: p4 p3 p2 p1 p0
RANKED = [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [2, 1, 0, 3, 4], [3, 4, 2, 1, 0], [4, 3, 2, 1, 0]]


def test_rank_gallery_matches_the_angles():
    assert rank_gallery(TOY, TOY, 5).tolist() == RANKED
    loo = rank_gallery(TOY, TOY, 4, self_rows=np.arange(5))
    assert loo.tolist() == [row[1:] for row in RANKED]
    assert without_self(rank_gallery(TOY, TOY, 5), np.arange(5)).tolist() == loo.tolist()


def test_precision_at_k_leave_one_out_vs_include_self():
    ranked_ids = [[IDS[i] for i in row] for row in RANKED]
    label = dict(zip(IDS, LABELS))
    with_self = [[label[i] for i in row] for row in ranked_ids]
    loo = [[label[i] for i in row] for row in drop_self(ranked_ids, IDS)]
    # Leave-one-out: q0 → p1(a) hit; q1 → p0(a) hit; q2 → p1(a) miss; q3 → p4(a) miss; q4 → p3(b) miss.
    # P@2: q0 1/2, q1 1/2, q2 0, q3 1/2 (p4 a, p2 b), q4 0 → 1.5 / 5.
    assert precision_at_k(loo, LABELS, (1, 2)) == pytest.approx({1: 0.4, 2: 0.3})
    # Include-self: every query finds itself first; P@2: q0 1, q1 1, q2 1/2, q3 1/2, q4 1/2 → 3.5 / 5.
    assert precision_at_k(with_self, LABELS, (1, 2)) == pytest.approx({1: 1.0, 2: 0.7})


def test_precision_counts_missing_results_as_misses():
    assert precision_at_k([["a"], []], ["a", "a"], (1, 2)) == {1: 0.5, 2: 0.25}
    with pytest.raises(ValueError):
        precision_at_k([["a"]], ["a", "b"])


def test_map_at_r_by_hand():
    # Leave-one-out, R = class size - 1:
    #   q0 (a, R=2): p1 a, p2 b → (1/2)(1·1 + ½·0) = 0.5;  q1 likewise 0.5
    #   q2 (b, R=1): p1 a → 0;  q3 (b, R=1): p4 a → 0;  q4 (a, R=2): p3 b, p2 b → 0
    # Include-self, R = class size:
    #   q0 (R=3): a a b → (1 + 1 + 0)/3 = 2/3;  q1 2/3;  q2 (R=2): b a → ½;  q3: b a → ½;  q4 (R=3): a b b → ⅓
    loo, with_self = map_at_r_both(TOY, LABELS)
    assert loo == pytest.approx((0.5 + 0.5) / 5)
    assert with_self == pytest.approx((2 / 3 + 2 / 3 + 0.5 + 0.5 + 1 / 3) / 5)
    # Small chunks give the same answer.
    assert map_at_r_both(TOY, LABELS, chunk=2) == pytest.approx((loo, with_self))


def test_average_precision_formula_and_checks():
    relevant = np.array([[True, False, True, False], [False, True, True, True]])
    ap = average_precision_at_r(relevant, np.array([2, 3]))
    assert ap[0] == pytest.approx((1 + 0) / 2)  # rank 3 lies beyond R = 2
    assert ap[1] == pytest.approx((0 + 1 / 2 + 2 / 3) / 3)
    assert np.isnan(average_precision_at_r(relevant[:1], np.array([0]))[0])
    with pytest.raises(ValueError, match="depth"):
        average_precision_at_r(relevant, np.array([5, 1]))


def test_relevant_counts_and_relevance():
    assert relevant_counts(LABELS, LABELS, self_in_gallery=True, include_self=True).tolist() == [3, 3, 2, 2, 3]
    assert relevant_counts(LABELS, LABELS, self_in_gallery=True, include_self=False).tolist() == [2, 2, 1, 1, 2]
    rel = ranked_relevance(np.array([[1, -1]]), ["a"], LABELS)
    assert rel.tolist() == [[True, False]]  # -1 = no result, never relevant


def test_groups_restrict_the_ranking():
    # Two-step search: q0 is predicted "b", so only p2 and p3 may be ranked for it.
    groups = (np.array([1, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0]))
    ranked = rank_gallery(TOY, TOY, 5, groups=groups)
    assert ranked[0].tolist() == [2, 3, -1, -1, -1]
    assert ranked[1].tolist() == [1, 0, 4, -1, -1]
    loo, with_self = map_at_r_both(TOY, LABELS, groups=groups)
    # q0 (a) sees only b's → 0; q1 (a): self, p0, p4 → LOO p0 a, p4 a → 1; q2 (b, predicted a): 0;
    # q3 (b, predicted b): LOO p2 b → 1; q4 (a, predicted b): 0.
    assert loo == pytest.approx(2 / 5)
    # Include-self: q1: p1 p0 p4 all a → 1; q3 (R=2): p3 p2 → 1; the rest 0.
    assert with_self == pytest.approx(2 / 5)


def test_metrics_through_the_real_index(tmp_path):
    """evaluate_approach (FAISS search + numpy mAP@R) reproduces the hand-computed toy values."""
    from lookalike.eval.evaluate import Gallery, evaluate_approach

    gallery = Gallery(LABELS, None, np.arange(2), tmp_path)
    result = evaluate_approach(gallery, "toy", "toy", TOY, timing=False, ks=(1, 2))
    assert result.precision == pytest.approx({1: 0.4, 2: 0.3})
    assert result.precision_self == pytest.approx({1: 1.0, 2: 0.7})
    assert result.map_at_r == pytest.approx(0.2)
    assert result.map_at_r_self == pytest.approx((2 / 3 + 2 / 3 + 0.5 + 0.5 + 1 / 3) / 5)
    assert result.index_bytes > TOY.nbytes and result.time_per_query_s is None
