"""GET /images, /labels and /duplicates on the local API (real service, small index)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lookalike.api.app import create_app
from lookalike.index.faiss_index import FaissIndex
from lookalike.search.schema import Limits
from lookalike.search.service import SearchService
from tests.api.test_http_contract import MeanColour


@pytest.fixture
def client(tmp_path, settings_factory):
    index = FaissIndex(tmp_path / "idx", 3, model={"name": "mean-colour", "dim": 3})
    vectors = np.array([[1, 0, 0], [0.999, 0.04, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.add(["a", "b", "c", "d"], vectors, [{"label": "red", "path": "/x/a.png", "copies": ["/y/a.png"]},
                                                {"label": "red", "path": "/x/b.png"},
                                                {"label": "green", "path": "/x/c.png"},
                                                {"label": "blue", "path": "/x/d.png"}])
    service = SearchService(MeanColour(), index, limits=Limits())
    settings = settings_factory(web_dir=tmp_path / "no-web", api_key="key")
    return TestClient(create_app(settings, service=service), headers={"x-api-key": "key"})


def test_images_pages_and_filters(client):
    first = client.get("/images", params={"limit": 3}).json()
    assert [r["id"] for r in first["images"]] == ["a", "b", "c"] and first["next"] == "c" and first["total"] == 4
    assert first["images"][0]["url"].startswith("/images/a?sig=")  # usable in <img> with a key set
    rest = client.get("/images", params={"limit": 3, "after": first["next"]}).json()
    assert [r["id"] for r in rest["images"]] == ["d"] and rest["next"] is None
    red = client.get("/images", params={"label": "red"}).json()
    assert red["total"] == 2 and {r["label"] for r in red["images"]} == {"red"}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "x"}])
def test_images_bad_limit_is_400(client, params):
    r = client.get("/images", params=params)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"


def test_labels(client):
    assert client.get("/labels").json() == {"labels": [{"label": "blue", "count": 1}, {"label": "green", "count": 1},
                                                       {"label": "red", "count": 2}], "total": 4}


def test_duplicates_exact_and_near(client):
    body = client.get("/duplicates", params={"threshold": 0.99}).json()
    assert body["threshold"] == 0.99 and body["total"] == 2 and body["next"] is None
    exact, near = body["groups"]
    assert exact["kind"] == "exact" and [m["path"] for m in exact["members"]] == ["/x/a.png", "/y/a.png"]
    assert near["kind"] == "near" and sorted(m["id"] for m in near["members"]) == ["a", "b"]
    assert all(m["url"].startswith("/images/") and 0.99 <= m["score"] <= 1.0 for m in near["members"])
    paged = client.get("/duplicates", params={"threshold": 0.99, "limit": 1}).json()
    assert len(paged["groups"]) == 1 and paged["next"] == exact["id"]
    assert client.get("/duplicates", params={"threshold": 2}).status_code == 400


def test_browse_needs_the_key(client):
    assert client.get("/labels", headers={"x-api-key": "wrong"}).status_code == 401
