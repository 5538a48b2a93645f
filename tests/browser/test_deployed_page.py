"""The web page as a deploy publishes it, in real Chromium against a real ``lookalike serve``.

The frontend_site module (through tests/terraform/fixtures/frontend_site) is applied against moto,
so the page files and config.js are exactly the objects Terraform uploads. They are downloaded
with boto3 and served on 127.0.0.1 with the headers S3 returned for them (S3's website endpoint
itself is not emulated here); config.js points the page at a ``lookalike serve`` on another
origin that allows the page's origin (CORS) and requires the API key config.js carries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.browser.test_web import (  # noqa: F401  (browser, page: fixtures)
    QUERY, SCORE, browser, page, upload_and_wait, wait_images_loaded,
)
from tests.conftest import ARTIFACTS, LiveServer, free_port, wait_http
from tests.terraform.helpers import (
    CONFIG_JS, FIXTURES, SITE_SERVER, WEB_DIR, aws_client, copy_tree, find_terraform, local_aws_root, record_timing,
    running_moto,
)

expect = pytest.importorskip("playwright.sync_api").expect

API_KEY = "deployed-page-key-2718"
WEB_FILES = sorted(p.relative_to(WEB_DIR).as_posix() for p in WEB_DIR.rglob("*")
                   if p.is_file() and not p.name.startswith(".") and p.name != "config.js")
JAVASCRIPT = ("text/javascript", "application/javascript")


@pytest.fixture(scope="module")
def terraform(tmp_path_factory):
    found = find_terraform(tmp_path_factory.mktemp("tfcli"))
    if found is None:
        pytest.skip("terraform is not installed (https://developer.hashicorp.com/terraform/install)")
    return found


@pytest.fixture(scope="module")
def site_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api(demo_index_dir, site_port):
    """``lookalike serve`` on its own origin: CORS for the page's origin only, API key required."""
    server = LiveServer(demo_index_dir, env={"LOOKALIKE_CORS_ORIGINS": f"http://127.0.0.1:{site_port}",
                                             "LOOKALIKE_API_KEY": API_KEY})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def published(terraform, api, tmp_path_factory) -> dict:
    """frontend_site applied against moto: ``{key: {Body, ContentType, CacheControl}}`` of every
    object in the page bucket, read back with boto3."""
    tmp = tmp_path_factory.mktemp("deployed-page")
    with running_moto(tmp / "moto.log") as moto_url:
        root = copy_tree(tmp / "terraform") / "fixtures" / "frontend_site"  # beside the module it calls
        shutil.copytree(FIXTURES / "frontend_site", root)
        local_aws_root(root, moto_url, values={"web_dir": str(WEB_DIR), "api_url": api.url, "api_key": API_KEY})
        terraform.run(root, "init", "-input=false", "-no-color")
        start = time.monotonic()
        # Only the page objects and what they depend on (bucket, encryption): the bucket's lifecycle
        # rules are not needed here, and the provider waits ~55 s for them to settle.
        terraform.run(root, "apply", "-auto-approve", "-input=false", "-no-color",
                      "-target=module.frontend_site.aws_s3_object.web", "-target=module.frontend_site.aws_s3_object.config_js")
        record_timing("apply_frontend_site_moto_s", time.monotonic() - start)
        outputs = {k: v["value"] for k, v in terraform.json(root, "output", "-json").items()}

        s3 = aws_client("s3", moto_url)
        bucket = outputs["bucket_name"]
        objects = {}
        for key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]:
            obj = s3.get_object(Bucket=bucket, Key=key)
            objects[key] = {"Body": obj["Body"].read(), "ContentType": obj["ContentType"],
                            "CacheControl": obj.get("CacheControl", "")}
    return objects


@pytest.fixture(scope="module")
def site(published, site_port, tmp_path_factory):
    """The downloaded objects served on 127.0.0.1 with their S3 headers; yields the origin."""
    tmp = tmp_path_factory.mktemp("site")
    root = tmp / "site"
    for key, obj in published.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(obj["Body"])
    headers = {key: {"ContentType": o["ContentType"], "CacheControl": o["CacheControl"]}
               for key, o in published.items()}
    (tmp / "objects.json").write_text(json.dumps(headers))
    log = open(tmp / "site.log", "wb")
    proc = subprocess.Popen([sys.executable, str(SITE_SERVER), str(root), str(tmp / "objects.json"), str(site_port)],
                            stdout=log, stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{site_port}"
    try:
        wait_http(origin + "/index.html", timeout=30, proc=proc)
        yield origin
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_published_objects_are_the_page_and_a_config_for_the_api(published, api):
    assert sorted(published) == sorted([*WEB_FILES, "config.js"])
    for key in WEB_FILES:
        assert published[key]["Body"] == (WEB_DIR / key).read_bytes(), key
    assert published["index.html"]["ContentType"].startswith("text/html")
    assert published["app.js"]["ContentType"].startswith(JAVASCRIPT)
    assert published["config.js"]["ContentType"].startswith(JAVASCRIPT)
    assert published["style.css"]["ContentType"].startswith("text/css")
    assert published["index.html"]["CacheControl"] == published["config.js"]["CacheControl"] == "no-cache"
    assert published["app.js"]["CacheControl"] == "public, max-age=300"

    match = CONFIG_JS.match(published["config.js"]["Body"].decode())
    assert match and match["api"] == api.url and match["key"] == API_KEY


def test_deployed_page_finds_similar_images_through_the_configured_api(page, site, api):
    searches = []
    page.on("request", lambda r: searches.append(r) if r.method == "POST" and "/search" in r.url else None)
    page.goto(site + "/")
    # The page reads the API base from the published config.js, not from its own origin.
    expect(page.locator("#collection-info")).to_contain_text("187 images indexed")
    expect(page.locator("#collection-info")).to_contain_text(api.url)
    page.fill("#k-input", "6")

    cards = upload_and_wait(page, QUERY, 1, 6)

    assert [r.url for r in searches] == [f"{api.url}/search"]
    assert searches[0].headers.get("x-api-key") == API_KEY  # the key from config.js
    for card in cards:
        assert card["label"].strip() and SCORE.match(card["score"]), card
        assert card["src"].startswith(f"{api.url}/images/"), card
    assert cards[0]["label"] == "birds" and float(cards[0]["score"]) >= 0.999
    assert [float(c["score"]) for c in cards] == sorted((float(c["score"]) for c in cards), reverse=True)
    wait_images_loaded(page)
    expect(page.locator("#error")).to_be_hidden()

    page.locator("#k-input").blur()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "deployed-page.png"), full_page=True)
