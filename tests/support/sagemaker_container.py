"""The real SageMaker PyTorch serving stack (TorchServe + sagemaker-pytorch-inference) on 127.0.0.1.

``SageMakerContainer`` runs a ``model.tar.gz`` the way the image's entry point does
(``sagemaker_pytorch_serving_container.serving.main()``), in a virtualenv made by
``scripts/sagemaker_container_venv.sh``; ``tests/support/invoke_endpoint.py`` is AWS's front door
before it. The toolkit accepts one TorchServe per machine, so :meth:`SageMakerContainer.start`
takes a machine-wide lock (``/tmp/lookalike-torchserve.lock``) that :meth:`~SageMakerContainer.stop`
(or the death of the process holding it) releases. Standard library only, so any interpreter
can drive it.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from tests.support import procfs

# The toolkit writes its TorchServe config to /etc/sagemaker-ts.properties (TS_CONFIG_FILE in
# aws/sagemaker-pytorch-inference-toolkit src/sagemaker_pytorch_serving_container/torchserve.py).
# Only that constant is redirected, into BASE, so a run neither writes /etc nor shares the file
# with another run; the rest is the toolkit's own code path.
LAUNCHER = ("import os\n"
            "from sagemaker_pytorch_serving_container import serving, torchserve\n"
            "torchserve.TS_CONFIG_FILE = os.environ['LOOKALIKE_TS_CONFIG_FILE']\n"
            "serving.main()\n")
TS_JAVA_CLASS = "org.pytorch.serve.ModelServer"  # what torchserve.py looks for among all processes
MACHINE_LOCK = Path("/tmp/lookalike-torchserve.lock")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchserve_pids() -> list[int]:
    """TorchServe frontends running on this machine (anyone's)."""
    return [pid for pid in procfs.pids() if TS_JAVA_CLASS in procfs.cmdline(pid)]


def reset_venv(venv: Path | str) -> list[str]:
    """Uninstall what earlier starts pip-installed from an archive's code/requirements.txt (the
    venv script records the image's own packages), so the next start installs it again, as every
    start of a fresh SageMaker container does → the names removed."""
    def names(lines):
        return {line.split("==")[0].lower().replace("_", "-") for line in lines if "==" in line}
    pip = [str(Path(venv) / "bin" / "python"), "-m", "pip"]
    baseline = names((Path(venv) / ".sagemaker-container-baseline.txt").read_text().split())
    now = subprocess.run(pip + ["freeze", "--all"], check=True, capture_output=True, text=True).stdout.split()
    extra = sorted(names(now) - baseline)
    if extra:
        subprocess.run(pip + ["uninstall", "-y", "-q", *extra], check=True, capture_output=True)
    return extra


class MachineLock:
    """``/tmp/lookalike-torchserve.lock``, flock'ed while a container runs; it records the
    container's process group, so a run that died without stopping (SIGKILL, a CI cancel) leaves
    a TorchServe the next holder can recognise as orphaned and end."""

    def __init__(self, timeout: float):
        self.handle = open(MACHINE_LOCK, "a+")  # noqa: SIM115 - held open for the container's life
        deadline = time.monotonic() + timeout
        try:
            while True:
                with contextlib.suppress(BlockingIOError):
                    fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{MACHINE_LOCK} still held after {timeout:.0f}s by another SageMaker container")
                time.sleep(1)
            self._end_orphans()
            while others := torchserve_pids():  # torchserve.py: "multiple ts model servers are not supported"
                if time.monotonic() > deadline:  # someone's TorchServe that takes no lock
                    raise RuntimeError(f"TorchServe already runs on this machine (PIDs {others}); the toolkit "
                                       "accepts one per machine")
                time.sleep(1)
        except BaseException:
            self.handle.close()
            raise

    def _end_orphans(self) -> None:
        self.handle.seek(0)
        recorded = self.handle.read().strip()
        # Only processes this harness launched carry LOOKALIKE_TS_CONFIG_FILE; the group's holder is dead.
        for pid in procfs.group(int(recorded)) if recorded.isdigit() else ():
            with contextlib.suppress(OSError):
                if b"LOOKALIKE_TS_CONFIG_FILE=" in Path(f"/proc/{pid}/environ").read_bytes():
                    os.kill(pid, signal.SIGKILL)
        self.record("")

    def record(self, pgid: int | str) -> None:
        self.handle.truncate(0)
        self.handle.write(str(pgid))
        self.handle.flush()

    def release(self) -> None:
        self.record("")
        self.handle.close()  # closing the file releases the flock


class SageMakerContainer:
    """One model archive served by TorchServe + the SageMaker toolkit, as SageMaker starts it."""

    def __init__(self, venv: Path | str, archive: Path | str, *, base_dir: Path | str | None = None,
                 workers: int | None = None, env: dict | None = None, fresh: bool = False,
                 startup_timeout: float = 300.0, lock_timeout: float = 900.0):
        self.venv, self.archive = Path(venv).resolve(), Path(archive).resolve()  # the launcher runs in BASE
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="sagemaker-container-")).resolve()
        self.workers, self.extra_env = workers, dict(env or {})
        self.fresh, self.reset = fresh, []  # fresh: reset_venv() first (what was uninstalled → reset)
        self.startup_timeout, self.lock_timeout = startup_timeout, lock_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "container.log"
        self.proc: subprocess.Popen | None = None
        self._lock, self._stopped = None, False
        self.ping_s: float | None = None  # process start → first /ping 200
        self.cold_start_s: float | None = None  # process start → every worker READY

    def environment(self) -> dict:
        """A clean environment: nothing TS_*, SAGEMAKER_* or PIP_* leaks in from the caller."""
        metrics, grpc, grpc_mgmt, tmp = free_port(), free_port(), free_port(), self.base / "tmp"
        env = {
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.base / "home"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            # As in aws/deep-learning-containers pytorch/inference/docker/2.6/py3/Dockerfile.cpu.
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "UTF-8",
            # Per run: ts/model_server.py's pid file (tempfile.gettempdir()), worker sockets (TEMP).
            "TMPDIR": str(tmp), "TEMP": str(tmp),
            "LOG_LOCATION": str(self.base / "logs"), "METRICS_LOCATION": str(self.base / "logs"),
            # Not this machine's pip.conf: code/requirements.txt must install from the archive's wheels.
            "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            # The platform's side of the contract (sagemaker_inference/parameters.py).
            "SAGEMAKER_BASE_DIR": str(self.base), "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_SAFE_PORT_RANGE": f"{min(metrics, grpc, grpc_mgmt)}-{max(metrics, grpc, grpc_mgmt)}",
            "LOOKALIKE_TS_CONFIG_FILE": str(self.base / "sagemaker-ts.properties"),
            # torchserve.py writes inference_address and management_address as http://0.0.0.0:PORT
            # (one port, both APIs); its default-ts.properties sets enable_envvars_config=true, so
            # TS_* variables override them (ConfigManager.setSystemVars in pytorch/serve
            # frontend/server/src/main/java/org/pytorch/serve/util/ConfigManager.java): the same
            # single port, on 127.0.0.1. Metrics and gRPC (127.0.0.1:8082, 7070, 7071) get free ports.
            "TS_INFERENCE_ADDRESS": self.url, "TS_MANAGEMENT_ADDRESS": self.url,
            "TS_METRICS_ADDRESS": f"http://127.0.0.1:{metrics}",
            "TS_GRPC_INFERENCE_PORT": str(grpc), "TS_GRPC_MANAGEMENT_PORT": str(grpc_mgmt),
        }
        if self.workers is not None:
            env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(self.workers)  # → default_workers_per_model
        return {**env, **self.extra_env}

    def start(self) -> "SageMakerContainer":
        """Extract the archive into BASE/model/, launch, wait for ``/ping`` 200 and all workers READY."""
        self._lock = MachineLock(self.lock_timeout)
        try:
            if self.fresh:  # under the lock: no other container of this venv runs
                self.reset = reset_venv(self.venv)
            for sub in ("model", "tmp", "home", "logs"):
                (self.base / sub).mkdir(parents=True, exist_ok=True)
            with tarfile.open(self.archive, "r:gz") as tar:
                tar.extractall(self.base / "model", filter="data")
            started = time.monotonic()
            # Own session: `torchserve --start` exits once java runs, so java is re-parented; the
            # process group is what still ties java and its workers to this container.
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([str(self.venv / "bin" / "python"), "-c", LAUNCHER], cwd=self.base,
                                             env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            self._lock.record(self.proc.pid)
            self._wait_ready(started)
            self.cold_start_s = time.monotonic() - started
            exposed = [f"{ip}:{port}" for ip, port in self.listening() if not procfs.is_loopback(ip)]
            if exposed:
                raise RuntimeError(f"the container listens beyond loopback: {exposed}")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, started: float) -> None:
        # TorchServe 0.12.0 answers /ping "Healthy" once the frontend is up, seconds before any
        # worker has run model_fn; so also wait for the management API (same port, as torchserve.py
        # configures it) to list every worker READY.
        while time.monotonic() - started < self.startup_timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the SageMaker launcher exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self.ping_s is None and self.request("GET", "/ping", timeout=2)[0] == 200:
                    self.ping_s = time.monotonic() - started
                if self.ping_s is not None and self.workers_ready():
                    return
            time.sleep(0.25)
        # A model_fn that raises leaves /ping 200 while TorchServe restarts the worker: name the cause.
        cause = [x for x in self.log_tail(10 ** 6).splitlines() if "Failed to load model" in x][-1:]
        raise TimeoutError(f"{self.url} not ready within {self.startup_timeout:.0f}s (/ping 200 after "
                           f"{self.ping_s} s) {''.join(cause)}:\n{self.log_tail()}")

    def workers_ready(self) -> bool:
        """Every worker of the model READY, per TorchServe's describe-model API."""
        status, _, body = self.request("GET", "/models/model", timeout=2)
        workers = json.loads(body)[0].get("workers", []) if status == 200 else []
        return bool(workers) and all(w.get("status") == "READY" for w in workers)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int, dict, bytes]:
        """One HTTP exchange with the container → ``(status, lower-cased headers, body)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def invoke(self, body: bytes, content_type: str | None = None, accept: str | None = None):
        """``POST /invocations`` as SageMaker's front end sends it (absent headers left out)."""
        headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
        return self.request("POST", "/invocations", body, headers)

    def processes(self) -> dict[int, str]:
        """PID → role (launcher, java, worker, other) of everything in the container's process group."""
        if self.proc is None:
            return {}
        roles = {}
        for pid in procfs.group(self.proc.pid):
            cmd = procfs.cmdline(pid)
            roles[pid] = ("launcher" if pid == self.proc.pid else "java" if TS_JAVA_CLASS in cmd
                          else "worker" if "model_service_worker" in cmd else "other")
        return roles

    def rss_bytes(self, field: str = "VmRSS") -> dict[str, int]:
        """Memory summed per role from /proc/PID/status (``VmRSS`` now, ``VmHWM`` peak)."""
        totals: dict[str, int] = {}
        for pid, role in self.processes().items():
            totals[role] = totals.get(role, 0) + procfs.status_kib(pid, field) * 1024
        return totals

    def listening(self) -> list[tuple[str, int]]:
        """``(ip, port)`` of every TCP socket the container's processes listen on."""
        return procfs.listening(list(self.processes()))

    def log_tail(self, lines: int = 60) -> str:
        """The end of the log without the access and metrics lines (the readiness polls flood it)."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join([x for x in text if "ACCESS_LOG" not in x and "TS_METRICS" not in x][-lines:])
        return "(no log)"

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group (the launcher relays it to java), then SIGKILL every PID left;
        the machine lock is released in any case."""
        try:
            if self.proc is not None and not self._stopped:  # once: the launcher's PID may be reused
                self._stop_processes(timeout)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _stop_processes(self, timeout: float) -> None:
        pids = set(self.processes()) | {self.proc.pid}
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        if not self._gone(pids, timeout):
            pids |= set(self.processes())
            for pid in pids:  # one by one: a process that left the group is still known by its PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._gone(pids, 5)
        self.proc.wait(timeout=5)
        self._stopped = True
        if left := [pid for pid in pids if procfs.pgid(pid)]:
            raise RuntimeError(f"processes still alive after stop: {left}")

    def _gone(self, pids: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the launcher, or it lingers as our zombie
            if not any(procfs.pgid(pid) for pid in pids):
                return True
            time.sleep(0.1)
        return False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
