"""Helpers for the cloud tests: API Gateway event fixtures, moto's S3 on 127.0.0.1 (stopped by
PID), and what the real SageMaker serving stack needs (its virtualenv, an archive it can install)."""

from __future__ import annotations

import copy
import functools
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import CACHE_DIR, ROOT, ServerProcess, command_env, free_port
from tests.support.invoke_endpoint import InvokeEndpointForwarder
from tests.support.sagemaker_container import SageMakerContainer

EVENTS = ROOT / "tests" / "fixtures" / "events"
FIXTURE_IMAGE = ROOT / "data" / "demo" / "birds" / "adelaide-rosella.png"  # the image inside search*.json
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def with_body(name: str, body: str | None, **headers: str) -> dict:
    """A fixture event with another JSON body (and optionally other headers)."""
    event = copy.deepcopy(load_event(name))
    event["body"] = body
    event["isBase64Encoded"] = False
    for key, value in headers.items():
        event["headers"][key.replace("_", "-").title()] = value
    return event


def _clean_env(extra: dict | None = None) -> dict:
    return command_env({**AWS_TEST_ENV, **(extra or {})}, drop=("LOOKALIKE_", "AWS_"))


class MotoServer(ServerProcess):
    """moto's server (S3 and more) on 127.0.0.1; state lives in the process."""

    name = "moto"

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        self._start([str(moto), "-H", "127.0.0.1", "-p", str(self.port)], self.url + "/moto-api/", _clean_env())

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test")


# ----- the real SageMaker serving stack ---------------------------------------------------
# Under .cache/ (never committed): a fresh clone builds them once, re-runs reuse them.
SAGEMAKER_VENV = ROOT / ".cache" / "sagemaker-container-venv"
ENDPOINT = "lookalike-test"
REGION = "eu-west-1"


@dataclass
class Endpoint:
    """A SageMaker endpoint on 127.0.0.1 (the ``sagemaker`` fixture of tests/cloud/conftest.py):
    the real container behind the InvokeEndpoint forwarder, whose ``url`` is boto3's endpoint_url."""

    container: SageMakerContainer
    forwarder: InvokeEndpointForwarder
    endpoint: str = ENDPOINT

    @property
    def url(self) -> str:
        return self.forwarder.url

    def runtime(self, **config):
        """A boto3 ``sagemaker-runtime`` client of this endpoint (no retries of its own)."""
        import boto3
        from botocore.config import Config

        return boto3.client("sagemaker-runtime", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
                            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, **config))


def sagemaker_venv() -> Path:
    """TorchServe + the SageMaker toolkit in their own virtualenv, without lookalike (the script is
    idempotent: about 90 s the first time, instant after)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "sagemaker_container_venv.sh"), str(SAGEMAKER_VENV)],
                   check=True, timeout=1200)
    return SAGEMAKER_VENV


def model_wheels(python: Path) -> Path:
    """The wheels of ``code/requirements.txt`` for ``python``'s version, downloaded once per
    requirements and constraints (PyPI), into .cache/."""
    from lookalike.artifacts.packaging import MODEL_CODE, MODEL_CONSTRAINTS, download_model_wheels

    version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256((MODEL_CODE / "requirements.txt").read_bytes() + MODEL_CONSTRAINTS.read_bytes()).hexdigest()
    target = ROOT / ".cache" / f"model-wheels-py{version}"
    marker = target / ".downloaded"
    if not (marker.is_file() and marker.read_text() == key):
        download_model_wheels(target, python_version=version)
        marker.write_text(key)
    return target


def build_model_archive(out: Path, python: Path) -> Path:
    """``dist/model.tar.gz`` as ``make build`` makes it (default backbone, shared model cache), with
    the offline wheels for the container's ``python``: the container installs them at start."""
    from lookalike.artifacts.packaging import build_model_archive as build

    return build(out, backbone="efficientnet-lite2", cache_dir=CACHE_DIR, wheels_dir=model_wheels(python))


# ----- the Lambda package in a bare Python 3.12 -------------------------------------------
@functools.cache
def python312() -> str:
    """A working Python 3.12 (the Lambda runtime's version): pyenv builds first, shims last."""
    import pytest

    candidates = sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12")) + \
        [p for p in ("/usr/bin/python3.12", "/usr/local/bin/python3.12", shutil.which("python3.12")) if p]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    if os.environ.get("CI"):
        pytest.fail("a Python 3.12 interpreter is needed to import the Lambda package (the runtime's version)")
    pytest.skip("no Python 3.12 interpreter here")


def runtime_boto3_dir(target: Path) -> Path:
    """What the Lambda runtime adds to the path: boto3 and its own dependencies (pure Python)."""
    import boto3
    import botocore
    import jmespath
    import s3transfer

    for module in (boto3, botocore, jmespath, s3transfer):
        (target / module.__name__).symlink_to(Path(module.__file__).parent)
    return target


def run_in_runtime(task_dir: Path, boto_dir: Path, code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a bare Python 3.12 whose path is the unpacked package (like /var/task),
    then the runtime's boto3; the last line it prints is JSON and is returned."""
    prelude = f"import sys, json\nsys.path[:0] = [{str(task_dir)!r}, {str(boto_dir)!r}]\n"
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(task_dir), "AWS_REGION": "eu-west-1", **(env or {})}
    result = subprocess.run([python312(), "-I", "-c", prelude + code], capture_output=True, text=True, env=clean,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----- bad requests, as a Lambda event and as a request to the local API ------------------
def bad_inputs() -> dict[str, tuple[dict, dict]]:
    """name → (Lambda event, keyword arguments for ``POST /search`` on the local API)."""
    import base64
    import io

    from PIL import Image

    image = FIXTURE_IMAGE.read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (8000, 6000)).save(bomb, format="PNG")  # 48 MP in a few KB

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    cases = {
        "truncated": {"image": b64(image[: len(image) // 2])},
        "bomb": {"image": b64(bomb.getvalue())},
        "too_big": {"image": "A" * (6 * 1024 * 1024 + 10)},
        "k_zero": {"image": b64(image), "k": 0},
        "k_text": {"image": b64(image), "k": "many"},
        "bad_filter": {"image": b64(image), "filter": {"colour": "red"}},
        "not_object": [1, 2, 3],
        "empty_image": {"image": ""},
    }
    out = {name: (with_body("search", json.dumps(payload)),
                  {"content": json.dumps(payload), "headers": {"content-type": "application/json"}})
           for name, payload in cases.items()}
    for name in ("invalid_base64", "not_an_image", "k_out_of_range", "missing_image", "invalid_json",
                 "wrong_content_type"):
        event = load_event(name)
        out[name] = (event, {"content": event["body"], "headers": {"content-type": event["headers"]["Content-Type"]}})
    no_type = with_body("search", load_event("search")["body"])
    del no_type["headers"]["Content-Type"]
    out["no_content_type"] = (no_type, {"content": load_event("search")["body"]})
    return out
