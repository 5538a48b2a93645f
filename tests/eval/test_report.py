"""The report files: results.md in the original's table shape, results.json and the three PNGs."""

from __future__ import annotations

import json

import numpy as np

from lookalike.eval.report import FILES, markdown, precision_table, write_report


def toy_results(tmp_path) -> dict:
    """A results dict made by the real building blocks on synthetic vectors (no images)."""
    from lookalike.eval.comparison import _confusion
    from lookalike.eval.evaluate import Gallery, evaluate_approach
    from lookalike.embedders.heads import apply_head
    from lookalike.eval.pca import fit_pca
    from lookalike.eval.triplet import TripletConfig, export_head, train_head
    from lookalike.eval.classifiers import fit_classifier

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 24))
    labels = [f"c{i}" for i in range(4) for _ in range(15)]
    codes = np.repeat(np.arange(4), 15)
    train = centres[codes] + 0.9 * rng.normal(size=(60, 24))
    test = centres[codes] + 0.9 * rng.normal(size=(60, 24))
    gallery = Gallery(labels, None, np.arange(5), tmp_path)
    main = {"backbone": evaluate_approach(gallery, "backbone", "toy 24", test)}
    trained = train_head(train, labels, TripletConfig(dim_out=8, hidden=16, epochs=2, classes_per_batch=4,
                                                      per_class=4), val_features=test[:8], val_labels=labels[:8])
    head = export_head(trained, tmp_path / "t.onnx")
    main["triplet"] = evaluate_approach(gallery, "triplet", "toy 24 + triplet head 8", apply_head(head, test),
                                        head=head)
    pca = fit_pca(train, 8)
    for d, name in ((4, "pca-4"), (8, "pca")):
        path = pca.truncate(d).export_onnx(tmp_path / f"p{d}.onnx")
        main[name] = evaluate_approach(gallery, name, f"toy 24 + PCA {d}", apply_head(path, test), head=path)
        main[name].extra["explained_variance"] = float(pca.explained_variance_ratio[:d].sum())
    clf = fit_classifier(train, labels, "knn", k=3)
    main["knn"] = evaluate_approach(gallery, "knn", "kNN classifier (k=3) + toy search", test, classifier=clf)
    for r in main.values():  # time_approaches (tested on real images elsewhere) would set these
        r.embed_p50_s, r.search_p50_s = (0.020 if r.head is None else 0.021), 0.001
    by_class = {k: evaluate_approach(Gallery(labels[:30], None, np.arange(2), tmp_path), k, k, test[:30],
                                     timing=False).to_dict() for k in ("backbone", "triplet")}
    return {
        "dataset": "toy", "split": "synthetic", "backbone": "toy", "backbone_dim": 24,
        "options": {"seed": 0}, "classes": sorted(set(labels)), "n_train": 60, "n_test": 60,
        "main": {k: v.to_dict() for k, v in main.items()},
        "training": {"n_fit": 60, "n_val": 8, "triplet": trained.summary()},
        "confusion": {"knn": _confusion(labels, main["knn"].predicted)},
        "by_class": {"seen": ["c0", "c1"], "unseen": ["c2", "c3"], "n_train": 30, "n_test": 30,
                     "results": by_class, "training": {"n_fit": 30}},
        "whole": {"n": 60, "backbone": main["backbone"].to_dict()},
        "command": "lookalike eval toy",
    }


def test_write_report_makes_every_file(tmp_path):
    results = toy_results(tmp_path)
    paths = write_report(results, tmp_path / "report")
    assert [p.name for p in paths] == list(FILES)
    for p in paths:
        assert p.stat().st_size > 100
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "report" / "results.json").read_text()) == json.loads(json.dumps(results))
    md = (tmp_path / "report" / "results.md").read_text()
    headline = md.split("## Precision@K on the test split (leave-one-out)")[1].split("##")[0]
    rows = [line for line in headline.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| K | toy 24 | toy 24 + triplet head 8 | kNN classifier (k=3) + toy search |")
    assert [r.split(" | ")[0] for r in rows[1:7]] == [f"| {k}" for k in range(1, 7)]
    assert any(r.startswith("| time per query | 0.0") for r in rows)  # embed p50 + search p50, in seconds
    assert any(r.startswith("| mAP@R |") for r in rows) and any(r.startswith("| classifier accuracy |") for r in rows)
    for section in ("include-self", "Split by class: 2 classes never seen", "whole dataset (60 images",
                    "PCA: number of components", "Triplet head training", "lookalike eval toy"):
        assert section in md
    assert "| 4 | " in md.split("PCA: number of components")[1]  # one row per PCA size
    assert "P@6: triplet head" in md and "Unseen classes, P@6" in md


def test_precision_table_shape_and_values():
    row = {"title": "A", "precision_at_k": {str(k): 1 / k for k in range(1, 7)},
           "precision_at_k_include_self": {str(k): 1.0 for k in range(1, 7)}, "map_at_r": 0.5,
           "map_at_r_include_self": 0.75, "embed_p50_s": 0.1, "search_p50_s": 0.0025, "time_per_query_s": 0.1025,
           "index_bytes": 2_500_000, "classifier_accuracy": None}
    table = precision_table({"a": row}, ["a"])
    assert table.splitlines()[:3] == ["| K | A |", "|---|---|", "| 1 | 1.000 |"]
    assert "| 6 | 0.167 |" in table and "| mAP@R | 0.500 |" in table
    assert "| time per query | 0.102 s |" in table and "| (embed p50 + search p50) | 100.0 + 2.5 ms |" in table
    assert "| index size | 2.5 MB |" in table and "classifier accuracy" not in table
    assert "| 6 | 1.000 |" in precision_table({"a": row}, ["a"], include_self=True)


def test_include_self_headline(tmp_path):
    results = toy_results(tmp_path)
    results["include_self"] = True
    md = markdown(results)
    assert "## Precision@K on the test split (include-self)" in md
    headline = md.split("(include-self)")[1]
    assert "| 1 | 1.000 | 1.000 |" in headline  # the query finds itself
