"""Browsing a collection: its entries in pages, and its labels with counts.

Pages are ordered by id and continue after the last id of the previous page (``after``), so
a page stays correct while entries are added or removed elsewhere in the collection.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import InvalidInput

PAGE_DEFAULT, PAGE_MAX = 48, 200


def check_limit(limit: int | None, default: int = PAGE_DEFAULT, maximum: int = PAGE_MAX) -> int:
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidInput(f"'limit' must be an integer in 1..{maximum}.")
    return limit


def list_images(index, url_for, *, label: str | None = None, limit: int | None = None,
                after: str | None = None) -> dict[str, Any]:
    """``{"images": [{"id", "label", "url"}], "next": id | None, "total": n}`` for one page."""
    limit = check_limit(limit)
    matching = sorted((id_, meta) for id_, meta in index.items() if label is None or meta.get("label") == label)
    start = 0
    if after is not None:
        import bisect

        start = bisect.bisect_right([id_ for id_, _ in matching], after)
    page = matching[start:start + limit]
    more = start + limit < len(matching)
    return {"images": [{"id": id_, "label": meta.get("label"), "url": url_for(id_, meta)} for id_, meta in page],
            "next": page[-1][0] if page and more else None, "total": len(matching)}


def list_labels(index) -> dict[str, Any]:
    """``{"labels": [{"label", "count"}], "total": n}``, sorted by label (entries without one last)."""
    counts = Counter(meta.get("label") for _, meta in index.items())
    labels = sorted((k for k in counts if k is not None), key=str) + ([None] if None in counts else [])
    return {"labels": [{"label": k, "count": counts[k]} for k in labels], "total": sum(counts.values())}
