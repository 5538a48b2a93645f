"""End to end through the real CLI and HTTP API: `lookalike eval`, training the head, the
classifier and PCA, then indexing, searching and serving with each of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, LiveServer, b64, command_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1


def lookalike(*args: str, timeout: float = 600) -> str:
    env = command_env()
    proc = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"lookalike {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module", autouse=True)
def debian_datasets():
    if not (ROOT / ".cache/datasets/tuxpaint-stamps-default/.done").exists() and \
            not Path("/usr/share/tuxpaint/stamps").is_dir():
        subprocess.run(["bash", str(ROOT / "scripts/fetch_datasets.sh")], check=True, timeout=600)


def test_eval_end_to_end(tmp_path):
    out = tmp_path / "report"
    stdout = lookalike("eval", "fashion-mnist", "--train-limit", "300", "--limit", "150", "--epochs", "3",
                       "--timing-images", "2", "--timing-queries", "10", "--pca-dims", "16,32", "--pca-main", "32",
                       "--out", str(out), "--models-out", str(tmp_path / "models"))
    assert "epoch   1/3  loss" in stdout  # the loss per epoch is printed
    for name in ("results.md", "results.json", "precision_at_k.png", "confusion_matrix.png", "pca.png"):
        assert (out / name).stat().st_size > 100, name
    results = json.loads((out / "results.json").read_text())
    assert results["n_train"] == 300 and results["n_test"] == 150 and len(results["classes"]) == 10
    main = results["main"]
    assert set(main) == {"backbone", "triplet", "knn", "logreg", "pca", "pca-16"}
    for row in main.values():
        assert all(0.0 <= p <= 1.0 for p in row["precision_at_k"].values())
        assert row["time_per_query_s"] > 0 and row["index_bytes"] > 0
    assert main["backbone"]["precision_at_k_include_self"]["1"] == 1.0  # the query finds itself
    assert main["backbone"]["precision_at_k"]["1"] < 1.0  # ...and never does under leave-one-out
    assert main["triplet"]["dim"] == 256 and main["pca"]["dim"] == 32
    assert 0 < main["knn"]["classifier_accuracy"] <= 1 and main["knn"]["precision_at_k"]["1"] <= 1
    assert set(results["by_class"]["results"]) == {"backbone", "triplet", "pca", "pca-16"}
    assert not set(results["by_class"]["seen"]) & set(results["by_class"]["unseen"])
    assert results["whole"]["n"] == 450
    md = (out / "results.md").read_text()
    assert "| K | efficientnet-lite2 1280 | efficientnet-lite2 1280 + triplet head 256 |" in md
    assert "| time per query |" in md and "| 6 |" in md
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "fashion-mnist-logreg.npz", "fashion-mnist-pca-32.onnx", "fashion-mnist-triplet.onnx"]


def search(server: LiveServer, image: Path, k: int = 4) -> dict:
    response = httpx.post(server.url + "/search", json={"image": b64(image.read_bytes()), "k": k}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("dataset,limits", [("tuxpaint", []), ("fashion-mnist", ["--train-limit", "300"])])
def test_every_approach_through_cli_and_api(tmp_path, dataset, limits):
    models, images = tmp_path / "models", tmp_path / "images"
    lookalike("export-dataset", dataset, str(images), "--limit", "60")
    query = sorted(images.rglob("*.png"))[0]
    out = lookalike("train-triplet", dataset, "--out", str(models / "triplet"), "--epochs", "2", *limits)
    assert "epoch   2/2" in out and (models / "triplet.onnx").is_file() and (models / "triplet.train.json").is_file()
    lookalike("fit-pca", dataset, "--dim", "32", "--out", str(models / "pca-32"), *limits)
    lookalike("train-classifier", dataset, "--kind", "knn", "--out", str(models / "knn"), *limits)
    lookalike("train-classifier", dataset, "--kind", "logreg", "--head", str(models / "triplet.onnx"),
              "--out", str(models / "logreg-triplet"), *limits)

    # Backbone index + kNN classifier: two-step search through the API.
    lookalike("index", str(images), "--index-dir", str(tmp_path / "plain"), "--quiet")
    server = LiveServer(tmp_path / "plain", env={"LOOKALIKE_CLASSIFIER": str(models / "knn.npz")})
    try:
        body = search(server, query)
        assert body["predicted_label"] and {r["label"] for r in body["results"]} == {body["predicted_label"]}
    finally:
        server.stop()

    # Triplet-head index, served with the head and a classifier trained on the head's vectors.
    lookalike("index", str(images), "--index-dir", str(tmp_path / "triplet"), "--head", str(models / "triplet.onnx"),
              "--quiet")
    server = LiveServer(tmp_path / "triplet", env={"LOOKALIKE_HEAD": str(models / "triplet.onnx"),
                                                   "LOOKALIKE_CLASSIFIER": str(models / "logreg-triplet.npz")})
    try:
        health = httpx.get(server.url + "/healthz").json()
        assert health["model"] == "efficientnet-lite2+triplet" and health["dim"] == 256
        body = search(server, query)
        assert {r["label"] for r in body["results"]} == {body["predicted_label"]}
    finally:
        server.stop()

    # PCA head: index, search through the CLI and through the API.
    lookalike("index", str(images), "--index-dir", str(tmp_path / "pca"), "--head", str(models / "pca-32.onnx"),
              "--quiet")
    found = json.loads(lookalike("search", str(query), "--index-dir", str(tmp_path / "pca"), "--head",
                                 str(models / "pca-32.onnx"), "-k", "3", "--json"))
    assert found["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)  # the query itself is indexed
    server = LiveServer(tmp_path / "pca", env={"LOOKALIKE_HEAD": str(models / "pca-32.onnx")})
    try:
        assert httpx.get(server.url + "/healthz").json()["dim"] == 32
        body = search(server, query)
        assert "predicted_label" not in body and body["results"][0]["label"] == query.parent.name
    finally:
        server.stop()
