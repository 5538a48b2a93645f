"""The collection grid, "more like this" and the Duplicates view, in real Chromium against a real
``lookalike serve``: the demo index, and a small collection built here with an exact byte copy
and a resized copy of one image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.browser.test_web import (  # noqa: F401  (browser, page: fixtures)
    SCORE, browser, cards_info, page, wait_images_loaded, wait_searches,
)
from tests.conftest import ARTIFACTS, DEMO_DIR, LiveServer, command_env

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

API_KEY = "browse-test-key-1618"
PAGE_SIZE = 48
FIRST_TILES = "#browse-grid .card:nth-child(-n+10) img"  # the rest are lazy and load when scrolled to


class Requests:
    """Every request the page sends, as (method, path, query, json body or None, headers, resource type)."""

    def __init__(self, page):
        self.sent: list[dict] = []
        page.on("request", self._record)

    def _record(self, request):
        parts = urlsplit(request.url)
        body = request.post_data
        self.sent.append({"method": request.method, "path": parts.path, "query": parse_qs(parts.query),
                          "raw": body, "json": json.loads(body) if body else None, "headers": request.headers,
                          "type": request.resource_type})

    def api(self, method: str, path: str) -> list[dict]:
        return [r for r in self.sent if r["method"] == method and r["path"] == path and r["type"] in ("fetch", "xhr")]

    def fetched_images(self) -> list[dict]:
        """Image bytes read by script (fetch/XHR), which "more like this" must not do."""
        return [r for r in self.sent if r["path"].startswith("/images/") and r["type"] in ("fetch", "xhr")]


def screenshot(page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def tile_ids(page) -> list[str]:
    return page.locator("#browse-grid .card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def focused_card_id(page) -> str | None:
    return page.evaluate("() => document.activeElement.closest('.card')?.dataset.id ?? null")


def test_browse_the_collection_page_by_page_then_more_like_this(page, live_server):
    sent = Requests(page)
    page.goto(live_server.url + "/")

    expect(page.locator("#browse-grid .card")).to_have_count(PAGE_SIZE)
    expect(page.locator("#results-title")).to_have_text("Collection")
    expect(page.locator("#browse-count")).to_have_text("Showing 48 of 187 images.")
    expect(page.locator("#results")).to_be_hidden()
    assert not sent.api("POST", "/search"), "browsing must not search"
    wait_images_loaded(page, FIRST_TILES)
    for src in page.locator(FIRST_TILES).evaluate_all("imgs => imgs.map(i => i.src)"):
        assert "/images/" in src and "size=thumb" in src, src
    alts = page.locator("#browse-grid img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert all(alt.strip() for alt in alts)
    screenshot(page, "browse.png")

    # "Load more" follows `next` until the last page; keyboard focus lands on the first new tile.
    first_page = tile_ids(page)
    page.click("#browse-more")
    expect(page.locator("#browse-grid .card")).to_have_count(2 * PAGE_SIZE)
    assert sent.api("GET", "/images")[-1]["query"]["after"] == [first_page[-1]]
    assert focused_card_id(page) == tile_ids(page)[PAGE_SIZE]
    page.click("#browse-more")
    page.click("#browse-more")
    expect(page.locator("#browse-grid .card")).to_have_count(187)
    expect(page.locator("#browse-more")).to_be_hidden()
    expect(page.locator("#browse-count")).to_have_text("All 187 images.")
    ids = tile_ids(page)
    assert len(set(ids)) == 187 and ids == sorted(ids)

    # Clicking a tile searches with its id: no image is downloaded by script, none is uploaded.
    tile = page.locator("#browse-grid .card").nth(2)
    query_id, query_label = tile.get_attribute("data-id"), tile.get_attribute("data-label")
    tile.locator(".card-button").click()
    wait_searches(page, 1)
    searches = sent.api("POST", "/search")
    assert len(searches) == 1
    assert searches[0]["json"] == {"id": query_id, "k": 6}
    assert "image" not in searches[0]["raw"] and len(searches[0]["raw"]) < 100
    assert not sent.fetched_images()

    cards = cards_info(page)
    assert len(cards) == 6
    assert query_id not in {c["id"] for c in cards}, "the query itself is not a result"
    assert all(SCORE.match(c["score"]) for c in cards)
    assert [float(c["score"]) for c in cards] == sorted((float(c["score"]) for c in cards), reverse=True)
    # Which image is the query: the preview, its caption and the bar above the results.
    expect(page.locator("#results-title")).to_have_text("Results")
    expect(page.locator("#results-title")).to_be_focused()
    expect(page.locator("#browse")).to_be_hidden()
    expect(page.locator("#query-bar")).to_contain_text(query_id)
    expect(page.locator("#query-bar")).to_contain_text(query_label)
    expect(page.locator("#query-preview")).to_have_attribute("alt", re.compile(query_id))
    expect(page.locator("#query-caption")).to_contain_text("from the collection")
    expect(page.locator("#status")).to_contain_text("6 images, most similar first")
    wait_images_loaded(page, "#query-preview")
    wait_images_loaded(page)
    page.mouse.move(0, 0)
    screenshot(page, "more-like-this.png", full_page=True)

    # A result is a tile too; K and the label filter apply to "more like this".
    next_id = cards[0]["id"]
    page.fill("#k-input", "4")
    page.fill("#label-filter", "birds")
    page.locator("#results .card .card-button").first.click()
    wait_searches(page, 2)
    assert sent.api("POST", "/search")[-1]["json"] == {"id": next_id, "k": 4, "filter": {"label": "birds"}}
    after = cards_info(page)
    assert len(after) == 4 and {c["label"] for c in after} == {"birds"} and next_id not in {c["id"] for c in after}
    expect(page.locator("#query-bar")).to_contain_text(next_id)

    # Search again re-runs the current query (by id) with a new K.
    page.fill("#k-input", "2")
    page.click("#search-button")
    wait_searches(page, 3)
    assert sent.api("POST", "/search")[-1]["json"] == {"id": next_id, "k": 2, "filter": {"label": "birds"}}
    assert not sent.fetched_images()

    # Back to the collection: the grid as it was, focus on the tile that started it.
    page.click("#back-to-browse")
    expect(page.locator("#browse")).to_be_visible()
    expect(page.locator("#results")).to_be_hidden()
    expect(page.locator("#browse-grid .card")).to_have_count(187)
    expect(page.locator("#query-preview")).to_be_hidden()
    assert focused_card_id(page) == query_id

    # Keyboard only: Enter on a focused tile.
    other = page.locator("#browse-grid .card").nth(5)
    other_id = other.get_attribute("data-id")
    other.locator(".card-button").focus()
    page.keyboard.press("Enter")
    wait_searches(page, 4)
    assert sent.api("POST", "/search")[-1]["json"]["id"] == other_id


def small_pages(path: str, limit: int):
    """A route handler that rewrites the page's ``GET {path}`` to ``limit`` items per page."""
    def handle(route):
        parts = urlsplit(route.request.url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"limit": str(limit)}
        route.continue_(url=parts._replace(query=urlencode(query)).geturl())
    return re.compile(re.escape(path) + r"(\?|$)"), handle


def test_label_picker_filters_the_grid(page, live_server):
    labels = httpx.get(live_server.url + "/labels").json()
    counts = {entry["label"]: entry["count"] for entry in labels["labels"]}
    assert 10 < counts["fish"] < 20, counts
    page.route(*small_pages("/images", 10))
    sent = Requests(page)
    page.goto(live_server.url + "/")
    expect(page.locator("#browse-grid .card")).to_have_count(10)
    expect(page.locator("#browse-count")).to_have_text(f"Showing 10 of {labels['total']} images.")

    options = page.locator("#browse-label option").evaluate_all("os => os.map(o => [o.value, o.textContent])")
    assert options[0] == ["", f"All labels ({labels['total']})"]
    assert options[1:] == [[label, f"{label} ({n})"] for label, n in sorted(counts.items())]
    # The search form's label filter suggests the same labels.
    datalist = page.locator("#known-labels option").evaluate_all("os => os.map(o => o.value)")
    assert sorted(counts) == sorted(datalist)

    page.select_option("#browse-label", "fish")
    expect(page.locator("#browse-count")).to_have_text(f"Showing 10 of {counts['fish']} images labelled “fish”.")
    assert sent.api("GET", "/images")[-1]["query"]["label"] == ["fish"]
    # Paging keeps the filter.
    page.click("#browse-more")
    expect(page.locator("#browse-grid .card")).to_have_count(counts["fish"])
    last = sent.api("GET", "/images")[-1]["query"]
    assert last["label"] == ["fish"] and last["after"]
    assert set(page.locator("#browse-grid .card").evaluate_all("cs => cs.map(c => c.dataset.label)")) == {"fish"}
    expect(page.locator("#browse-count")).to_have_text(f"All {counts['fish']} images labelled “fish”.")
    expect(page.locator("#browse-more")).to_be_hidden()
    wait_images_loaded(page, FIRST_TILES)
    page.mouse.move(0, 0)
    screenshot(page, "browse-label.png")

    page.select_option("#browse-label", "")
    expect(page.locator("#browse-count")).to_have_text(f"Showing 10 of {labels['total']} images.")
    assert "label" not in sent.api("GET", "/images")[-1]["query"]
    labels_seen = set(page.locator("#browse-grid .card").evaluate_all("cs => cs.map(c => c.dataset.label)"))
    assert len(labels_seen) > 1


@pytest.fixture(scope="module")
def copies_index(tmp_path_factory):
    """A small collection: five demo images, an exact byte copy of crow.png under another name and
    crow.png resized to 75 %; indexed by ``lookalike index``. Yields (index dir, collection dir)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("copies")
    images = root / "images"
    picks = [DEMO_DIR / "birds" / "crow.png", DEMO_DIR / "birds" / "duck.png", DEMO_DIR / "tools" / "spade.png",
             DEMO_DIR / "fish" / "bluegroper.png", DEMO_DIR / "planets" / sorted(p.name for p in
                                                                               (DEMO_DIR / "planets").glob("*.png"))[0]]
    for src in picks:
        (images / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, images / src.parent.name / src.name)
    shutil.copyfile(DEMO_DIR / "birds" / "crow.png", images / "birds" / "crow-copy.png")
    with Image.open(DEMO_DIR / "birds" / "crow.png") as crow:
        crow.resize((round(crow.width * 0.75), round(crow.height * 0.75)), Image.LANCZOS).save(
            images / "birds" / "crow-small.png")
    index_dir = root / "index"
    subprocess.run([sys.executable, "-m", "lookalike.cli", "index", str(images), "--index-dir", str(index_dir)],
                   env=command_env(), check=True, capture_output=True, timeout=600)
    return index_dir, images


@pytest.fixture(scope="module")
def copies_server(copies_index):
    server = LiveServer(copies_index[0])
    yield server
    server.stop()


def group_members(group) -> list[dict]:
    return group.locator(".dup-member").evaluate_all(
        "ms => ms.map(m => ({id: m.dataset.id, path: m.dataset.path, score: m.querySelector('.dup-score').textContent,"
        " name: m.querySelector('.card-label').textContent, src: m.querySelector('img').src}))")


def test_duplicates_view_shows_the_exact_and_the_resized_copy(page, copies_server, copies_index):
    images = copies_index[1]
    default = httpx.get(copies_server.url + "/duplicates").json()["threshold"]
    assert 0.8 <= default < 0.97, default  # the resized copy (similarity 0.975) is found at the default
    sent = Requests(page)
    page.goto(copies_server.url + "/")
    page.click("#nav-duplicates")
    assert page.url.endswith("#duplicates")
    expect(page.locator("#nav-duplicates")).to_have_attribute("aria-current", "page")
    expect(page.locator("#view-search")).to_be_hidden()
    expect(page.locator("#dup-title")).to_be_focused()

    exact = page.locator(".dup-group[data-kind=exact]")
    near = page.locator(".dup-group[data-kind=near]")
    expect(exact).to_have_count(1)
    expect(near).to_have_count(1)
    expect(page.locator("#dup-status")).to_contain_text("2 groups")

    # The byte copy: one content, two files.
    expect(exact.locator(".dup-kind")).to_have_text("Exact copies")
    members = group_members(exact)
    assert sorted(m["path"] for m in members) == [str(images / "birds" / "crow-copy.png"),
                                                  str(images / "birds" / "crow.png")]
    assert sorted(m["name"] for m in members) == ["crow-copy.png", "crow.png"]
    assert [m["score"] for m in members] == ["1.000", "1.000"]

    # The resized copy: near, with its similarity to the group's first image.
    expect(near.locator(".dup-kind")).to_have_text("Near duplicates")
    members = group_members(near)
    assert len(members) == 2 and members[0]["score"] == "reference"
    names = {m["name"] for m in members}
    assert "crow-small.png" in names and names & {"crow.png", "crow-copy.png"}
    assert SCORE.match(members[1]["score"]) and 0.92 <= float(members[1]["score"]) < 1.0
    assert all("size=thumb" in m["src"] for m in members)
    wait_images_loaded(page, "#dup-groups img")
    expect(page.locator("#dup-threshold-value")).to_have_text(f"{default:.2f}")
    assert "threshold" not in sent.api("GET", "/duplicates")[0]["query"], "the server's default applies at first"
    page.mouse.move(0, 0)
    screenshot(page, "duplicates.png", full_page=True)

    # The threshold: at 1.00 only exact copies remain; the keyboard moves it a step at a time.
    page.fill("#dup-threshold", "1")
    expect(page.locator("#dup-threshold-value")).to_have_text("1.00")
    expect(near).to_have_count(0)
    expect(exact).to_have_count(1)
    assert sent.api("GET", "/duplicates")[-1]["query"]["threshold"] == ["1.00"]
    page.focus("#dup-threshold")
    for _ in range(round((1 - default) * 100)):
        page.keyboard.press("ArrowLeft")
    expect(page.locator("#dup-threshold-value")).to_have_text(f"{default:.2f}")
    expect(near).to_have_count(1)
    assert sent.api("GET", "/duplicates")[-1]["query"]["threshold"] == [f"{default:.2f}"]

    # An image of a group runs "more like this" in the Search view.
    target = near.locator(".dup-member").nth(1)
    target_id = target.get_attribute("data-id")
    target.locator(".card-button").click()
    wait_searches(page, 1)
    assert page.url.endswith("#search")
    expect(page.locator("#view-duplicates")).to_be_hidden()
    assert sent.api("POST", "/search")[-1]["json"] == {"id": target_id, "k": 6}
    assert target_id not in {c["id"] for c in cards_info(page)}
    # Back (the browser's) returns to the duplicates.
    page.go_back()
    expect(page.locator("#view-duplicates")).to_be_visible()
    assert not sent.fetched_images()


def test_duplicates_paging(page, live_server):
    """"Load more groups" follows `next` (pages of 3 here: the page's request is rewritten to limit=3)."""
    total = httpx.get(live_server.url + "/duplicates").json()["total"]
    assert total > 3, total

    page.route(*small_pages("/duplicates", 3))
    sent = Requests(page)
    page.goto(live_server.url + "/#duplicates")
    expect(page.locator("#view-duplicates")).to_be_visible()
    expect(page.locator(".dup-group")).to_have_count(3)
    expect(page.locator("#dup-more")).to_be_visible()
    expect(page.locator("#dup-status")).to_contain_text("More below")
    first_page = page.locator(".dup-group").evaluate_all("gs => gs.map(g => g.dataset.id)")
    sizes = page.locator(".dup-group").evaluate_all("gs => gs.map(g => Number(g.dataset.size))")
    assert all(n >= 2 for n in sizes) and sizes == sorted(sizes, reverse=True)

    page.click("#dup-more")
    expect(page.locator(".dup-group")).to_have_count(min(6, total))
    assert sent.api("GET", "/duplicates")[-1]["query"]["after"] == [first_page[-1]]
    ids = page.locator(".dup-group").evaluate_all("gs => gs.map(g => g.dataset.id)")
    assert ids[:3] == first_page and len(set(ids)) == len(ids)
    # Keyboard focus continues at the first new group.
    assert page.evaluate("() => document.activeElement.closest('.dup-group')?.dataset.id") == ids[3]
    while page.locator("#dup-more").is_visible():
        page.click("#dup-more")
        expect(page.locator("#dup-groups")).to_have_attribute("aria-busy", "false")
    expect(page.locator(".dup-group")).to_have_count(total)
    expect(page.locator("#dup-status")).not_to_contain_text("More below")


def test_browse_and_duplicates_send_the_api_key(page, demo_index_dir):
    server = LiveServer(demo_index_dir, env={"LOOKALIKE_API_KEY": API_KEY})
    try:
        sent = Requests(page)
        page.goto(server.url + "/")
        expect(page.locator("#browse-error")).to_contain_text("API key required or wrong")
        expect(page.locator("#settings")).to_be_visible()
        expect(page.locator("#api-key")).to_be_focused()

        page.fill("#api-key", API_KEY)
        page.click("#settings-form button[type=submit]")
        expect(page.locator("#browse-grid .card")).to_have_count(PAGE_SIZE)
        expect(page.locator("#browse-error")).to_be_hidden()
        expect(page.locator("#browse-label option")).to_have_count(11)
        wait_images_loaded(page, FIRST_TILES)  # signed thumbnail URLs work in <img> without the header
        assert all(r["headers"].get("x-api-key") == API_KEY for r in sent.api("GET", "/images")[-1:])
        assert sent.api("GET", "/labels")[-1]["headers"].get("x-api-key") == API_KEY

        page.locator("#browse-grid .card .card-button").first.click()
        wait_searches(page, 1)
        expect(page.locator("#error")).to_be_hidden()
        assert sent.api("POST", "/search")[-1]["headers"].get("x-api-key") == API_KEY
        wait_images_loaded(page)

        page.click("#nav-duplicates")
        expect(page.locator(".dup-group").first).to_be_visible()
        assert sent.api("GET", "/duplicates")[-1]["headers"].get("x-api-key") == API_KEY
        wait_images_loaded(page, "#dup-groups img")
    finally:
        server.stop()


@pytest.fixture
def narrow_page(browser):
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def assert_no_horizontal_scroll(page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at 360 px: {width}"


def test_every_view_works_at_360_px(narrow_page, live_server):
    page = narrow_page
    page.goto(live_server.url + "/")
    expect(page.locator("#browse-grid .card")).to_have_count(PAGE_SIZE)
    assert_no_horizontal_scroll(page)
    columns = page.locator("#browse-grid").evaluate("g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
    assert columns == 2
    page.evaluate("() => document.getElementById('results-title').scrollIntoView({block: 'start'})")
    wait_images_loaded(page, "#browse-grid .card:nth-child(-n+4) img")
    screenshot(page, "browse-360.png")

    page.locator("#browse-grid .card .card-button").nth(1).click()
    wait_searches(page, 1)
    wait_images_loaded(page)
    assert_no_horizontal_scroll(page)
    screenshot(page, "more-like-this-360.png", full_page=True)

    page.click("#nav-duplicates")
    expect(page.locator(".dup-group").first).to_be_visible()
    wait_images_loaded(page, "#dup-groups .dup-group:first-child img")
    assert_no_horizontal_scroll(page)
    screenshot(page, "duplicates-360.png")


def test_an_api_without_browsing_leaves_a_note_and_search_works(page, live_server):
    """An older API (or a gateway without the routes) answers 404 / 403 "Missing Authentication Token"."""
    not_found = json.dumps({"error": {"code": "not_found", "message": "Not Found"}})
    page.route(re.compile(r"/(images|labels)(\?|$)"), lambda route: route.fulfill(
        status=404, content_type="application/json", body=not_found))
    page.route(re.compile(r"/duplicates(\?|$)"), lambda route: route.fulfill(
        status=403, content_type="application/json", body='{"message": "Missing Authentication Token"}'))
    page.goto(live_server.url + "/")
    expect(page.locator("#browse-count")).to_contain_text("does not offer browsing (no /images)")
    expect(page.locator("#browse-error")).to_be_hidden()
    expect(page.locator("#browse-label")).to_be_hidden()
    expect(page.locator("#settings")).to_be_hidden()

    page.set_input_files("#file-input", str(DEMO_DIR / "birds" / "crow.png"))
    wait_searches(page, 1)
    expect(page.locator("#results .card")).to_have_count(6)

    page.click("#nav-duplicates")
    expect(page.locator("#dup-status")).to_contain_text("does not offer finding duplicates (no /duplicates)")
    expect(page.locator("#dup-error")).to_be_hidden()
    expect(page.locator("#settings")).to_be_hidden()


DROP_LINK = """(url) => {
    const data = new DataTransfer();
    data.setData("text/uri-list", url);
    document.getElementById("drop-zone").dispatchEvent(
        new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def test_dropping_a_link_to_one_of_the_collection_searches_by_id(page, live_server):
    """Dragging a tile (its thumbnail link) onto the drop zone is "more like this" too."""
    sent = Requests(page)
    page.goto(live_server.url + "/")
    tile = page.locator("#browse-grid .card").nth(4)
    tile_id = tile.get_attribute("data-id")
    page.evaluate(DROP_LINK, tile.locator("img").get_attribute("src"))
    wait_searches(page, 1)
    assert sent.api("POST", "/search")[-1]["json"] == {"id": tile_id, "k": 6}
    assert not sent.fetched_images()
    assert tile_id not in {c["id"] for c in cards_info(page)}
