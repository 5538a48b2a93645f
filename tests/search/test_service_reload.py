"""A running service picks up an index another process saved."""

from __future__ import annotations

import numpy as np

from lookalike.index.faiss_index import FaissIndex
from lookalike.search.local import build_local_service


class FixedEmbedder:
    name, dim = "fixed", 4

    def encode(self, images):
        return np.tile(np.array([[1, 0, 0, 0]], np.float32), (len(images), 1))


def test_service_reloads_a_newer_generation(tmp_path, settings_factory):
    path = tmp_path / "index"
    first = FaissIndex(path, 4, model={"name": "fixed"})
    first.add(["a"], np.array([[0, 1, 0, 0]], np.float32), [{"label": "x"}])
    first.save()
    service = build_local_service(settings_factory(index_dir=path), embedder=FixedEmbedder())
    service._reload_interval = 0.0
    service._next_check = 0.0
    assert [r.id for r in service.search_image(None, 5).results] == ["a"]

    writer = FaissIndex.load(path)  # another process adds an entry and saves
    writer.add(["b"], np.array([[1, 0, 0, 0]], np.float32), [{"label": "y"}])
    writer.save()
    assert [r.id for r in service.search_image(None, 5).results] == ["b", "a"]
    assert service.index.generation == writer.generation


def test_every_route_sees_the_reloaded_index(tmp_path, settings_factory):
    """/healthz (and /images) read ``service.index``, which picks up a newer save, not only /search."""
    from fastapi.testclient import TestClient

    from lookalike.api.app import create_app

    path = tmp_path / "index"
    first = FaissIndex(path, 4, model={"name": "fixed"})
    first.add(["a"], np.array([[0, 1, 0, 0]], np.float32), [{"label": "x"}])
    first.save()
    settings = settings_factory(index_dir=path, web_dir=tmp_path / "no-web")
    service = build_local_service(settings, embedder=FixedEmbedder())
    service._reload_interval = service._next_check = 0.0
    client = TestClient(create_app(settings, service=service))
    assert client.get("/healthz").json()["count"] == 1
    writer = FaissIndex.load(path)
    writer.add(["b"], np.array([[1, 0, 0, 0]], np.float32), [{"label": "y", "path": str(tmp_path / "b.png")}])
    writer.save()
    assert client.get("/healthz").json()["count"] == 2  # no search in between

