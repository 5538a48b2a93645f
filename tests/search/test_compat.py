"""An index records the engine and precision of its vectors; an embedder running another is refused;
indexes made before engines and precisions existed are onnxruntime/fp32 and keep working."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from lookalike.errors import ConfigError
from lookalike.index.faiss_index import FaissIndex
from lookalike.search.compat import check_compatible, model_info, stored_run
from lookalike.search.local import settings_for_index_dir, settings_for_model

LEGACY = {"name": "efficientnet-lite2", "dim": 4, "fingerprint": "1aa2e98fe5b1"}  # as indexes held it before


@dataclass
class Toy:
    engine: str = "onnxruntime"
    precision: str = "fp32"
    name: str = "efficientnet-lite2"
    dim: int = 4
    fingerprint: str = "1aa2e98fe5b1"


@dataclass
class Index:
    model: dict
    dim: int = 4


def test_model_info_records_engine_and_precision():
    info = model_info(Toy("openvino", "int8", fingerprint="48a3774367c4@openvino-int8"))
    assert (info["engine"], info["precision"], info["fingerprint"]) == ("openvino", "int8", "48a3774367c4@openvino-int8")
    assert stored_run(info) == {"engine": "openvino", "precision": "int8"}


def test_old_index_is_onnxruntime_fp32():
    assert stored_run(LEGACY) == {"engine": "onnxruntime", "precision": "fp32"}
    check_compatible(Toy(), Index(LEGACY))
    with pytest.raises(ConfigError, match="built with onnxruntime/fp32 but the embedder runs onnxruntime/int8"):
        check_compatible(Toy(precision="int8"), Index(LEGACY))


@pytest.mark.parametrize("engine,precision", [("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16")])
def test_another_engine_or_precision_is_refused(engine, precision):
    index = Index(model_info(Toy("openvino", "int8")))
    check_compatible(Toy("openvino", "int8"), index)
    if (engine, precision) != ("openvino", "int8"):
        with pytest.raises(ConfigError, match="--engine openvino --precision int8"):
            check_compatible(Toy(engine, precision), index)


def test_unknown_run_is_not_checked():
    """An endpoint that does not say (an older archive) records no fingerprint and no run: unknown."""
    cloud = {"name": "efficientnet-lite2", "dim": 4, "fingerprint": None}
    assert stored_run(cloud) is None and stored_run({}) is None
    check_compatible(Toy("openvino", "int8"), Index(cloud))
    check_compatible(Toy(engine=None, precision=None), Index(model_info(Toy("openvino", "int8"))))


def test_settings_take_the_index_run_unless_chosen(settings_factory):
    settings = settings_factory()
    legacy = settings_for_model(settings, LEGACY)
    assert (legacy.engine, legacy.precision) == ("onnxruntime", "fp32")
    new = settings_for_model(settings, model_info(Toy("openvino", "int8")))
    assert (new.engine, new.precision) == ("openvino", "int8")
    chosen = settings_for_model(settings.replace(engine="onnxruntime"), model_info(Toy("openvino", "int8")))
    assert (chosen.engine, chosen.precision) == ("onnxruntime", "int8")
    empty = settings_for_model(settings, {})
    assert (empty.engine, empty.precision) == (None, None)  # a new index: the measured default


def test_settings_for_index_dir_reads_the_saved_index(tmp_path, settings_factory):
    settings = settings_factory(index_dir=tmp_path / "index")
    assert settings_for_index_dir(settings) is settings  # no index yet
    index = FaissIndex(tmp_path / "index", 4, model=LEGACY)
    index.add(["a"], np.eye(1, 4, dtype=np.float32), [{"label": "x"}])
    index.save()
    found = settings_for_index_dir(settings)
    assert (found.engine, found.precision) == ("onnxruntime", "fp32")


@pytest.mark.slow
def test_old_index_searches_with_fp32_as_before(tmp_path, settings_factory, embedder, demo_dir):
    """A real index whose model info lacks engine/precision: the service picks ONNX Runtime fp32, whose
    fingerprint is the one recorded, and answers exactly as the fp32 embedder does; another precision
    is refused."""
    from lookalike.imaging import load_image_file
    from lookalike.search.local import build_local_service

    paths = sorted(demo_dir.rglob("*.png"))[::10]
    vectors = embedder.encode([load_image_file(p, max_pixels=10**8)[1] for p in paths])
    old = {"name": embedder.name, "dim": embedder.dim, "fingerprint": embedder.fingerprint}
    index = FaissIndex(tmp_path / "index", embedder.dim, model=old)
    index.add([p.name for p in paths], vectors, [{"label": p.parent.name} for p in paths])
    index.save()
    settings = settings_factory(index_dir=tmp_path / "index")
    service = build_local_service(settings)
    assert (service.embedder.engine, service.embedder.precision) == ("onnxruntime", "fp32")
    assert service.embedder.fingerprint == old["fingerprint"]
    query = load_image_file(paths[3], max_pixels=10**8)[1]
    got = service.search_image(query, 5)
    expected = build_local_service(settings, embedder=embedder).search_image(query, 5)
    assert [(h.id, h.score) for h in got.results] == [(h.id, h.score) for h in expected.results]
    assert got.results[0].id == paths[3].name
    with pytest.raises(ConfigError, match="onnxruntime/fp32"):
        build_local_service(settings.replace(engine="openvino", precision="fp32"))


class Endpoint:
    """invoke_endpoint of a SageMaker runtime client, answering as inference.py does."""

    def __init__(self, **run):
        self.run = run

    def invoke_endpoint(self, **request):
        import io
        import json

        n = len(json.loads(request["Body"]).get("images", [])) if request["ContentType"] == "application/json" else 1
        body = {"vectors": [[0.5] * 4] * n, "dim": 4, "model": "efficientnet-lite2", **self.run}
        return {"Body": io.BytesIO(json.dumps(body).encode())}


def test_engine_and_precision_travel_from_the_endpoint():
    """The endpoint's answer says how it ran; a cloud index records it and refuses a change."""
    pytest.importorskip("botocore")
    from lookalike.cloud.sagemaker_embedder import SageMakerEmbedder
    from lookalike.errors import UpstreamError

    remote = SageMakerEmbedder("ep", Endpoint(engine="onnxruntime", precision="int8"))
    assert remote.dim == 4 and (remote.engine, remote.precision) == ("onnxruntime", "int8")
    info = model_info(remote)
    assert stored_run(info) == {"engine": "onnxruntime", "precision": "int8"}
    with pytest.raises(ConfigError, match="onnxruntime/int8"):
        check_compatible(SageMakerEmbedder("ep", Endpoint(engine="onnxruntime", precision="fp32")), Index(info))
    # Told what the index holds (the Lambda knows it from the index), every answer is checked.
    expecting = SageMakerEmbedder("ep", Endpoint(engine="onnxruntime", precision="fp32"), name="efficientnet-lite2",
                                  dim=4, engine="onnxruntime", precision="int8")
    with pytest.raises(UpstreamError, match="precision 'fp32'"):
        expecting.encode_bytes([b"\x89PNG"])
    # An archive built before precisions were recorded answers neither: nothing to compare.
    old = SageMakerEmbedder("ep", Endpoint())
    assert old.dim == 4 and (old.engine, old.precision) == (None, None)
