"""The label-free post-processing variants of `lookalike eval` on a tiny synthetic collection."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embedders.base import l2_normalise
from lookalike.eval.evaluate import Gallery, evaluate_approach
from lookalike.eval.postprocess_report import markdown, rule
from lookalike.eval.postprocess_variants import VARIANTS, Fitted, copy_recall, evaluate_fitted, expand, fit_variant
from lookalike.eval.report import precision_table
from lookalike.index.postprocess import PostProcess


@pytest.fixture(scope="module")
def tiny():
    """4 classes × 10 non-negative vectors sharing one strong direction (what centering removes)."""
    rng = np.random.default_rng(0)
    centres = np.maximum(rng.normal(0, 1, (4, 24)), 0)
    x = np.concatenate([np.maximum(c + rng.normal(0, 0.6, (10, 24)), 0) for c in centres]) + 3.0
    labels = [f"c{i}" for i in range(4) for _ in range(10)]
    return l2_normalise(x), labels


def gallery(labels, tmp_path):
    return Gallery(labels, None, np.arange(3), tmp_path)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_fits_and_keeps_unit_vectors(tiny, name):
    x, _ = tiny
    fitted = fit_variant(name, x)
    assert fitted.db.shape[0] == 40 and np.allclose(np.linalg.norm(fitted.db, axis=1), 1, atol=1e-5)
    q = fitted.query(x[:3])
    assert q.shape == (3, fitted.db.shape[1]) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)


def test_power_center_variant_is_the_shipped_transform(tiny):
    x, _ = tiny
    np.testing.assert_array_equal(fit_variant("power-center", x).db, PostProcess.fit("power-center", x).apply(x))


def test_backbone_through_the_variant_path_equals_the_approach_path(tiny, tmp_path):
    x, labels = tiny
    plain = Fitted("backbone", x, lambda v: v)
    mine = evaluate_fitted(gallery(labels, tmp_path), "b", plain, x, timing=False)
    theirs = evaluate_approach(gallery(labels, tmp_path), "b", "backbone", x, timing=False)
    assert mine.precision == pytest.approx(theirs.precision) and mine.map_at_r == pytest.approx(theirs.map_at_r)
    assert mine.precision_self == pytest.approx(theirs.precision_self)
    assert mine.map_at_r_self == pytest.approx(theirs.map_at_r_self)


def test_centering_helps_when_every_vector_shares_a_direction(tiny, tmp_path):
    x, labels = tiny
    g = gallery(labels, tmp_path)
    base = evaluate_fitted(g, "b", Fitted("backbone", x, lambda v: v), x, timing=False)
    centred = evaluate_fitted(g, "c", fit_variant("power-center", x), x, timing=False)
    assert centred.precision[6] > base.precision[6]


def test_query_expansion_leaves_the_query_out_under_leave_one_out(tiny):
    x, _ = tiny
    own = np.arange(len(x))
    # With its own row, a query's top neighbour is itself (weight 1): expansion then leans on it.
    with_self, without = expand(x, x, 1), expand(x, x, 1, own)
    np.testing.assert_allclose(with_self, x, atol=1e-6)  # 2·x, normalised
    assert not np.allclose(without, x, atol=1e-3)


def test_qe_variant_times_a_second_search(tiny, tmp_path):
    x, labels = tiny
    res = evaluate_fitted(gallery(labels, tmp_path), "qe", fit_variant("pc-qe2", x), x)
    hits = res.search_one(0)[0]
    assert len(hits) == 6 and res.precision_self[1] == 1.0


def test_copy_recall_finds_the_originals(tiny):
    x, _ = tiny
    rng = np.random.default_rng(1)
    source = np.arange(0, 40, 4)
    copies = l2_normalise(x[source] + rng.normal(0, 0.01, (len(source), x.shape[1])))
    out = copy_recall(fit_variant("power-center", x), copies, source, ["jpeg", "crop"] * 5)
    assert out["recall_at_1"] == 1.0 and out["recall_at_5"] == 1.0
    assert set(out["recall_at_1_by_edit"]) == {"jpeg", "crop"}
    wrong = copy_recall(fit_variant("power-center", x), copies, (source + 1) % 40, ["jpeg"] * 10)
    assert wrong["recall_at_1"] < 0.5


def test_default_rule_needs_every_condition():
    base = {"precision_at_k": {"1": 0.7, "6": 0.6}, "time_per_query_s": 0.050}
    good = {"precision_at_k": {"1": 0.7, "6": 0.64}, "time_per_query_s": 0.051}
    copies = ({"recall_at_1": 0.95}, {"recall_at_1": 0.94})
    assert rule(good, base, *copies)["passes"]
    assert not rule(dict(good, time_per_query_s=0.060), base, *copies)["passes"]  # +20% per query
    assert not rule(dict(good, precision_at_k={"1": 0.69, "6": 0.64}), base, *copies)["passes"]  # P@1 lower
    assert not rule(dict(good, precision_at_k={"1": 0.7, "6": 0.62}), base, *copies)["passes"]  # +2 points
    assert not rule(good, base, {"recall_at_1": 0.93}, copies[1])["passes"]  # copies found less often


def test_report_section_lists_every_variant(tiny, tmp_path):
    x, labels = tiny
    g = gallery(labels, tmp_path)
    base = evaluate_fitted(g, "backbone", Fitted("efficientnet-lite2 1280", x, lambda v: v), x, timing=False)
    rows = {f"post:{n}": evaluate_fitted(g, f"post:{n}", fit_variant(n, x), x, timing=False).to_dict()
            for n in ("power-center", "pc-qe2")}
    copies = {"backbone": {"recall_at_1": 0.9, "recall_at_5": 1.0, "recall_at_1_by_edit": {"crop": 0.9}},
              "power-center": {"recall_at_1": 0.95, "recall_at_5": 1.0, "recall_at_1_by_edit": {"crop": 0.95}}}
    results = {"n_test": 40, "main": {"backbone": base.to_dict()},
               "postprocess": {"results": rows, "copies": {"collection": 40, "copies": 10, "originals": 10,
                                                           "kinds": ["crop"], "results": copies}}}
    md = markdown(results, precision_table)
    assert "power norm + center + α-QE 2" in md and "| power-center | 0.95 |" in md
    assert "Leave-one-out" in md and "Include-self" in md and "copy R@1" in md
