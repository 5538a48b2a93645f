"""The OpenAPI document tells the truth: schemathesis, every check (``--checks all``), against
``lookalike serve`` over the demo index, with zero failures.

Positive cases carry real images (see ``schemathesis_hooks.py``), so 200 bodies are checked
against the response schema too; negative cases are schemathesis' own schema violations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_server_does_what_its_document_says(demo_index_dir):
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is not installed (it is in the test extra)"
    server = LiveServer(demo_index_dir)
    try:
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
        run = subprocess.run([cli, "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", "30",
                              "--generation-deterministic", "--request-timeout", "60", "--no-color"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        log = server.log()
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
    assert log.count("POST /search 200") >= 10, "the run should have carried real images"
    assert log.count("POST /search 400") >= 1 and "Traceback" not in log
