"""The web page's limits are generated from lookalike/limits.py, and the committed file is current."""

from __future__ import annotations

import json
import re

from lookalike import limits
from lookalike.artifacts import web_limits


def test_committed_limits_js_is_what_the_generator_writes():
    assert web_limits.WEB_LIMITS.read_text() == web_limits.render(), \
        "web/limits.js is stale: run `python -m lookalike.artifacts.web_limits`"


def test_limits_js_carries_the_request_limits(tmp_path):
    web_limits.main([str(tmp_path / "limits.js")])
    values = json.loads(re.search(r"= (\{.*\});", (tmp_path / "limits.js").read_text()).group(1))
    assert values == {"maxBodyBytes": limits.MAX_REQUEST_BYTES, "kDefault": limits.K_DEFAULT, "kMax": limits.K_MAX}


def test_the_page_restates_no_limit():
    """app.js and index.html take the limits from limits.js, never their own numbers."""
    app = (web_limits.WEB_LIMITS.parent / "app.js").read_text() + "".join(p.read_text() for p in web_limits.WEB_LIMITS.parent.glob("*.js") if p.name != "limits.js")
    page = (web_limits.WEB_LIMITS.parent / "index.html").read_text()
    assert "LOOKALIKE_LIMITS" in app and str(limits.MAX_REQUEST_BYTES) not in app and "6 * 1024 * 1024" not in app
    assert 'max="100"' not in page and page.index("limits.js") < page.index("app.js")
