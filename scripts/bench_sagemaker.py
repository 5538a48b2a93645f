"""Measure dist/model.tar.gz under the real SageMaker serving stack next to ONNX Runtime in-process.

For each worker count (SAGEMAKER_MODEL_SERVER_WORKERS) it starts TorchServe + the
sagemaker-pytorch-inference toolkit (tests/support/sagemaker_container.py) and records the cold
start, then alternates short blocks — container single image, in-process single image, container
JSON batch of 16, in-process batch of 16 — so each ratio compares two measurements taken seconds
apart (these machines drift 10-25 % within seconds). The in-process side runs the archive's own
``code/inference.py`` (input_fn → predict_fn → output_fn, same model file and request bodies) in
this interpreter, which needs onnxruntime, numpy and Pillow (the project venv has them).

``--large-images`` instead measures the worker's memory for the largest images inference.py
accepts (39.7 MP, under the 40 MP limit): one JPEG, then JSON batches of flat PNGs (few bytes,
many pixels), which is what the serverless memory size must hold.

    .venv/bin/python scripts/bench_sagemaker.py [--venv .cache/sagemaker-container-venv] [--workers 1 2] [--rounds 8]
    .venv/bin/python scripts/bench_sagemaker.py --large-images
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.sagemaker_container import SageMakerContainer  # noqa: E402

BATCH = 16
MB = 2 ** 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class InProcess:
    """The archive's handler functions called directly: ONNX Runtime with no serving stack."""

    def __init__(self, model_dir: Path):
        sys.path.insert(0, str(model_dir / "code"))
        import inference  # the archive's module (and its vendored lookalike), not the project's

        self.module = inference
        self.model = inference.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str) -> bytes:
        data = body.decode() if content_type == "application/json" else body  # as the toolkit passes it
        prediction = self.module.predict_fn(self.module.input_fn(data, content_type), self.model)
        return self.module.output_fn(prediction, "application/json")[0].encode()


def in_process_cold_start(model_dir: Path, body: bytes, batch: bytes) -> tuple[float, int]:
    """A fresh interpreter: import the archive's code, model_fn, one image → seconds; then one JSON
    batch, → peak RSS (VmHWM) of that process, the in-process counterpart of java + a worker."""
    code = ("import sys, time; t = time.monotonic(); sys.path.insert(0, sys.argv[1] + '/code'); import inference; "
            "m = inference.model_fn(sys.argv[1]); body = open(sys.argv[2], 'rb').read(); "
            "inference.predict_fn(inference.input_fn(body, 'image/png'), m); print(time.monotonic() - t); "
            "inference.predict_fn(inference.input_fn(open(sys.argv[3]).read(), 'application/json'), m); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    with tempfile.NamedTemporaryFile(suffix=".png") as image, tempfile.NamedTemporaryFile(suffix=".json") as js:
        image.write(body)
        js.write(batch)
        image.flush()
        js.flush()
        out = subprocess.run([sys.executable, "-c", code, str(model_dir), image.name, js.name], check=True,
                             capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]) * 1024


def timed(fn, bodies: list[bytes], content_type: str) -> list[float]:
    out = []
    for body in bodies:
        started = time.perf_counter()
        fn(body, content_type)
        out.append(time.perf_counter() - started)
    return out


def container_call(container: SageMakerContainer):
    def call(body: bytes, content_type: str) -> bytes:
        status, _, answer = container.invoke(body, content_type, "application/json")
        if status != 200:
            raise RuntimeError(f"container answered {status}: {answer[:300]!r}")
        return answer
    return call


def concurrent_throughput(call, batches: list[bytes], clients: int) -> float:
    """Images/s with ``clients`` threads each sending the batches in turn (what 2 workers can use)."""
    def run():
        for body in batches:
            call(body, "application/json")
    threads = [threading.Thread(target=run) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * len(batches) * BATCH / (time.perf_counter() - started)


def bench_workers(args, workers: int, local: InProcess, singles: list[bytes], batches: list[bytes]) -> dict:
    base = Path(tempfile.mkdtemp(prefix=f"bench-sm-w{workers}-", dir=args.scratch))
    container = SageMakerContainer(args.venv, args.archive, base_dir=base, workers=workers,
                                   fresh=not args.keep_installed).start()
    installed = [x.split(" ", 2)[-1] for x in container.log_path.read_text().splitlines()
                 if x.startswith("Successfully installed")]  # pip's line, from the toolkit's install
    result = {"workers": workers, "ping_s": container.ping_s, "ready_s": container.cold_start_s,
              "reset": container.reset, "pip_installed": installed[0] if installed else "nothing"}
    try:
        call = container_call(container)
        # the first answer of each worker pays one-off costs (ORT arena, lazy imports): not measured
        for body in singles[:4] + batches[:2]:
            call(body, "image/png" if body in singles else "application/json")
        rounds = []
        for r in range(args.rounds):
            chunk = [singles[(r * args.block + i) % len(singles)] for i in range(args.block)]
            c_single, l_single = timed(call, chunk, "image/png"), timed(local.invoke, chunk, "image/png")
            c_batch = timed(call, batches, "application/json")
            l_batch = timed(local.invoke, batches, "application/json")
            rounds.append({"c_single": c_single, "l_single": l_single, "c_batch": c_batch, "l_batch": l_batch})
        result["concurrent2_img_s"] = concurrent_throughput(call, batches, clients=2)
        result["concurrent2_local_img_s"] = len(batches) * BATCH / sum(timed(local.invoke, batches,
                                                                              "application/json"))
        result["rss"] = container.rss_bytes("VmRSS")
        result["hwm"] = container.rss_bytes("VmHWM")
    finally:
        stopping = time.monotonic()
        container.stop()
        result["stop_s"] = time.monotonic() - stopping
    flat = {key: [x for r in rounds for x in r[key]] for key in rounds[0]}
    result.update({
        "c_p50_ms": 1000 * statistics.median(flat["c_single"]), "c_p99_ms": 1000 * pct(flat["c_single"], 0.99),
        "l_p50_ms": 1000 * statistics.median(flat["l_single"]), "l_p99_ms": 1000 * pct(flat["l_single"], 0.99),
        "c_img_s": len(flat["c_batch"]) * BATCH / sum(flat["c_batch"]),
        "l_img_s": len(flat["l_batch"]) * BATCH / sum(flat["l_batch"]),
        # per-round ratios: both sides of a ratio measured within the same few seconds
        "latency_ratio": statistics.median(statistics.median(r["c_single"]) / statistics.median(r["l_single"])
                                           for r in rounds),
        "throughput_ratio": statistics.median(sum(r["l_batch"]) / sum(r["c_batch"]) for r in rounds),
        "single_samples": len(flat["c_single"]),
    })
    return result


def table(results: list[dict], local_cold: float, local_hwm: int) -> str:
    def mb(d: dict, roles=("java", "worker")) -> float:
        return sum(d.get(role, 0) for role in roles) / MB
    rows = ["| | " + " | ".join(f"TorchServe, {r['workers']} worker{'s' * (r['workers'] > 1)}" for r in results)
            + " | ONNX Runtime in-process (in each container's window, same order) |", "|---|" + "---|" * (len(results) + 1)]

    def row(label: str, cells: list[str], local: str) -> None:
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {local} |")
    row("cold start: process → /ping 200", [f"{r['ping_s']:.1f} s" for r in results], "—")
    row("cold start: process → all workers READY", [f"{r['ready_s']:.1f} s" for r in results],
        f"{local_cold:.1f} s (import + model_fn + 1 image)")
    row("single image p50 / p99", [f"{r['c_p50_ms']:.1f} / {r['c_p99_ms']:.1f} ms" for r in results],
        " ; ".join(f"{r['l_p50_ms']:.1f} / {r['l_p99_ms']:.1f} ms" for r in results))
    row("single image p50, container ÷ in-process (per-round median)",
        [f"{r['latency_ratio']:.2f}×" for r in results], "1")
    row(f"JSON batches of {BATCH}, 1 client", [f"{r['c_img_s']:.0f} img/s" for r in results],
        " ; ".join(f"{r['l_img_s']:.0f} img/s" for r in results))
    row("batch throughput, container ÷ in-process (per-round median)",
        [f"{r['throughput_ratio']:.2f}×" for r in results], "1")
    row(f"JSON batches of {BATCH}, 2 concurrent clients", [f"{r['concurrent2_img_s']:.0f} img/s" for r in results],
        " ; ".join(f"{r['concurrent2_local_img_s']:.0f} img/s (1 stream)" for r in results))
    row("RSS java + workers (after the run)",
        [f"{mb(r['rss']):.0f} MB (java {r['rss'].get('java', 0) / MB:.0f}, "
         f"workers {r['rss'].get('worker', 0) / MB:.0f})" for r in results], "—")
    row("peak RSS java + workers (VmHWM sum)", [f"{mb(r['hwm']):.0f} MB" for r in results],
        f"{local_hwm / MB:.0f} MB (fresh process, 1 image + 1 batch)")
    row("RSS of the toolkit launcher (python, imports torch)", [f"{r['rss'].get('launcher', 0) / MB:.0f} MB"
                                                                for r in results], "—")
    row("stop (SIGTERM → all gone)", [f"{r['stop_s']:.1f} s" for r in results], "—")
    return "\n".join(rows)


def large_images(args) -> str:
    """Per-role RSS / peak (MB) of a 1-worker container after the largest images it accepts."""
    import io

    import numpy as np
    from PIL import Image

    width, height = 7280, 5450  # 39.7 MP
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)
    jpeg, flat = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG", quality=60)
    Image.new("RGB", (width, height), (120, 30, 200)).save(flat, format="PNG")
    flat_b64 = base64.b64encode(flat.getvalue()).decode()
    steps = [("3 demo PNGs, one at a time", None), (f"one 39.7 MP JPEG ({len(jpeg.getvalue()) / MB:.1f} MB)",
                                                   (jpeg.getvalue(), "image/jpeg"))]
    steps += [(f"JSON batch of {n} flat 39.7 MP PNGs ({n * len(flat_b64) / MB:.1f} MB)",
               (json.dumps({"images": [flat_b64] * n}).encode(), "application/json")) for n in (4, 16)]
    rows = ["| after | java | worker (peak) | launcher | total (peak) |", "|---|---|---|---|---|"]
    base = Path(tempfile.mkdtemp(prefix="bench-sm-large-", dir=args.scratch))
    with SageMakerContainer(args.venv, args.archive, base_dir=base, workers=1) as container:
        for label, request in steps:
            for body, content_type in [request] if request else [(p.read_bytes(), "image/png") for p in
                                                                 sorted((ROOT / "data" / "demo").rglob("*.png"))[:3]]:
                status = container.invoke(body, content_type)[0]
                assert status == 200, (label, status)
            rss, hwm = container.rss_bytes("VmRSS"), container.rss_bytes("VmHWM")
            rows.append(f"| {label} | {rss.get('java', 0) / MB:.0f} | {rss.get('worker', 0) / MB:.0f} "
                        f"({hwm.get('worker', 0) / MB:.0f}) | {rss.get('launcher', 0) / MB:.0f} | "
                        f"{sum(rss.values()) / MB:.0f} ({sum(hwm.values()) / MB:.0f}) |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".cache" / "sagemaker-container-venv")
    parser.add_argument("--archive", type=Path, default=ROOT / "dist" / "model.tar.gz")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=8, help="interleaved blocks per worker count")
    parser.add_argument("--block", type=int, default=25, help="single-image requests per block")
    parser.add_argument("--batches", type=int, default=6, help=f"batches of {BATCH} per block")
    parser.add_argument("--keep-installed", action="store_true",
                        help="time starts with code/requirements.txt already installed (not a fresh container)")
    parser.add_argument("--scratch", type=Path, default=None, help="where container BASE dirs go (temp)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--large-images", action="store_true", help="only the memory of the largest images")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "sagemaker_container_venv.sh"), str(args.venv)], check=True)
    if args.large_images:
        print(large_images(args))
        return 0

    paths = sorted((ROOT / "data" / "demo").rglob("*.png"))
    singles = [p.read_bytes() for p in paths]
    encoded = [base64.b64encode(b).decode() for b in singles]
    batches = [json.dumps({"images": encoded[i:i + BATCH]}).encode()
               for i in range(0, args.batches * BATCH, BATCH)]
    model_dir = Path(tempfile.mkdtemp(prefix="bench-sm-local-", dir=args.scratch))
    with tarfile.open(args.archive, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    local_cold, local_hwm = in_process_cold_start(model_dir, singles[0], batches[0])
    local = InProcess(model_dir)
    results = [bench_workers(args, w, local, singles, batches) for w in args.workers]
    print(f"\n{len(paths)} demo PNGs (mean {statistics.mean(map(len, singles)) / 1024:.0f} KiB), "
          f"{args.rounds} rounds × ({args.block} single + {args.batches} batches of {BATCH}) per worker count; "
          f"single-image numbers over {results[0]['single_samples']} requests. At start the toolkit pip-installed "
          + "; ".join(f"{r['pip_installed']} ({r['workers']} w)" for r in results)
          + " from the archive's code/wheels (inside the cold start).\n")
    print(table(results, local_cold, local_hwm))
    if args.json:
        args.json.write_text(json.dumps({"local_cold_s": local_cold, "local_hwm": local_hwm, "results": results},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
