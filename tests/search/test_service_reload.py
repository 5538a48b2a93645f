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



def test_the_service_searches_with_the_settings_breadth_and_warms_its_mapping(tmp_path, settings_factory,
                                                                              monkeypatch):
    """serve opens the index memory-mapped with the configured nprobe (it once passed only efSearch),
    faults the mapping in on a thread, and does both again for a reloaded generation."""
    import threading

    from lookalike.index import structures

    path = tmp_path / "index"
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = FaissIndex(path, 4, model={"name": "fixed"}, hnsw_threshold=50, ivf_threshold=300)
    index.add([f"e{i}" for i in range(600)], vectors, [{} for _ in range(600)])
    index.save()
    warmed = []
    real_warm = FaissIndex.warm

    def warm(self):
        warmed.append((threading.current_thread().name, real_warm(self)))

    monkeypatch.setattr(FaissIndex, "warm", warm)
    service = build_local_service(settings_factory(index_dir=path, ivf_nprobe=3), embedder=FixedEmbedder())
    assert service.index.readonly and service.index.info()["structure"] == "ivf"
    assert structures.nprobe_for(service.index._structure, service.index.params) == 3
    assert service.index.info()["search"]["nprobe"] == 3
    for thread in threading.enumerate():
        if thread.name == "lookalike-index-warm":
            thread.join(10)
    assert warmed and warmed[0][0] == "lookalike-index-warm" and warmed[0][1] > 600 * 4 * 2  # the fp16 codes

    writer = FaissIndex.load(path)
    writer.add(["new"], np.array([[1, 0, 0, 0]], np.float32), [{}])
    writer.save()
    service._reload_interval = service._next_check = 0.0
    assert service.search_image(None, 1).results[0].id == "new"
    assert service.index.info()["search"]["nprobe"] == 3
    for thread in threading.enumerate():
        if thread.name == "lookalike-index-warm":
            thread.join(10)
    assert len(warmed) == 2
