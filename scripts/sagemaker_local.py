"""Serve a model archive on 127.0.0.1 under the real SageMaker serving stack until Ctrl-C.

TorchServe + the sagemaker-pytorch-inference toolkit run ``model.tar.gz`` as SageMaker's PyTorch
inference image does, in their own virtualenv (scripts/sagemaker_container_venv.sh, without
lookalike), with AWS's InvokeEndpoint front door on ``--port``. ``make sagemaker-local`` runs it.

    .venv/bin/python scripts/sagemaker_local.py [--archive dist/model.tar.gz] [--port 8080] [--workers 1]
    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8080 lookalike cloud-index DIR --endpoint lookalike ...
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.invoke_endpoint import InvokeEndpointForwarder  # noqa: E402
from tests.support.sagemaker_container import SageMakerContainer  # noqa: E402


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: TorchServe is stopped either way


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=ROOT / "dist" / "model.tar.gz")
    parser.add_argument("--venv", type=Path, default=ROOT / ".cache" / "sagemaker-container-venv")
    parser.add_argument("--port", type=int, default=8080, help="the InvokeEndpoint API (boto3's endpoint_url)")
    parser.add_argument("--endpoint-name", default="lookalike", help="the endpoint name clients must use")
    parser.add_argument("--workers", type=int, default=1, help="SAGEMAKER_MODEL_SERVER_WORKERS (1 measured best)")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "sagemaker_container_venv.sh"), str(args.venv)], check=True)

    signal.signal(signal.SIGTERM, _interrupt)
    container = SageMakerContainer(args.venv, args.archive, workers=args.workers)
    print(f"starting TorchServe + the SageMaker toolkit on {args.archive} (log: {container.log_path})", flush=True)
    forwarder = None
    try:
        container.start()
        forwarder = InvokeEndpointForwarder(container.url, endpoint=args.endpoint_name, port=args.port).start()
        print(f"ready in {container.cold_start_s:.1f}s\n"
              f"  container:      {container.url}/ping, {container.url}/invocations\n"
              f"  InvokeEndpoint: {forwarder.url}/endpoints/{args.endpoint_name}/invocations "
              f"(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={forwarder.url})\n"
              "Ctrl-C stops it.", flush=True)
        while container.proc.poll() is None:
            time.sleep(1)
        print(f"the container exited:\n{container.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if forwarder is not None:
            forwarder.stop()
        container.stop()
        shutil.rmtree(container.base, ignore_errors=True)  # the extracted archive and the logs


if __name__ == "__main__":
    sys.exit(main())
