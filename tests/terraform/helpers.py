"""Helpers of the Terraform tests: run terraform, copy the tree, read policy documents."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = ROOT / "terraform"
WEB_DIR = ROOT / "web"
MODULES = sorted(p.name for p in (TF_ROOT / "modules").iterdir() if p.is_dir())
ENVS = sorted(p.name for p in (TF_ROOT / "envs").iterdir() if p.is_dir())
FAKE_ACCOUNT = "123456789012"


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


def copy_tree(dest: Path) -> Path:
    """Copy terraform/ without local state, provider caches or backend settings."""
    shutil.copytree(
        TF_ROOT,
        dest,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "backend.hcl", "tfplan"),
    )
    return dest


def policy_statements(policy: str | dict) -> list[dict]:
    """Statements of an IAM policy document (JSON text or parsed), always as a list."""
    doc = json.loads(policy) if isinstance(policy, str) else policy
    statements = doc.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]
