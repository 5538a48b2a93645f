"""``web/limits.js``: the request limits of :mod:`lookalike.limits`, for the web page.

The page is static (S3 website or ``lookalike serve``) and has no build step, so the limits
are generated into a small script it loads before ``app.js``. A test keeps the committed file
equal to what this renders: ``python -m lookalike.artifacts.web_limits`` rewrites it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import limits
from ..fsutil import atomic_write_bytes

WEB_LIMITS = Path(__file__).resolve().parent.parent.parent / "web" / "limits.js"


def render() -> str:
    return ("// Generated from lookalike/limits.py by `python -m lookalike.artifacts.web_limits`; do not edit.\n"
            f"window.LOOKALIKE_LIMITS = {json.dumps(limits.WEB, sort_keys=True)};\n")


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or [str(WEB_LIMITS)])[0])
    atomic_write_bytes(out, render().encode())
    out.chmod(0o644)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
