"""Shared fixtures: settings, the real embedder, the demo collection and index, a live server."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.opensearch_standin import opensearch_standin  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "data" / "demo"
ARTIFACTS = ROOT / "test-artifacts"
# The ONNX export is cached across test runs (and shared with `make demo`).
CACHE_DIR = Path(os.environ.get("LOOKALIKE_CACHE_DIR", ROOT / ".cache" / "lookalike"))
# Where `make datasets` unpacks the labelled sets; commands the tests start inherit it.
DATASETS_DIR = Path(os.environ.setdefault("LOOKALIKE_DATASETS_DIR", str(ROOT / ".cache" / "datasets")))


def pytest_collection_modifyitems(config, items):
    for item in items:
        # Tests mirror the package; tiers are marks (integration modules set pytestmark), except
        # that everything under browser/ drives Chromium.
        parts = Path(str(item.fspath)).parts
        if "browser" in parts:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def settings_factory(tmp_path_factory):
    """``make(**overrides)`` → Settings built from an empty environment (never os.environ)."""
    from lookalike.config import Settings

    base = {"HOME": str(tmp_path_factory.mktemp("home")), "LOOKALIKE_CACHE_DIR": str(CACHE_DIR),
            "LOOKALIKE_DATASETS_DIR": str(DATASETS_DIR)}

    def make(env: dict | None = None, **overrides):
        return Settings.from_env({**base, **(env or {})}, **overrides)

    return make


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (EfficientNet-Lite2 ImageNet weights → ONNX Runtime)."""
    from lookalike.embedders import create_embedder

    return create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR)


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO_DIR


@pytest.fixture(scope="session")
def demo_index_dir(tmp_path_factory, embedder) -> Path:
    """A FAISS index of the whole demo collection, built once per session by the real ingest."""
    from lookalike.index.faiss_index import FaissIndex
    from lookalike.index.ingest import ingest_folder
    from lookalike.search.compat import model_info

    path = tmp_path_factory.mktemp("demo-index")
    index = FaissIndex(path, embedder.dim, model=model_info(embedder))
    report = ingest_folder(DEMO_DIR, index, embedder, progress=False)
    assert report.indexed == 187 and not report.failed
    return path


def demo_images() -> list[Path]:
    return sorted(p for p in DEMO_DIR.rglob("*.png"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class ServerProcess:
    """A server in a subprocess on 127.0.0.1, logging to test-artifacts/, stopped by PID."""

    name = "server"

    def _start(self, argv: list[str], ready_url: str, env: dict, timeout: float = 120.0) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / f"{self.name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_http(ready_url, timeout=timeout, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def command_env(extra: dict | None = None, *, drop: tuple[str, ...] = ("LOOKALIKE_",)) -> dict:
    """The environment of a command a test starts: this one without ``drop``ped settings, with the
    test caches (models, datasets) and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update({"LOOKALIKE_CACHE_DIR": str(CACHE_DIR), "LOOKALIKE_DATASETS_DIR": str(DATASETS_DIR), **(extra or {})})
    return env


class LiveServer(ServerProcess):
    """``lookalike serve`` over ``index_dir``; ``env`` adds ``LOOKALIKE_*`` settings."""

    def __init__(self, index_dir: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = command_env(env)
        self._start([sys.executable, "-m", "lookalike.cli", "serve", "--index-dir", str(index_dir),
                     "--host", "127.0.0.1", "--port", str(self.port)], self.url + "/healthz", full_env)


@pytest.fixture(scope="session")
def live_server(demo_index_dir):
    """A real `lookalike serve` over the demo index (no API key)."""
    server = LiveServer(demo_index_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make system-deps` installs it")
        pytest.skip("chromium is not installed (run `make system-deps`)")
    return path
