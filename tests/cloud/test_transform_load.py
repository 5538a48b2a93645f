"""Batch ingest, the data plane's load: a transform job's ``.out`` files (moto S3) into the OpenSearch
stand-in, interrupted and resumed (an exception after N chunks in-process; a SIGKILLed
``lookalike cloud-batch-load``), never duplicating an entry, loading only what is missing, and
reporting bad or missing outputs by key without stopping."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lookalike.cloud.transform import Plan, Record, S3Uri, job_paths, job_request, write_manifest
from lookalike.cloud.transform_load import load_outputs, parse_output, read_records
from lookalike.config import Settings
from lookalike.index.opensearch import OpenSearchIndex
from tests.conftest import command_env
from tests.support.batch_transform import PHOTOS_BUCKET, TRANSFORM_PREFIX, batch_settings, prepare_account, run_cli
from tests.support.cloud import AWS_TEST_ENV, MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts moto and the OpenSearch stand-in on 127.0.0.1

DIM, MODEL, N = 1280, "efficientnet-lite2", 120
LABELS = ("birds", "fruit", "flowers")


def answer(row, model: str = MODEL) -> bytes:
    """What inference.py's output_fn answers for one image, plus AssembleWith=Line's newline."""
    return json.dumps({"vectors": [row], "dim": len(row), "model": model}, separators=(",", ":")).encode() + b"\n"


def make_job(s3, sm, job: str, n: int) -> tuple[dict, list[Record], np.ndarray]:
    """A finished job as SageMaker leaves it: records, manifest, and one .out per image."""
    rng = np.random.default_rng(abs(hash(job)) % 2**32)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = []
    for i in range(n):
        digest = hashlib.sha256(f"{job}-{i}".encode()).hexdigest()
        label = LABELS[i % len(LABELS)]
        records.append(Record(f"collection/{label}/img-{i:04d}.png", f"{label}/img-{i:04d}.png", digest[:16], label,
                              "checksum", digest, 1000))
    paths = job_paths(TRANSFORM_PREFIX, job)
    write_manifest(s3, paths, Plan(S3Uri(PHOTOS_BUCKET, "collection/"), records=records), job)
    out = S3Uri.parse(paths["output"])
    for record, row in zip(records, vectors):
        s3.put_object(Bucket=out.bucket, Key=f"{out.key}{record.rel}.out", Body=answer(row.tolist()))
    sm.create_transform_job(**job_request(Settings.from_env({}, transform_model="lookalike-test-batch"), job, paths))
    return paths, records, vectors


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    try:
        prepare_account(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jobs(moto):
    from tests.support.batch_transform import sagemaker_client

    s3, sm = moto.s3(), sagemaker_client(moto)
    return {name: make_job(s3, sm, name, n) for name, n in (("job-load", N), ("job-bad", 12))}


def open_index(url: str, name: str) -> OpenSearchIndex | None:
    try:
        return OpenSearchIndex.connect(url, name)
    except Exception:  # noqa: BLE001 - not there yet
        return None


def load(moto, standin_url: str, name: str, job: str, *, batch_size: int = 10, progress=None):
    s3 = moto.s3()
    header, records = read_records(s3, job_paths(TRANSFORM_PREFIX, job)["records"])

    def create(dim, model):
        return OpenSearchIndex.connect(standin_url, name, dim=dim, model={"name": model, "dim": dim}, create=True,
                                       batch_size=batch_size)

    return load_outputs(s3, records, bucket=header["bucket"], output=job_paths(TRANSFORM_PREFIX, job)["output"],
                        index=open_index(standin_url, name), create_index=create, job=job, batch_size=batch_size,
                        progress=progress)


def stored(standin_url: str, name: str) -> dict[str, dict]:
    index = OpenSearchIndex.connect(standin_url, name)
    index.save()  # refresh: count and listing see every write
    return dict(index.items())


def indexed_actions(standin, since: int) -> int:
    """``index`` actions in the _bulk requests the stand-in received after request number ``since``."""
    bodies = [r.body for r in standin.requests[since:] if r.method == "POST" and r.path.endswith("/_bulk")]
    text = "".join(b.decode() if isinstance(b, bytes) else str(b) for b in bodies)
    return sum(1 for line in text.splitlines() if line.startswith('{"index"'))


class Interrupted(Exception):
    pass


def test_interrupted_after_three_chunks_then_resumed_loads_only_the_rest(moto, jobs, opensearch_standin):
    _, records, vectors = jobs["job-load"]

    def stop_after_three(report):
        if report.chunks == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        load(moto, opensearch_standin.url, "resume", "job-load", progress=stop_after_three)
    assert len(stored(opensearch_standin.url, "resume")) == 30

    mark = len(opensearch_standin.requests)
    report = load(moto, opensearch_standin.url, "resume", "job-load")
    assert (report.total, report.present, report.loaded, report.failed) == (N, 30, N - 30, [])
    assert indexed_actions(opensearch_standin, mark) == N - 30  # nothing sent twice
    entries = stored(opensearch_standin.url, "resume")
    assert sorted(entries) == sorted(r.id for r in records)
    record = records[7]
    assert entries[record.id] == {"path": f"s3://{PHOTOS_BUCKET}/{record.key}", "label": record.label,
                                  "sha256": record.sha256}
    index = OpenSearchIndex.connect(opensearch_standin.url, "resume")
    np.testing.assert_allclose(index.get_vectors([r.id for r in records]), vectors, atol=1e-7)
    assert index.model["name"] == MODEL and index.dim == DIM

    mark = len(opensearch_standin.requests)
    again = load(moto, opensearch_standin.url, "resume", "job-load")
    assert (again.present, again.loaded, indexed_actions(opensearch_standin, mark)) == (N, 0, 0)


def test_sigkilled_load_resumes_to_the_exact_count(moto, jobs, opensearch_standin):
    env = batch_settings(moto.url, opensearch_standin.url, index="killed")
    opensearch_standin.delay(r"POST /killed/_bulk", 0.2, times=10_000)  # a load that takes a few seconds
    proc = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "cloud-batch-load", "job-load", "--progress",
                             "--bulk-size", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=command_env({**AWS_TEST_ENV, **env}, drop=("LOOKALIKE_", "AWS_")))
    try:
        loads = 0
        for line in proc.stderr:
            loads += line.startswith("load job-load:")
            if loads == 3:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)  # a bulk request the stand-in was still delaying lands now
    before = len(stored(opensearch_standin.url, "killed"))
    print(f"killed after {before} of {N} entries")
    assert 15 <= before < N, before

    mark = len(opensearch_standin.requests)
    done = run_cli(["cloud-batch-load", "job-load", "--json", "--bulk-size", "25"], env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "Completed"
    assert (summary["load"]["present"], summary["load"]["loaded"]) == (before, N - before)
    assert indexed_actions(opensearch_standin, mark) == N - before
    entries = stored(opensearch_standin.url, "killed")
    assert len(entries) == N and sorted(entries) == sorted(r.id for r in jobs["job-load"][1])


def test_bad_and_missing_outputs_are_reported_by_key_and_skipped(moto, jobs, opensearch_standin):
    paths, records, vectors = jobs["job-bad"]
    s3, out = moto.s3(), S3Uri.parse(paths["output"])
    key = {i: f"{out.key}{records[i].rel}.out" for i in range(len(records))}
    s3.put_object(Bucket=out.bucket, Key=key[2], Body=b'{"vectors": [[0.1, 0.2]], "dim": 2}\n{not json\n')
    s3.delete_object(Bucket=out.bucket, Key=key[4])
    s3.put_object(Bucket=out.bucket, Key=key[6], Body=answer(vectors[6].tolist(), model="another-model"))
    s3.put_object(Bucket=out.bucket, Key=key[8], Body=answer(vectors[8].tolist()) * 2)
    proc = run_cli(["cloud-batch-load", "job-bad", "--bulk-size", "5"],
                   batch_settings(moto.url, opensearch_standin.url, index="bad"))
    assert proc.returncode == 1, proc.stderr
    failed = {line.split(": ", 2)[1]: line.split(": ", 2)[2] for line in proc.stdout.splitlines()
              if line.startswith("  failed: ")}
    assert set(failed) == {records[i].key for i in (2, 4, 6, 8)}
    assert failed[records[2].key] == (f"bad output {paths['output']}{records[2].rel}.out: line 1 is not an answer "
                                      "of inference.py ({vectors, dim, model})")
    assert failed[records[4].key].startswith(f"no output {paths['output']}{records[4].rel}.out: the transform "
                                             "job did not process it")
    assert "made by 'another-model' (1280-d)" in failed[records[6].key]
    assert failed[records[8].key].endswith("expected one vector (one image per record), found 2")
    assert "loaded 8 of 12" in proc.stdout
    assert sorted(stored(opensearch_standin.url, "bad")) == sorted(records[i].id for i in range(12)
                                                                   if i not in (2, 4, 6, 8))


def test_outputs_nested_deeper_than_documented_are_found(moto, jobs, opensearch_standin):
    """If the service placed outputs under an extra folder, the tail of the name still finds them."""
    _, records, _ = jobs["job-load"]
    s3 = moto.s3()
    paths = job_paths(TRANSFORM_PREFIX, "job-nested")
    header = {"job": "job-nested", "bucket": PHOTOS_BUCKET, "prefix": "collection/", "count": 3}
    target = S3Uri.parse(paths["records"])
    s3.put_object(Bucket=target.bucket, Key=target.key, Body=(json.dumps(header) + "\n" + "\n".join(
        json.dumps(r.__dict__) for r in records[:3]) + "\n").encode())
    out = S3Uri.parse(paths["output"])
    for record in records[:3]:
        s3.put_object(Bucket=out.bucket, Key=f"{out.key}collection/{record.rel}.out", Body=answer([0.0] * (DIM - 1) + [1.0]))
    report = load(moto, opensearch_standin.url, "nested", "job-nested")
    assert (report.loaded, report.failed) == (3, [])


def test_parse_output():
    row, dim, model = parse_output(answer([0.5, -0.25]))
    assert (row, dim, model) == ([0.5, -0.25], 2, MODEL)
    for data, reason in ((b"{oops\n", "line 1 is not JSON"), (b"\xff\xfe", "not UTF-8 text"), (b"\n", "found 0"),
                         (b'{"vectors": [[NaN]], "dim": 1, "model": "m"}', "not a finite number"),
                         (b'{"vectors": [[1, 2]], "dim": 3, "model": "m"}', "not an answer of inference.py"),
                         (answer([1.0]) + b"garbage\n", "line 2 is not JSON")):
        with pytest.raises(ValueError, match=reason):
            parse_output(data)
