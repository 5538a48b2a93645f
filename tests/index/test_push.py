"""`lookalike push` in-process: errors are one clear line, and a failed document fails the command."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike import cli
from lookalike.index.faiss_index import FaissIndex
from lookalike.index.opensearch import OpenSearchIndex
from lookalike.index.push import push_index


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for key in [k for k in os.environ if k.startswith("LOOKALIKE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def small_index(path, n=10, model=None) -> FaissIndex:
    index = FaissIndex(path, 4, model=model if model is not None else {"name": "tiny", "dim": 4})
    v = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
    index.add([f"e{i}" for i in range(n)], v, [{"label": "x", "extra": i} for i in range(n)])
    index.save()
    return index


def test_push_without_a_url_or_local_index_is_one_clear_line(tmp_path, capsys):
    small_index(tmp_path / "idx")
    assert cli.main(["push", "--to", "opensearch", "--index-dir", str(tmp_path / "idx")]) == 1
    assert "LOOKALIKE_OPENSEARCH_URL is not set" in capsys.readouterr().err
    assert cli.main(["push", "--to", "opensearch", "--url", "http://127.0.0.1:9", "--index-dir",
                     str(tmp_path / "nothing")]) == 1
    assert "No index at" in capsys.readouterr().err


def test_push_refuses_an_index_without_model_info(tmp_path, capsys, opensearch_standin):
    small_index(tmp_path / "idx", model={})
    code = cli.main(["push", "--to", "opensearch", "--url", opensearch_standin.url, "--index-dir",
                     str(tmp_path / "idx"), "--quiet"])
    assert code == 1 and "does not record which model" in capsys.readouterr().err


def test_push_fails_when_documents_are_rejected(tmp_path, capsys, opensearch_standin):
    import httpx

    small_index(tmp_path / "idx")
    # An existing index whose "extra" field is boolean: the local integers cannot go in.
    body = {"settings": {"index": {"knn": True}}, "mappings": {
        "_meta": {"lookalike": {"model": {"name": "tiny"}}},
        "properties": {"vector": {"type": "knn_vector", "dimension": 4,
                                  "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct"}},
                       "id": {"type": "keyword"}, "extra": {"type": "boolean"}}}}
    httpx.put(f"{opensearch_standin.url}/lookalike", json=body).raise_for_status()
    code = cli.main(["push", "--to", "opensearch", "--url", opensearch_standin.url, "--index-dir",
                     str(tmp_path / "idx"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "pushed 0 of 10 entries" in out and "10 failed" in out
    assert "failed: e1: failed to parse field [extra] of type [boolean]" in out


def test_push_index_reports_progress(tmp_path, opensearch_standin):
    local = small_index(tmp_path / "idx", n=25)
    remote = OpenSearchIndex.connect(opensearch_standin.url, "p", dim=4, model={"name": "tiny"}, create=True,
                                     batch_size=10)
    seen: list[int] = []
    report = push_index(local, remote, progress=seen.append)
    assert seen == [10, 10, 5] and report.ok == 25 and report.batches == 3 and len(remote) == 25
    assert remote.get("e3") == {"label": "x", "extra": 3}
