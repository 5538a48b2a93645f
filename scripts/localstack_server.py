"""Run LocalStack (``localstack-core``) where Lambda functions can be created without Docker.

LocalStack's Lambda provider prepares every new function version for execution before it
reports it ``Active``: it downloads its runtime-init binary from GitHub and pulls the runtime's
Docker image. Neither is possible on a machine without Docker and internet, so the version goes
to ``Failed`` and ``terraform apply`` stops waiting for ``Active``. This launcher keeps the part
of that preparation which needs neither (the deployment package is fetched from S3 and unpacked,
so a broken zip still fails) and skips the download and the pull; invoking a function still
fails, as it must without Docker. Otherwise it runs the stock ``localstack.runtime.main``.

Usage (with LocalStack's environment, see scripts/localstack.sh): python localstack_server.py
"""

from __future__ import annotations


def _prepare_without_docker() -> None:
    from localstack.services.lambda_ import hooks as lambda_hooks
    from localstack.services.lambda_.invocation.docker_runtime_executor import DockerRuntimeExecutor

    def prepare_version(cls, function_version) -> None:
        lambda_hooks.prepare_docker_executor.run(function_version)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    DockerRuntimeExecutor.prepare_version = classmethod(prepare_version)


if __name__ == "__main__":
    _prepare_without_docker()
    from localstack.runtime.main import main

    main()
