"""Two-step search: classifiers (numpy prediction == scikit-learn), their file format, the
classify-then-filtered-search path, and the search service using it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from lookalike.embedders.base import l2_normalise
from lookalike.errors import ConfigError
from lookalike.eval.classifiers import fit_classifier
from lookalike.search.twostep import Classifier, classify_then_search


def clusters(n_per_class=30, classes=4, dim=16, seed=0, spread=0.8):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    x = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return l2_normalise(x), np.asarray([f"class{c}" for c in labels])


@pytest.mark.parametrize("kind", ["knn", "logreg"])
def test_numpy_prediction_equals_scikit_learn(kind):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    x, y = clusters(seed=0)
    test_x, _ = clusters(n_per_class=50, seed=1, spread=1.5)  # hard: many wrong predictions to agree on
    clf = fit_classifier(x, y, kind, k=5, c=1.0)
    if kind == "knn":
        reference = KNeighborsClassifier(n_neighbors=5).fit(x, y)
    else:
        reference = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(x, y)
    assert (clf.predict(test_x) == reference.predict(test_x)).all()


def test_validation_chooses_k_and_c():
    x, y = clusters(seed=0)
    vx, vy = clusters(n_per_class=10, seed=2)
    knn = fit_classifier(x, y, "knn", val_vectors=vx, val_labels=vy)
    assert knn.params["k"] in (1, 3, 5, 10, 20) and set(knn.params["val_accuracy_by_k"]) == {"1", "3", "5", "10", "20"}
    assert knn.arrays["vectors"].shape == (len(x) + len(vx), 16)  # refitted on train + validation
    logreg = fit_classifier(x, y, "logreg", val_vectors=vx, val_labels=vy)
    assert logreg.params["c"] in (1.0, 10.0, 100.0) and logreg.params["val_accuracy"] > 0.8
    with pytest.raises(ConfigError, match="absent"):
        fit_classifier(x, y, "knn", val_vectors=vx[:1], val_labels=["nope"])


def test_save_load_round_trip_without_pickle(tmp_path):
    x, y = clusters()
    for kind in ("knn", "logreg"):
        clf = fit_classifier(x, y, kind, model="toy-model")
        path = clf.save(tmp_path / f"{kind}.npz")
        loaded = Classifier.load(path)
        assert loaded.kind == kind and loaded.params["model"] == "toy-model" and loaded.dim == 16
        assert (loaded.predict(x) == clf.predict(x)).all()
        with np.load(path, allow_pickle=False) as data:  # plain arrays only
            assert all(data[k].dtype != object for k in data.files)
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.ones(3))
    with pytest.raises(ConfigError, match="not a lookalike classifier"):
        Classifier.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Classifier.load(tmp_path / "missing.npz")


def test_binary_logistic_regression():
    x, y = clusters(classes=2)
    clf = fit_classifier(x, y, "logreg", c=1.0)
    assert clf.arrays["coef"].shape == (2, 16)
    assert (clf.predict(x) == y).mean() > 0.9


def test_classify_then_filtered_search(tmp_path):
    from lookalike.index.faiss_index import FaissIndex

    x, y = clusters(seed=0)
    clf = fit_classifier(x, y, "knn", k=5)
    index = FaissIndex(tmp_path, 16)
    index.add([f"id{i}" for i in range(len(x))], x, [{"label": label} for label in y])
    queries, _ = clusters(n_per_class=3, seed=5, spread=1.5)
    predicted, hits = classify_then_search(clf, index, queries, 10)
    assert (predicted == clf.predict(queries)).all()
    for label, found in zip(predicted, hits):
        assert len(found) == 10 and {h.metadata["label"] for h in found} == {label}
    # A label chosen by the user wins over the prediction.
    predicted, hits = classify_then_search(clf, index, queries[:2], 3, {"label": "class3"})
    assert all(h.metadata["label"] == "class3" for row in hits for h in row)


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_search_service_with_a_classifier(tmp_path, embedder, demo_dir):
    """SearchService predicts the query's class and searches only that class; the response says so."""
    from lookalike.imaging import load_image_file
    from lookalike.index.faiss_index import FaissIndex
    from lookalike.search.schema import Limits, SearchRequest
    from lookalike.search.compat import model_info
    from lookalike.search.service import SearchService

    paths = [p for c in ("birds", "planets", "roadsigns") for p in sorted((demo_dir / c).glob("*.png"))[:8]]
    images = [load_image_file(p, max_pixels=10**7)[1] for p in paths]
    labels = [p.parent.name for p in paths]
    vectors = embedder.encode(images)
    index = FaissIndex(tmp_path / "index", embedder.dim, model=model_info(embedder))
    index.add([f"i{n}" for n in range(len(paths))], vectors, [{"label": label} for label in labels])
    clf = fit_classifier(vectors[1:], labels[1:], "knn", k=3, model=embedder.name)
    limits = Limits(6 * 2**20, 10**7)
    service = SearchService(embedder, index, limits=limits, classifier=clf)
    response = service.search(SearchRequest(image=paths[0].read_bytes(), k=5))
    assert response.predicted_label == "birds"
    assert len(response.results) == 5 and {r.label for r in response.results} == {"birds"}
    assert response.to_dict()["predicted_label"] == "birds"
    plain = SearchService(embedder, index, limits=limits).search(SearchRequest(image=_png(images[0]), k=5))
    assert plain.predicted_label is None and "predicted_label" not in plain.to_dict()
    wrong = fit_classifier(vectors[:, :8], labels, "knn", k=3)
    with pytest.raises(ConfigError, match="8-d"):
        SearchService(embedder, index, limits=limits, classifier=wrong)
    other = fit_classifier(vectors, labels, "knn", k=3, model="efficientnet-lite2+some-head")
    with pytest.raises(ConfigError, match="trained on"):
        SearchService(embedder, index, limits=limits, classifier=other)


def test_settings_and_local_service_load_the_classifier(tmp_path, settings_factory, embedder, demo_index_dir):
    """LOOKALIKE_CLASSIFIER → build_local_service → search_payload (the API's path) carries the label."""
    import base64

    from lookalike.index.faiss_index import FaissIndex
    from lookalike.search.local import build_local_service
    from tests.conftest import demo_images

    index = FaissIndex.load(demo_index_dir)
    ids = [i for i, _ in index.items()]
    labels = [m["label"] for _, m in index.items()]
    clf = fit_classifier(index.get_vectors(ids), labels, "logreg", model=embedder.name)
    path = clf.save(tmp_path / "clf.npz")
    settings = settings_factory({"LOOKALIKE_CLASSIFIER": str(path)}, index_dir=demo_index_dir)
    assert settings.classifier == path
    service = build_local_service(settings, embedder=embedder)
    assert service.classifier is not None and service.classifier.kind == "logreg"
    query = demo_images()[0]  # a bird
    body = service.search_payload({"image": base64.b64encode(query.read_bytes()).decode(), "k": 3})
    assert body["predicted_label"] == "birds"
    assert [r["label"] for r in body["results"]] == ["birds"] * 3
