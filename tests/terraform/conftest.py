"""Fixtures for the Terraform tests: the terraform binary with the offline provider mirror,
small stand-ins for the `make build` artifacts and the web page, and a LocalStack."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS

from .helpers import (
    WEB_DIR, LocalStack, LocalStackUnavailable, Terraform, find_terraform, install_localstack, running_localstack,
)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory) -> Terraform:
    found = find_terraform(tmp_path_factory.mktemp("tfcli"))
    if found is None:
        pytest.skip("terraform is not installed (https://developer.hashicorp.com/terraform/install)")
    return found


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    """Small stand-ins for dist/: a Lambda zip and a SageMaker PyTorch model archive."""
    dist = tmp_path_factory.mktemp("dist")
    with zipfile.ZipFile(dist / "lambda.zip", "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {'statusCode': 200, 'body': '{}'}\n")
    with tarfile.open(dist / "model.tar.gz", "w:gz") as tf:
        for name, data in {"model.onnx": b"\x08\x07stand-in", "code/inference.py": b"def model_fn(model_dir):\n    return None\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return dist


@pytest.fixture(scope="session")
def web_dir(tmp_path_factory) -> Path:
    """The real web/ page when it is there, else a minimal page of the same shape."""
    if (WEB_DIR / "index.html").is_file():
        return WEB_DIR
    web = tmp_path_factory.mktemp("web")
    (web / "index.html").write_text('<!doctype html><script src="config.js"></script><script src="app.js"></script>')
    (web / "app.js").write_text("console.log(window.LOOKALIKE_CONFIG.apiBase);\n")
    (web / "style.css").write_text("body { margin: 0 }\n")
    (web / "config.js").write_text('window.LOOKALIKE_CONFIG = { apiBase: "", apiKey: "" };\n')
    return web


@pytest.fixture(scope="session")
def localstack(tmp_path_factory) -> LocalStack:
    """LocalStack community on 127.0.0.1 (installed into .cache/localstack-venv on first use,
    ~2 min); its log is kept as test-artifacts/localstack.log."""
    try:
        venv = install_localstack()
    except LocalStackUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with running_localstack(venv, tmp_path_factory.mktemp("localstack")) as running:
        try:
            yield running
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            if running.log_path.exists():
                shutil.copyfile(running.log_path, ARTIFACTS / "localstack.log")
