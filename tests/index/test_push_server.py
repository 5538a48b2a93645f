"""`lookalike push` end to end: a local FAISS index → the OpenSearch stand-in over HTTP, via the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lookalike.index.faiss_index import FaissIndex
from lookalike.index.opensearch import OpenSearchIndex
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1

DIM = 32


def run_cli(*args: str, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "lookalike.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def ids_of(rows):
    return [[h.id for h in row] for row in rows]


@pytest.fixture
def local_index(tmp_path) -> FaissIndex:
    rng = np.random.default_rng(42)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = ("birds", "cats", "dogs", "fish")
    index = FaissIndex(tmp_path / "local", DIM, model={"name": "random-32", "dim": DIM, "fingerprint": None})
    index.add([f"{i:016x}" for i in range(300)], vectors,
              [{"path": f"/data/{labels[i % 4]}/{i}.png", "label": labels[i % 4], "sha256": f"{i:064x}"}
               for i in range(300)])
    index.save()
    return index


def test_push_copies_the_index_and_search_matches_faiss(local_index, opensearch_standin, tmp_path):
    url = opensearch_standin.url
    args = ["push", "--to", "opensearch", "--url", url, "--index-name", "imgs", "--index-dir",
            str(local_index.path), "--batch-size", "64"]
    first = run_cli(*args, "--progress", home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "pushed 300 of 300 entries to OpenSearch index 'imgs'" in first.stdout
    assert "0 failed" in first.stdout and "index holds 300" in first.stdout
    assert "300/300" in first.stderr  # the progress bar
    assert len(opensearch_standin.requests_to(r"POST /imgs/_bulk")) == 5  # ceil(300 / 64)

    remote = OpenSearchIndex.connect(url, "imgs")
    assert len(remote) == 300 and remote.dim == DIM and remote.model["name"] == "random-32"
    queries = np.random.default_rng(7).normal(size=(12, DIM)).astype(np.float32)
    for flt in (None, {"label": "cats"}, {"label": ["birds", "fish"]}):
        expected, got = local_index.search(queries, 10, flt), remote.search(queries, 10, flt)
        assert ids_of(got) == ids_of(expected)
        np.testing.assert_allclose([h.score for r in got for h in r], [h.score for r in expected for h in r],
                                   atol=1e-5)
    assert dict(remote.items()) == dict(local_index.items())

    again = run_cli(*args, "--quiet", home=tmp_path)  # idempotent: upserts, nothing duplicated
    assert again.returncode == 0 and "pushed 300 of 300" in again.stdout and "index holds 300" in again.stdout
    assert remote.client.get(index="imgs", id=f"{5:016x}")["_version"] == 2

    gone = [f"{i:016x}" for i in range(0, 300, 15)]
    local_index.delete(gone)
    local_index.save()
    pruned = run_cli(*args, "--quiet", "--prune", "--json", home=tmp_path)
    summary = json.loads(pruned.stdout)
    assert pruned.returncode == 0 and summary["ok"] == 280 and summary["pruned"] == 20 and summary["failed"] == 0
    assert len(remote) == 280 and not any(i in remote for i in gone)


def test_push_reports_a_model_clash_and_recreate_fixes_it(local_index, opensearch_standin, tmp_path):
    url = opensearch_standin.url
    OpenSearchIndex.connect(url, "imgs", dim=DIM, model={"name": "other-model"}, create=True)
    args = ["push", "--to", "opensearch", "--url", url, "--index-name", "imgs", "--index-dir",
            str(local_index.path), "--quiet"]
    clash = run_cli(*args, home=tmp_path)
    assert clash.returncode == 1 and "built with 'other-model', not 'random-32'" in clash.stderr
    fixed = run_cli(*args, "--recreate", home=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert OpenSearchIndex.connect(url, "imgs").model["name"] == "random-32"


def test_pushed_demo_index_answers_like_the_local_one(demo_index_dir, opensearch_standin, tmp_path):
    """Real EfficientNet embeddings of the demo collection, pushed and searched."""
    local = FaissIndex.load(demo_index_dir)
    result = run_cli("push", "--to", "opensearch", "--url", opensearch_standin.url, "--index-dir",
                     str(demo_index_dir), "--quiet", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pushed 187 of 187" in result.stdout
    remote = OpenSearchIndex.connect(opensearch_standin.url, "lookalike")
    assert remote.model["name"] == local.model["name"] and remote.dim == local.dim
    ids = [i for i, _ in local.items()][::20]
    queries = local.get_vectors(ids)
    expected, got = local.search(queries, 5), remote.search(queries, 5)
    assert ids_of(got) == ids_of(expected)
    assert [r[0].id for r in got] == ids  # every image finds itself first
    label = local.get(ids[0])["label"]
    assert ids_of(remote.search(queries, 5, {"label": label})) == ids_of(local.search(queries, 5, {"label": label}))
