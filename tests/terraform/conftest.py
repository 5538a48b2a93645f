"""Fixtures for the Terraform tests: the terraform binary with the offline provider mirror and
small stand-ins for the `make build` artifacts and the web page."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from .helpers import ROOT, WEB_DIR, Terraform


@pytest.fixture(scope="session")
def terraform(tmp_path_factory) -> Terraform:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not installed (https://developer.hashicorp.com/terraform/install)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    cfg = subprocess.run(
        ["bash", str(ROOT / "scripts" / "tf_cli_config.sh"), str(tmp_path_factory.mktemp("tfcli"))],
        capture_output=True, text=True, check=True, env={**env, "TF_CLI_CONFIG_FILE": os.environ.get("TF_CLI_CONFIG_FILE", "")},
    ).stdout.strip()
    if cfg:
        env["TF_CLI_CONFIG_FILE"] = cfg
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1", AWS_EC2_METADATA_DISABLED="true")
    return Terraform(binary, env)


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
