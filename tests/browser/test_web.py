"""The web page in real Chromium against a real ``lookalike serve`` on the demo index."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ARTIFACTS, DEMO_DIR, ROOT, LiveServer, free_port, wait_http

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

WEB_DIR = ROOT / "web"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
QUERY = DEMO_DIR / "birds" / "crow.png"
SCORE = re.compile(r"^\d\.\d{3}$")
API_KEY = "web-test-key-3141"

# The first search warms the model up; everything else answers in well under a second.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser(chromium_path):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (empty localStorage) whose uncaught script errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    yield page
    context.close()
    assert not script_errors, f"uncaught errors in the page: {script_errors}"


def search_requests(page) -> list:
    """Collects every POST …/search the page sends."""
    sent: list = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/search") else None)
    return sent


def wait_searches(page, n: int) -> None:
    expect(page.locator("#results")).to_have_attribute("data-searches", str(n))


def wait_images_loaded(page, selector: str = "#results img") -> None:
    page.wait_for_function(
        "sel => { const imgs = [...document.querySelectorAll(sel)];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=selector)


def cards_info(page) -> list[dict]:
    return page.locator("#results .card").evaluate_all(
        "cards => cards.map(c => ({id: c.dataset.id, label: c.querySelector('.card-label').textContent,"
        " score: c.querySelector('.card-score').textContent, src: c.querySelector('img').src}))")


def upload_and_wait(page, path, n_searches: int, k: int) -> list[dict]:
    page.set_input_files("#file-input", str(path))
    wait_searches(page, n_searches)
    expect(page.locator("#results .card")).to_have_count(k)
    expect(page.locator("#error")).to_be_hidden()
    return cards_info(page)


def test_upload_shows_k_results_with_the_image_itself_first(page, live_server):
    page.goto(live_server.url + "/")
    expect(page.locator("#collection-info")).to_contain_text("187 images indexed")
    expect(page.locator("#collection-info")).to_contain_text("efficientnet-lite2")
    page.fill("#k-input", "6")

    cards = upload_and_wait(page, QUERY, 1, 6)

    for card in cards:
        assert card["label"].strip(), card
        assert SCORE.match(card["score"]), card
        assert 0.0 <= float(card["score"]) <= 1.0
        assert "/images/" in card["src"] and "size=thumb" in card["src"], card
    assert float(cards[0]["score"]) >= 0.999 and cards[0]["label"] == "birds"
    assert [float(c["score"]) for c in cards] == sorted((float(c["score"]) for c in cards), reverse=True)
    expect(page.locator("#query-preview")).to_be_visible()
    expect(page.locator("#query-preview")).to_have_attribute("alt", re.compile("crow.png"))
    expect(page.locator("#timing")).to_have_text(re.compile(r"^server \d+\.\d ms · round trip \d+ ms$"))
    expect(page.locator("#status")).to_contain_text("6 images")
    wait_images_loaded(page)

    page.locator("#k-input").blur()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-results.png"), full_page=True)

    # The label filter narrows the results; a label nobody has gives an explanatory empty state.
    page.fill("#label-filter", "fish")
    page.click("#search-button")
    wait_searches(page, 2)
    labels = [c["label"] for c in cards_info(page)]
    assert labels and set(labels) == {"fish"}
    page.fill("#label-filter", "no-such-label")
    page.press("#label-filter", "Enter")
    wait_searches(page, 3)
    expect(page.locator("#results .card")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("no-such-label")


def test_clicking_a_result_searches_with_that_image(page, live_server):
    sent = search_requests(page)
    page.goto(live_server.url + "/")
    before = upload_and_wait(page, QUERY, 1, 6)
    preview_before = page.get_attribute("#query-preview", "src")

    target = page.locator("#results .card").nth(1)
    target_id, target_label = target.get_attribute("data-id"), target.get_attribute("data-label")
    target.locator(".card-button").click()

    wait_searches(page, 2)
    after = cards_info(page)
    assert len(after) == 6
    # "More like this" sends the result's id, not its image, and the query is not among the results.
    assert json.loads(sent[-1].post_data) == {"id": target_id, "k": 6}
    assert target_id not in {c["id"] for c in after}
    assert [c["id"] for c in after] != [c["id"] for c in before]
    assert page.get_attribute("#query-preview", "src") != preview_before
    wait_images_loaded(page, "#query-preview")
    expect(page.locator("#query-caption")).to_contain_text(target_id)
    expect(page.locator("#query-bar")).to_contain_text(target_label)

    # Keyboard only: focus another card and press Enter.
    third = page.locator("#results .card").nth(2)
    third_id = third.get_attribute("data-id")
    third.locator(".card-button").focus()
    page.keyboard.press("Enter")
    wait_searches(page, 3)
    assert json.loads(sent[-1].post_data) == {"id": third_id, "k": 6}
    assert third_id not in {c["id"] for c in cards_info(page)}


DISPATCH_FILE = """([kind, b64, name]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, {type: "image/png"}));
    const event = kind === "drop"
        ? new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true})
        : new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true});
    (kind === "drop" ? document.getElementById("drop-zone") : document.body).dispatchEvent(event);
}"""


def test_drop_and_paste_start_a_search(page, live_server):
    page.goto(live_server.url + "/")
    fish = DEMO_DIR / "fish" / sorted(p.name for p in (DEMO_DIR / "fish").glob("*.png"))[0]

    page.evaluate(DISPATCH_FILE, ["drop", base64.b64encode(fish.read_bytes()).decode(), fish.name])
    wait_searches(page, 1)
    expect(page.locator("#query-caption")).to_contain_text(fish.name)
    assert cards_info(page)[0]["label"] == "fish"

    page.evaluate(DISPATCH_FILE, ["paste", base64.b64encode(QUERY.read_bytes()).decode(), QUERY.name])
    wait_searches(page, 2)
    expect(page.locator("#query-caption")).to_contain_text(QUERY.name)
    first = cards_info(page)[0]
    assert first["label"] == "birds" and float(first["score"]) >= 0.999


def test_bad_input_gives_friendly_errors_and_the_page_stays_usable(page, live_server, tmp_path):
    sent = search_requests(page)
    page.goto(live_server.url + "/")

    text = tmp_path / "notes.txt"
    text.write_text("just some words\n")
    page.set_input_files("#file-input", str(text))
    expect(page.locator("#error")).to_contain_text("is not an image")
    assert not sent, "a non-image file must be refused before sending"

    # Garbage with an image extension passes the chooser; the server's 400 message is shown.
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a PNG\n" * 64)
    page.set_input_files("#file-input", str(junk))
    expect(page.locator("#error")).to_contain_text("not a recognised image")
    assert len(sent) == 1
    expect(page.locator("#results .card")).to_have_count(0)

    # Too big to send even after trying to decode it: refused in the browser.
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x00" * (7 * 1024 * 1024))
    page.set_input_files("#file-input", str(huge))
    expect(page.locator("#error")).to_contain_text("Image too large (max 6 MB")
    assert len(sent) == 1

    page.fill("#k-input", "3")
    upload_and_wait(page, QUERY, 1, 3)
    assert len(sent) == 2

    # A K outside 1..100 is caught before sending.
    page.fill("#k-input", "101")
    page.click("#search-button")
    expect(page.locator("#error")).to_contain_text("K must be a whole number from 1 to 100")
    assert len(sent) == 2


def test_large_photo_is_downscaled_before_upload(page, live_server, tmp_path):
    import numpy as np
    from PIL import Image

    # Noise does not compress: a ~12 MB PNG, far over the 6 MB request limit as it is.
    rng = np.random.default_rng(0)
    big = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)).save(big, compress_level=1)
    assert big.stat().st_size > 6 * 1024 * 1024
    sent = search_requests(page)
    page.goto(live_server.url + "/")

    upload_and_wait(page, big, 1, 6)

    expect(page.locator("#query-caption")).to_contain_text(re.compile(r"sent as \d+×\d+ JPEG"))
    body = sent[0].post_data_buffer
    assert len(body) <= 6 * 1024 * 1024
    sent_image = Image.open(io.BytesIO(base64.b64decode(json.loads(body)["image"])))
    assert sent_image.format == "JPEG" and max(sent_image.size) <= 2000


def test_api_key_entered_in_settings_is_sent(page, demo_index_dir):
    # A small body limit as well, to see the server's 413 reach the page.
    server = LiveServer(demo_index_dir, env={"LOOKALIKE_API_KEY": API_KEY, "LOOKALIKE_MAX_REQUEST_BYTES": "65536"})
    try:
        page.goto(server.url + "/")
        page.set_input_files("#file-input", str(QUERY))
        expect(page.locator("#error")).to_contain_text("API key required or wrong")
        expect(page.locator("#settings")).to_be_visible()
        expect(page.locator("#api-key")).to_be_focused()

        page.fill("#api-key", "not-the-key")
        page.click("#settings-form button[type=submit]")
        expect(page.locator("#settings")).to_be_visible()  # hidden on save, reopened by the next 401
        expect(page.locator("#error")).to_contain_text("API key required or wrong")

        page.fill("#api-key", API_KEY)
        page.click("#settings-form button[type=submit]")
        wait_searches(page, 1)
        expect(page.locator("#results .card")).to_have_count(6)
        expect(page.locator("#error")).to_be_hidden()
        wait_images_loaded(page)  # signed thumbnail URLs work in <img> without the header

        # The key survives a reload (localStorage) and goes with "more like this" too.
        page.reload()
        upload_and_wait(page, QUERY, 1, 6)
        page.locator("#results .card .card-button").nth(1).click()
        wait_searches(page, 2)

        page.set_input_files("#file-input", str(DEMO_DIR / "tools" / "spade.png"))
        expect(page.locator("#error")).to_contain_text("Image too large (max 6 MB")
    finally:
        server.stop()


@pytest.fixture
def static_site(tmp_path):
    """``web/`` served by a plain static file server on its own origin; yields (origin, site_dir)."""
    port = free_port()
    site = tmp_path / "site"
    shutil.copytree(WEB_DIR, site)
    log = open(tmp_path / "static.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(site)], stdout=log, stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_http(origin + "/index.html", timeout=30, proc=proc)
        yield origin, site
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_page_on_another_origin_uses_api_base_from_config(page, static_site, demo_index_dir, live_server):
    origin, site = static_site
    api = LiveServer(demo_index_dir, env={"LOOKALIKE_CORS_ORIGINS": origin})
    try:
        (site / "config.js").write_text(f'window.LOOKALIKE_CONFIG = {{ apiBase: "{api.url}/", apiKey: "" }};\n')
        page.goto(origin + "/")
        expect(page.locator("#collection-info")).to_contain_text("187 images indexed")
        expect(page.locator("#collection-info")).to_contain_text(api.url)

        cards = upload_and_wait(page, QUERY, 1, 6)
        assert all(c["src"].startswith(api.url + "/images/") for c in cards)
        wait_images_loaded(page)
        page.locator("#results .card .card-button").nth(1).click()  # more like this: a cross-origin POST by id
        wait_searches(page, 2)
        expect(page.locator("#error")).to_be_hidden()

        # ?api= overrides config.js; this server does not allow the page's origin, which the page explains.
        page.goto(f"{origin}/?api={live_server.url}")
        page.set_input_files("#file-input", str(QUERY))
        expect(page.locator("#error")).to_contain_text(f"Could not reach the search API at {live_server.url}")
        expect(page.locator("#error")).to_contain_text("CORS")
    finally:
        api.stop()
