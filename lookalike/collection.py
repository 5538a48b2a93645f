"""The Python API: one object for a searchable image collection on disk.

    from lookalike import Collection

    photos = Collection("~/.local/share/lookalike/photos")   # opens it (made on the first add)
    photos.add("~/Pictures")                # a folder; each image's label is its folder's name
    for hit in photos.search("query.jpg", k=6):              # a path, bytes or a PIL image
        print(hit.score, hit.label, hit.path)
    similar = photos.search(id=hit.id)      # more like this: the stored vector, no model call
    groups = photos.duplicates()            # exact copies and near duplicates
    photos.delete([hit.id])

The CLI and the HTTP API run the same code underneath (the ingest, :class:`SearchService`,
:func:`lookalike.search.duplicates.find_duplicates`); this class only puts it in one place.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import LookalikeError


@dataclass(frozen=True)
class Hit:
    """One search result: ``score`` is the cosine similarity (1.0 = the same image)."""

    id: str
    score: float
    label: str | None
    path: str | None


class Collection:
    """An image collection in ``path`` (a FAISS index folder), embedded by one model.

    ``backbone``, ``model``, ``head`` and any other :class:`~lookalike.config.Settings` field can
    be given as keywords; the rest comes from ``LOOKALIKE_*`` variables and the defaults. An
    existing collection is opened with the model it was built with.
    """

    def __init__(self, path: str | Path | None = None, *, settings: Settings | None = None, **options: Any):
        base = settings or Settings.from_env()
        changes = {k: v for k, v in options.items() if v is not None}
        if path is not None:
            changes["index_dir"] = Path(path).expanduser()
        self.settings = base.replace(**changes) if changes else base
        self._service = None

    # ----- building --------------------------------------------------------------------
    def add(self, folder: str | Path, *, prune: bool = False, progress: bool = False, refit: bool = False):
        """Embed every new image under ``folder`` (re-runs skip what is indexed) and save.

        Returns the :class:`~lookalike.index.ingest.IngestReport` (indexed, skipped, failed, ...),
        with ``report.postprocess`` saying what the post-processing did (see
        :mod:`lookalike.index.postprocessing`; ``refit`` fits it again on every entry).
        Edited files replace their entries; with ``prune``, entries of deleted files go.
        """
        from .embedders import embedder_from_settings
        from .index.postprocess import TransformedEmbedder
        from .index import open_index, postprocessing
        from .index.faiss_store import writer_lock
        from .index.ingest import ingest_folder
        from .search.compat import check_compatible, model_info

        s = self.settings
        from .search.local import settings_for_index_dir

        # An existing index keeps the backbone, engine and precision it was built with.
        embedder = embedder_from_settings(settings_for_index_dir(s), bulk=True)
        # Locked before loading: an index loaded before another writer's save would undo that save.
        with writer_lock(s.index_dir, "index"):
            index = open_index("faiss", settings=s, dim=embedder.dim, model=model_info(embedder), create=True)
            check_compatible(embedder, index)
            # New vectors get the index's transform as it is now, so every checkpoint is self-consistent.
            saved = postprocessing.entry(index)
            transform = postprocessing.prepare(index, s.postprocess)
            prepared, generation = postprocessing.entry(index), getattr(index, "generation", None)
            report = ingest_folder(Path(folder), index,
                                   TransformedEmbedder(embedder, transform) if transform.active else embedder,
                                   batch_size=s.batch_size, workers=s.workers, max_pixels=s.max_image_pixels,
                                   prune=prune, checkpoint_every=s.checkpoint_every, progress=progress)
            if getattr(index, "generation", None) != generation:
                saved = prepared  # the run saved (a checkpoint or its end) with the prepared transform
            postprocessing.record_changes(index, report.indexed + report.replaced + report.pruned)
            report.postprocess = postprocessing.finish(
                index, force=refit, command=f"lookalike index {folder} --index-dir {s.index_dir} --refit")
            if postprocessing.entry(index) != saved:
                index.save()
                report.total = len(index)
        self._service = None  # the next search loads what was saved
        return report

    def delete(self, ids: Iterable[str]) -> int:
        """Remove entries by id; returns how many existed."""
        from .index import postprocessing
        from .index.faiss_index import FaissIndex
        from .index.faiss_store import writer_lock

        index_dir = self.settings.index_dir
        if not FaissIndex.exists(index_dir):
            return 0
        with writer_lock(index_dir, "delete"):
            index = FaissIndex.load(index_dir)
            removed = index.delete(list(ids))
            if removed:
                postprocessing.record_changes(index, removed)  # the next `index` run refits if enough went
                index.save()
        self._service = None
        return removed

    # ----- querying --------------------------------------------------------------------
    @property
    def service(self):
        """The :class:`~lookalike.search.service.SearchService` over this collection (loaded once)."""
        if self._service is None:
            from .search.local import build_local_service

            self._service = build_local_service(self.settings)
        return self._service

    def __len__(self) -> int:
        return len(self.service.index)

    def search(self, query: str | Path | bytes | Any = None, *, id: str | None = None, k: int = 5,
               label: str | None = None) -> list[Hit]:
        """The ``k`` entries most similar to ``query`` (a file path, image bytes or a PIL image),
        or to the indexed entry ``id`` (itself left out), best first; ``label`` restricts them."""
        from .search.schema import SearchRequest, parse_id, parse_k

        if (query is None) == (id is None):
            raise LookalikeError("give a query image or id=, not both")
        service = self.service
        flt = {"label": label} if label else None
        k = parse_k(k, service.limits)
        if id is not None:
            response = service.search(SearchRequest(id=parse_id(id), k=k, filter=flt))
        else:
            response = service.search(SearchRequest(image=_image_bytes(query), k=k, filter=flt))
        index = service.index
        return [Hit(r.id, r.score, r.label, (index.get(r.id) or {}).get("path")) for r in response.results]

    def embed(self, images: Sequence[str | Path | bytes | Any]):
        """Images (paths, bytes or PIL images) → ``(n, dim) float32`` unit vectors of this collection's model."""
        from .imaging import decode_image

        pixels = self.settings.max_image_pixels
        return self.service.embedder.encode([decode_image(_image_bytes(i), max_pixels=pixels) for i in images])

    def duplicates(self, threshold: float | None = None) -> list:
        """Exact and near-duplicate groups (see :mod:`lookalike.search.duplicates`), largest first."""
        from .search.duplicates import DEFAULT_THRESHOLD, find_duplicates

        return find_duplicates(self.service.index, DEFAULT_THRESHOLD if threshold is None else threshold)

    def labels(self) -> dict[str, int]:
        """Label → number of entries."""
        from .search.browse import list_labels

        return {row["label"]: row["count"] for row in list_labels(self.service.index)["labels"]}


def _image_bytes(query) -> bytes:
    """Path, bytes or PIL image → encoded image bytes (what the service decodes, with its limits)."""
    if isinstance(query, (bytes, bytearray, memoryview)):
        return bytes(query)
    if isinstance(query, (str, Path)):
        from .fsutil import read_regular_file

        return read_regular_file(Path(query).expanduser())
    if hasattr(query, "save") and hasattr(query, "size"):  # a PIL image
        out = io.BytesIO()
        query.save(out, format="PNG")
        return out.getvalue()
    raise LookalikeError(f"cannot search with a {type(query).__name__}: give a path, bytes or a PIL image")
