"""Load test of `lookalike serve`, plus search by id and `lookalike dupes` on a 10,000-image index.

Usage: python scripts/bench_load.py [--phases 8x60,32x30] [--rounds 2] [--out FILE.json]

Against a 10,000-image index (the Fashion-MNIST test split, indexed once and kept under the
bench cache), each phase runs C asyncio clients for S seconds on loopback. Every client
loops over a fixed mix: 70% valid searches (real images), 30% bad input (not an image, bad
base64, bad JSON, k out of range, wrong media type, a 7 MB body, a 40 MP decompression bomb,
deep nesting). It prints requests, errors by kind (any 5xx, any connection error, any answer
that is not the expected status), p50/p99 of the valid searches, and the server's RSS before
and after each round; rounds repeat the phases to show whether RSS grows.

Before the load: sequential ``POST /search`` by image and by indexed id (``{"id"}``: no decode,
no model call), alternating, with the ratio of their p50s; and the wall time of
``lookalike dupes --json`` over the whole index.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import CACHE, fashion_mnist_folder  # noqa: E402  (same folder and cache as `make bench`)


def rss_mb(pid: int, key: str = "VmRSS:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def mix(images: list[Path]) -> list[tuple[str, bytes, str, int]]:
    """``(kind, body, content type, expected status)``: 7 valid searches for every 3 bad ones."""
    from PIL import Image

    bomb = io.BytesIO()
    Image.new("1", (8000, 6000)).save(bomb, format="PNG")

    def search(data: bytes, **extra) -> bytes:
        return json.dumps({"image": base64.b64encode(data).decode(), "k": 6, **extra}).encode()

    valid = [("valid", search(p.read_bytes()), "application/json", 200) for p in images[:70]]
    bad = [("not_an_image", search(b"hello world" * 10), "application/json", 400),
           ("bad_base64", b'{"image": "%%%%"}', "application/json", 400),
           ("bad_json", b'{"image": ', "application/json", 400),
           ("k_out_of_range", search(images[0].read_bytes(), k=1000), "application/json", 400),
           ("k_as_text", search(images[0].read_bytes(), k="5"), "application/json", 400),
           ("media_type", search(images[0].read_bytes()), "text/plain", 415),
           ("too_big", b'{"image": "' + b"A" * (7 * 1024 * 1024) + b'"}', "application/json", 413),
           ("bomb", search(bomb.getvalue()), "application/json", 413),
           ("deep_nesting", b"[" * 50_000 + b"]" * 50_000, "application/json", 400)]
    return valid + bad * 3 + bad[:3]  # 70 valid, 30 bad


async def client(url: str, cases, until: float, stats: dict, offset: int) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=60) as http:
        i = offset
        while time.monotonic() < until:
            kind, body, ctype, expected = cases[i % len(cases)]
            i += 1
            started = time.perf_counter()
            try:
                r = await http.post(url + "/search", content=body, headers={"content-type": ctype})
            except httpx.HTTPError as exc:
                stats["errors"][f"connection:{type(exc).__name__}"] += 1
                continue
            took = time.perf_counter() - started
            stats["requests"] += 1
            stats["by_status"][r.status_code] += 1
            if r.status_code != expected and not (r.status_code == 503 and r.headers.get("retry-after")):
                stats["errors"][f"{kind}:{r.status_code}"] += 1
            if r.status_code >= 500 and r.status_code != 503:
                stats["errors"]["5xx"] += 1
            if kind == "valid" and r.status_code == 200:
                stats["latency"].append(took)


async def phase(url: str, cases, clients: int, seconds: float) -> dict:
    stats = {"requests": 0, "by_status": Counter(), "errors": Counter(), "latency": []}
    until = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(client(url, cases, until, stats, offset=i * 7) for i in range(clients)))
    wall = time.perf_counter() - started
    lat = np.asarray(stats["latency"]) * 1000
    return {"clients": clients, "seconds": round(wall, 1), "requests": stats["requests"],
            "req_per_s": round(stats["requests"] / wall, 1), "by_status": dict(stats["by_status"]),
            "errors": dict(stats["errors"]), "valid_p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "valid_p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None}


def id_vs_image(url: str, images: list[Path], ids: list[str], n: int = 100) -> dict:
    """``n`` image searches and ``n`` id searches, alternating one by one (same machine state)."""
    import httpx

    headers = {"content-type": "application/json"}
    bodies = [json.dumps({"image": base64.b64encode(p.read_bytes()).decode(), "k": 6}) for p in images]
    by_image, by_id = [], []
    with httpx.Client(timeout=60) as http:
        for i in range(n + 5):
            for out, body in ((by_image, bodies[i % len(bodies)]), (by_id, json.dumps({"id": ids[i % len(ids)], "k": 6}))):
                started = time.perf_counter()
                http.post(url + "/search", content=body, headers=headers).raise_for_status()
                if i >= 5:  # warm-up
                    out.append((time.perf_counter() - started) * 1000)
    image_p50, id_p50 = float(np.percentile(by_image, 50)), float(np.percentile(by_id, 50))
    return {"image_p50_ms": round(image_p50, 2), "id_p50_ms": round(id_p50, 2), "id_over_image": round(id_p50 / image_p50, 3)}


def dupes_time(index_dir: Path, env: dict) -> dict:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "lookalike.cli", "dupes", "--index-dir", str(index_dir), "--json"],
                         env=env, capture_output=True, text=True, check=True)
    body = json.loads(run.stdout)
    return {"seconds": round(time.perf_counter() - started, 1), "groups": body["total"], "threshold": body["threshold"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="8x60,32x30", help="CLIENTSxSECONDS,... (default 8x60,32x30)")
    parser.add_argument("--rounds", type=int, default=2, help="repeat the phases to watch RSS (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench-load.json")
    args = parser.parse_args()

    folder = fashion_mnist_folder()
    index_dir = CACHE.parent / "bench" / "fashion-mnist-test-index"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update({"LOOKALIKE_CACHE_DIR": str(CACHE), "PYTHONPATH": str(ROOT)})
    subprocess.run([sys.executable, "-m", "lookalike.cli", "index", str(folder), "--index-dir", str(index_dir),
                    "--quiet"], env=env, check=True)  # skips what is already indexed
    from tests.conftest import free_port, wait_http

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "serve", "--index-dir", str(index_dir),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {"index": str(index_dir), "rounds": []}
    try:
        wait_http(url + "/healthz", proc=proc)
        images = sorted(folder.rglob("*.png"))
        cases = mix(images[::100])
        import httpx

        ids = [row["id"] for row in httpx.get(url + "/images", params={"limit": 200}).json()["images"]]
        results["id_search"] = id_vs_image(url, images[::97], ids)
        print(f"search by id: p50 {results['id_search']['id_p50_ms']} ms vs by image {results['id_search']['image_p50_ms']} ms "
              f"(ratio {results['id_search']['id_over_image']})", flush=True)
        results["dupes"] = dupes_time(index_dir, env)
        print(f"lookalike dupes over {index_dir.name}: {results['dupes']['seconds']} s, {results['dupes']['groups']} groups "
              f"at threshold {results['dupes']['threshold']}", flush=True)
        for round_no in range(1, args.rounds + 1):
            before = rss_mb(proc.pid)
            phases = []
            for spec in args.phases.split(","):
                clients, seconds = (int(x) for x in spec.split("x"))
                out = asyncio.run(phase(url, cases, clients, seconds))
                phases.append(out)
                print(f"round {round_no} {clients} clients x {seconds} s: {out['requests']} requests, "
                      f"{out['req_per_s']} req/s, valid p50 {out['valid_p50_ms']} ms p99 {out['valid_p99_ms']} ms, "
                      f"statuses {out['by_status']}, errors {out['errors'] or 0}", flush=True)
            after = rss_mb(proc.pid)
            results["rounds"].append({"rss_before_mb": round(before), "rss_after_mb": round(after), "phases": phases})
            print(f"round {round_no}: server RSS {before:.0f} MB before, {after:.0f} MB after "
                  f"(peak so far {rss_mb(proc.pid, 'VmHWM:'):.0f} MB)", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
