"""Terraform code checks that need no AWS: formatting, module conventions, validate, checkov."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ENVS, MODULES, ROOT, TF_ROOT, copy_tree

CHECKOV_VENV = ROOT / ".cache" / "checkov-venv"


def blocks(text: str, kind: str) -> dict[str, str]:
    """``{name: body}`` of every top-level ``kind "name" { ... }`` block (brace-matched)."""
    found = {}
    for match in re.finditer(rf'^{kind} "([^"]+)" \{{', text, flags=re.M):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found[match.group(1)] = text[match.end() : i - 1]
    return found


def test_terraform_fmt(terraform):
    proc = terraform.run(ROOT, "fmt", "-check", "-recursive", "-diff", "terraform", check=False)
    assert proc.returncode == 0, f"Run `make tf-fmt`:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("module", MODULES)
def test_module_layout(module):
    path = TF_ROOT / "modules" / module
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (path / name).is_file(), f"{module} lacks {name}"
    text = "\n".join(p.read_text() for p in path.glob("*.tf"))
    assert re.search(r'^resource "[a-z0-9_]+" "this" \{', text, flags=re.M), f"{module} has no main resource named `this`"
    assert 'version = "~> 5.0"' in (path / "versions.tf").read_text()

    variables = blocks((path / "variables.tf").read_text(), "variable")
    assert variables, f"{module} declares no variables"
    for name, body in variables.items():
        assert re.search(r"^\s*description\s*=", body, flags=re.M), f"{module}: variable {name} lacks a description"
        assert re.search(r"^\s*type\s*=", body, flags=re.M), f"{module}: variable {name} lacks a type"
        assert not re.search(r"^\s*type\s*=\s*any\b", body, flags=re.M), f"{module}: variable {name} is typed `any`"
        documented = (path / "README.md").read_text()
        assert f"`{name}`" in documented, f"{module}: variable {name} is missing from README.md"
    assert any("validation {" in body for body in variables.values()), f"{module} validates no input"

    for name, body in blocks((path / "outputs.tf").read_text(), "output").items():
        assert re.search(r"^\s*description\s*=", body, flags=re.M), f"{module}: output {name} lacks a description"


def test_envs_share_one_definition():
    """dev and prod differ only in terraform.tfvars and the state key, never in wiring."""
    for name in ("main.tf", "variables.tf", "outputs.tf", "providers.tf"):
        assert (TF_ROOT / "envs/dev" / name).read_text() == (TF_ROOT / "envs/prod" / name).read_text(), name
    for env in ENVS:
        versions = (TF_ROOT / "envs" / env / "versions.tf").read_text()
        assert f'key          = "lookalike/{env}/terraform.tfstate"' in versions
        assert "use_lockfile = true" in versions and "encrypt      = true" in versions


@pytest.mark.slow
def test_validate_every_module_and_env(terraform, tmp_path):
    """`terraform init -backend=false && terraform validate` for each module and env, offline."""
    tree = copy_tree(tmp_path / "terraform")
    for path in [tree / "modules" / m for m in MODULES] + [tree / "envs" / e for e in ENVS]:
        terraform.run(path, "init", "-backend=false", "-input=false", "-no-color", timeout=300)
        result = terraform.json(path, "validate", "-json", "-no-color")
        assert result["valid"], f"{path.name}: {json.dumps(result['diagnostics'], indent=1)}"
        assert not [d for d in result["diagnostics"] if d["severity"] == "warning"], f"{path.name}: {result['diagnostics']}"


def ensure_checkov() -> Path:
    """checkov lives in its own virtualenv: it ships an `hcl2` module that clashes with others."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
        subprocess.run([str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", "checkov"], check=True, timeout=900)
    return binary


@pytest.mark.slow
def test_checkov_has_no_failed_checks():
    """Every checkov finding is either fixed or skipped in the code with a written reason."""
    proc = subprocess.run(
        # Not --quiet here: the JSON report then also lists the skipped checks with their reasons.
        [str(ensure_checkov()), "-d", str(TF_ROOT), "--skip-download", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']} {c['file_path']}" for c in failed)
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert skipped, "expected the documented in-code skips to be reported"
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"
    assert sum(r["summary"]["passed"] for r in reports) > 100
    assert sum(r["summary"]["parsing_errors"] for r in reports) == 0
