"""Helpers of the Terraform tests: run terraform, copy the tree, point a root module at a local
stand-in for AWS, start moto, read policy documents."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = ROOT / "terraform"
WEB_DIR = ROOT / "web"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SITE_SERVER = Path(__file__).resolve().with_name("site_server.py")
MODULES = sorted(p.name for p in (TF_ROOT / "modules").iterdir() if p.is_dir())
ENVS = sorted(p.name for p in (TF_ROOT / "envs").iterdir() if p.is_dir())
FAKE_ACCOUNT = "123456789012"
REGION = "eu-west-1"
# Where an environment's resources live: everything is created through the one stack call.
STACK = "module.lookalike"
# What frontend_site writes into config.js.
CONFIG_JS = re.compile(r'^window\.LOOKALIKE_CONFIG = \{ apiBase: "(?P<api>[^"]+)", apiKey: "(?P<key>[^"]*)" \};\n$')
TIMINGS = ROOT / "test-artifacts" / "terraform-timings.json"
# Every AWS API the stack calls; a test points all of them at one local address.
SERVICES = ["apigateway", "cloudfront", "iam", "kms", "lambda", "logs", "opensearch", "s3", "sagemaker", "sts"]


@dataclass
class Terraform:
    """Runs terraform with a clean environment: no real AWS credentials, no prompts."""

    binary: str
    env: dict[str, str]

    def run(self, cwd: Path, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.binary, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed in {cwd} (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def json(self, cwd: Path, *args: str) -> dict:
        return json.loads(self.run(cwd, *args).stdout)


def find_terraform(cli_config_dir: Path) -> Terraform | None:
    """The terraform binary (None when not installed) with the offline provider mirror when present."""
    binary = shutil.which("terraform")
    if binary is None:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    cfg = subprocess.run(
        ["bash", str(ROOT / "scripts" / "tf_cli_config.sh"), str(cli_config_dir)],
        capture_output=True, text=True, check=True, env={**env, "TF_CLI_CONFIG_FILE": os.environ.get("TF_CLI_CONFIG_FILE", "")},
    ).stdout.strip()
    if cfg:
        env["TF_CLI_CONFIG_FILE"] = cfg
    # Every `init` would copy the ~700 MB provider into its .terraform; from a cache it links it.
    cache = cli_config_dir / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env.update(TF_PLUGIN_CACHE_DIR=str(cache), TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE="true")
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1", AWS_EC2_METADATA_DISABLED="true")
    return Terraform(binary, env)


def copy_tree(dest: Path) -> Path:
    """Copy terraform/ without local state, provider caches or backend settings."""
    shutil.copytree(
        TF_ROOT,
        dest,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "backend.hcl", "tfplan"),
    )
    return dest


PROVIDER_OVERRIDE = """
terraform {
  backend "local" {}
}

provider "aws" {
  access_key                  = "%(access_key)s"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true
  max_retries                 = %(max_retries)d

  endpoints {
%(endpoints)s
  }
}
"""


def local_aws_root(root: Path, endpoint: str | None, *, access_key: str = "testing", max_retries: int = 3,
                   module_inputs: dict[str, dict[str, object]] | None = None, values: dict | None = None) -> Path:
    """Turn the root module in ``root`` into a test root: local state, every AWS endpoint at ``endpoint``.

    ``endpoint=None`` leaves provider and backend as written (``tflocal`` overrides both itself).
    ``module_inputs`` (``{module call: {input: value}}``) adds arguments to module calls through an
    override file; each becomes a root variable of the same name (so ``-var name=...`` changes it).
    ``values`` go into an ``.auto.tfvars.json`` (they replace terraform.tfvars values wholesale).
    """
    override = ""
    if endpoint is not None:
        endpoints = "\n".join(f'    {s} = "{endpoint}"' for s in SERVICES)
        override = PROVIDER_OVERRIDE % {"access_key": access_key, "max_retries": max_retries, "endpoints": endpoints}
    variables = []
    for call, inputs in (module_inputs or {}).items():
        override += f'\nmodule "{call}" {{\n' + "".join(f"  {k} = var.{k}\n" for k in inputs) + "}\n"
        variables += [f'variable "{k}" {{ type = {"string" if isinstance(v, str) else "any"} }}\n' for k, v in inputs.items()]
    (root / "zz_test_override.tf").write_text(override)
    (root / "zz_test_variables.tf").write_text("".join(variables))
    all_values = {k: v for inputs in (module_inputs or {}).values() for k, v in inputs.items()} | (values or {})
    (root / "zz_test.auto.tfvars.json").write_text(json.dumps(all_values, indent=1))
    return root


@contextmanager
def running_moto(log_path: Path) -> Iterator[str]:
    """moto server on 127.0.0.1 (IAM's AWS managed policies loaded, Lambda without Docker); yields
    its URL and stops it by PID."""
    import httpx

    from tests.conftest import free_port, wait_http

    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("moto_server.py")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/", timeout=60, proc=proc)
        httpx.post(f"{url}/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=10).raise_for_status()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


LOCALSTACK_SCRIPT = ROOT / "scripts" / "localstack.sh"
# The account LocalStack gives the access key "test" (what tflocal's provider override uses).
LOCALSTACK_ACCOUNT = "000000000000"


class LocalStackUnavailable(RuntimeError):
    """No Python >= 3.12 for LocalStack on this machine."""


@dataclass
class LocalStack:
    """A LocalStack (community) on 127.0.0.1:``port`` started by scripts/localstack.sh."""

    url: str
    port: int
    venv: Path
    log_path: Path

    def website_host(self, bucket: str) -> str:
        """Host header of ``bucket``'s S3 website endpoint (LocalStack's name for it, with the port)."""
        return f"{bucket}.s3-website.localhost.localstack.cloud:{self.port}"

    def execute_api(self, rest_api_id: str, stage: str) -> str:
        """Base URL of a REST API stage on LocalStack's execute-api endpoint."""
        return f"{self.url}/_aws/execute-api/{rest_api_id}/{stage}"

    def tflocal(self, terraform: Terraform) -> Terraform:
        """``tflocal`` (terraform-local) running ``terraform``'s binary against this LocalStack.

        tflocal writes an override file pointing the aws provider and an S3 backend at
        AWS_ENDPOINT_URL; S3_HOSTNAME=127.0.0.1 makes it path-style (no DNS for bucket hosts).
        """
        env = {**terraform.env, "TF_CMD": terraform.binary, "AWS_ENDPOINT_URL": self.url, "S3_HOSTNAME": "127.0.0.1",
               "AWS_DEFAULT_REGION": REGION, "DISABLE_DEPRECATION_NOTICE": "1"}
        return Terraform(str(self.venv / "bin" / "tflocal"), env)


def install_localstack() -> Path:
    """The LocalStack virtualenv (``scripts/localstack.sh install``: instant once installed)."""
    proc = subprocess.run(["bash", str(LOCALSTACK_SCRIPT), "install"], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        if "needs Python >= 3.12" in proc.stderr:
            raise LocalStackUnavailable(proc.stderr.strip())
        raise RuntimeError(f"scripts/localstack.sh install failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@contextmanager
def running_localstack(venv: Path, state_dir: Path) -> Iterator[LocalStack]:
    """LocalStack on a free port of 127.0.0.1 with its state in ``state_dir``; stopped by its
    process group at the end, which must then be gone."""
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "LOCALSTACK_VENV": str(venv), "LOCALSTACK_STATE_DIR": str(state_dir)}
    script = ["bash", str(LOCALSTACK_SCRIPT)]
    started = subprocess.run([*script, "start", str(port)], env=env, capture_output=True, text=True, timeout=300)
    log_path = state_dir / "localstack.log"
    pid = int((state_dir / "pid").read_text()) if (state_dir / "pid").exists() else None
    try:
        if started.returncode != 0:
            log = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"LocalStack did not start (exit {started.returncode}): {started.stderr}\n{log}")
        yield LocalStack(started.stdout.strip(), port, venv, log_path)
    finally:
        subprocess.run([*script, "stop"], env=env, capture_output=True, timeout=120)
        if pid is not None:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                pass  # the whole group is gone
            else:
                os.killpg(pid, 9)
                raise AssertionError(f"LocalStack's process group {pid} outlived `localstack.sh stop`")


def aws_client(service: str, url: str):
    """A boto3 client of ``service`` against the emulator at ``url``."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}),
    )


def record_timing(name: str, seconds: float) -> None:
    """Keep ``seconds`` under ``name`` in test-artifacts/terraform-timings.json."""
    TIMINGS.parent.mkdir(exist_ok=True)
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    timings[name] = round(seconds, 1)
    TIMINGS.write_text(json.dumps(timings, indent=1, sort_keys=True))


def policy_statements(policy: str | dict) -> list[dict]:
    """Statements of an IAM policy document (JSON text or parsed), always as a list."""
    doc = json.loads(policy) if isinstance(policy, str) else policy
    statements = doc.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]
