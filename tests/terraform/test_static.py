"""Terraform code checks that need no AWS: formatting, module conventions, validate, checkov."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ENVS, FIXTURES, MODULES, ROOT, TF_ROOT, copy_tree

CHECKOV_VENV = ROOT / ".cache" / "checkov-venv"
# Inputs of an environment that configure the provider (providers.tf) rather than the stack.
PROVIDER_INPUTS = {"environment", "region"}


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
    proc = terraform.run(ROOT, "fmt", "-check", "-recursive", "-diff", "terraform", "tests/terraform/fixtures", check=False)
    assert proc.returncode == 0, f"Run `make tf-fmt`:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("module", MODULES)
def test_module_layout(module):
    path = TF_ROOT / "modules" / module
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (path / name).is_file(), f"{module} lacks {name}"
    text = "\n".join(p.read_text() for p in path.glob("*.tf"))
    main_resource = re.search(r'^resource "[a-z0-9_]+" "this" \{', text, flags=re.M)
    composition = re.search(r'^module "[a-z0-9_]+" \{', text, flags=re.M)  # e.g. stack: calls the others
    assert main_resource or composition, f"{module} has neither a main resource named `this` nor module calls"
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


def test_envs_are_one_call_of_the_stack():
    """An env is the stack module with its own terraform.tfvars: dev and prod share every .tf
    file but versions.tf (the state key), declare only what they pass on, re-export every output."""
    for name in ("main.tf", "variables.tf", "outputs.tf", "providers.tf"):
        assert (TF_ROOT / "envs/dev" / name).read_text() == (TF_ROOT / "envs/prod" / name).read_text(), name
    stack = TF_ROOT / "modules" / "stack"
    stack_inputs = set(blocks((stack / "variables.tf").read_text(), "variable"))
    stack_outputs = set(blocks((stack / "outputs.tf").read_text(), "output"))
    for env in ENVS:
        path = TF_ROOT / "envs" / env
        assert {p.name for p in path.glob("*.tf")} == {"main.tf", "variables.tf", "outputs.tf", "providers.tf", "versions.tf"}
        main = (path / "main.tf").read_text()
        assert not re.search(r"^(resource|data|locals|output|variable) ", main, flags=re.M), f"{env}/main.tf: only the module call"
        calls = blocks(main, "module")
        assert list(calls) == ["lookalike"] and 'source = "../../modules/stack"' in calls["lookalike"], calls
        passed = re.findall(r"^\s*(\w+)\s*=\s*var\.(\w+)\s*$", calls["lookalike"], flags=re.M)
        assert passed and all(arg == var for arg, var in passed), f"{env}: pass inputs on under their own names"
        assert {arg for arg, _ in passed} <= stack_inputs
        declared = set(blocks((path / "variables.tf").read_text(), "variable"))
        assert declared == {arg for arg, _ in passed} | PROVIDER_INPUTS
        assert set(re.findall(r"^(\w+)\s*=", (path / "terraform.tfvars").read_text(), flags=re.M)) == declared
        outputs = blocks((path / "outputs.tf").read_text(), "output")
        assert set(outputs) == stack_outputs
        for name, body in outputs.items():
            assert re.search(rf"value\s*=\s*module\.lookalike\.{name}\s", body + " "), f"{env}: output {name}"
        versions = (path / "versions.tf").read_text()
        assert f'key          = "lookalike/{env}/terraform.tfstate"' in versions
        assert "use_lockfile = true" in versions and "encrypt      = true" in versions


@pytest.mark.slow
def test_validate_every_module_and_env(terraform, tmp_path):
    """`terraform init -backend=false && terraform validate` for each module, env and test root, offline."""
    tree = copy_tree(tmp_path / "terraform")
    fixtures = shutil.copytree(FIXTURES, tree / "fixtures")  # test roots, placed beside the modules they call
    roots = [tree / "modules" / m for m in MODULES] + [tree / "envs" / e for e in ENVS]
    for path in roots + sorted(p for p in fixtures.iterdir() if p.is_dir()):
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
