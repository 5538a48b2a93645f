"""The real SageMaker serving stack for the cloud tests: ONE container for the whole package.

TorchServe + the sagemaker-pytorch-inference toolkit run the model archive in their own
virtualenv (``scripts/sagemaker_container_venv.sh``: the container's Python, no lookalike), behind
the only home-made part, AWS's InvokeEndpoint front door. The toolkit accepts one TorchServe per
machine: the fixture is package-scoped (started by the first test that needs it, stopped after
the package's last test, also when a test or the start fails) and the harness holds a machine
lock while it runs.
"""

from __future__ import annotations

import shutil
import signal

import pytest

from tests.conftest import ARTIFACTS
from tests.support.cloud import ENDPOINT, REGION, Endpoint, build_model_archive, sagemaker_venv
from tests.support.invoke_endpoint import InvokeEndpointForwarder
from tests.support.sagemaker_container import SageMakerContainer


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # pytest then runs the teardown that stops TorchServe


@pytest.fixture(scope="package")
def sagemaker(tmp_path_factory) -> Endpoint:
    """dist/model.tar.gz (with its offline wheels) under TorchServe + the toolkit, 1 worker."""
    venv = sagemaker_venv()
    root = tmp_path_factory.mktemp("sagemaker")
    archive = build_model_archive(root / "model.tar.gz", venv / "bin" / "python")
    # fresh: the archive's code/requirements.txt is installed at start, as in a new container.
    container = SageMakerContainer(venv, archive, base_dir=root / "container", workers=1, fresh=True)
    forwarder = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        container.start()
        forwarder = InvokeEndpointForwarder(container.url, endpoint=ENDPOINT, region=REGION).start()
        yield Endpoint(container, forwarder)
    finally:
        try:
            if forwarder is not None:
                forwarder.stop()
            container.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            if container.log_path.exists():
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(container.log_path, ARTIFACTS / "sagemaker-container.log")
