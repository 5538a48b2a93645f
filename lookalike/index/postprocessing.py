"""The post-processing an index's vectors went through, and when it is fitted again.

The transform (:class:`~lookalike.index.postprocess.PostProcess`) lives in the index's model
info, saved atomically with the vectors, so every saved generation is self-consistent:

- a new index with ``power-center`` stores power-normalised vectors (mean 0) while it fills,
  and fits the mean once the first run has added everything (:func:`finish`);
- later runs keep the transform fixed, so an unchanged folder gives identical results;
- the entries changed since the fit (adds + deletes) are counted; when they reach the count the
  transform was fitted on, it is refitted (amortised O(1) per entry); ``--refit`` forces it;
- otherwise, when the collection's mean has drifted more than :data:`DRIFT_WARNING` from the
  fitted one, one warning says so and what to run.

A refit needs no images: the stored vectors are inverted to the backbone's, the mean is fitted
again and every entry is replaced (:func:`refit`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .postprocess import MODEL_KEY, PostProcess

logger = logging.getLogger(__name__)

KEY = MODEL_KEY
CHANGED = "changed_since_fit"  # kept beside the transform in the model info
REFIT_FRACTION = 1.0  # refit when changes since the fit reach this share of the fitted count
# Relative distance |mean_now - mean_fit| / |mean_fit| above which a stale fit is worth a warning.
# Measured (a fit on a share of the classes, or a random share, applied to the whole collection,
# against a fresh fit; demo and Tux Paint): drift <= 0.10 costs at most 0.6 points of P@6,
# 0.15-0.20 up to 1.3 points, 0.25-0.35 up to 2.4 points (the whole gain of the transform).
DRIFT_WARNING = 0.15
CHUNK = 20_000  # vectors read at a time when measuring the mean


@dataclass
class Outcome:
    """What :func:`finish` did: ``refitted`` (why, or None) and the drift it measured (or None)."""

    kind: str = "none"
    refitted: str | None = None
    drift: float | None = None
    changed: int = 0
    fitted_count: int = 0
    warning: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "refitted": self.refitted, "drift": None if self.drift is None else
                round(self.drift, 4), "changed_since_fit": self.changed, "fitted_count": self.fitted_count}


def current(index) -> PostProcess:
    return PostProcess.of_index(index)


def entry(index) -> dict:
    """A copy of the index's post-processing entry (``{}`` for an index built before it existed)."""
    return dict((getattr(index, "model", None) or {}).get(KEY) or {})


def changed(index) -> int:
    return int(entry(index).get(CHANGED, 0))


def _store(index, transform: PostProcess, changes: int) -> None:
    entry = transform.to_dict()
    if transform.active:
        entry[CHANGED] = int(changes)
    index.model[KEY] = entry


def prepare(index, requested: str | None) -> PostProcess:
    """The transform new vectors get in this run (``requested``: None = the index's own).

    A new (empty) index gets ``requested`` unfitted; an existing one asked for another kind is
    converted now (every stored vector), so what is saved during the run is self-consistent.
    """
    have = current(index)
    kind = have.kind if requested is None else requested
    if kind == have.kind:
        if KEY not in index.model and len(index) == 0:
            _store(index, have, 0)
        return have
    if len(index) == 0:
        transform = PostProcess.unfitted(kind, index.dim)
        _store(index, transform, 0)
        return transform
    logger.info("post-processing of %d entries changes from %s to %s", len(index), have.kind, kind)
    return refit(index, kind)


def record_changes(index, count: int) -> None:
    """Count ``count`` entries added or deleted since the fit (no-op without post-processing)."""
    transform = current(index)
    if transform.active and count:
        _store(index, transform, changed(index) + int(count))


def backbone_vectors(index, ids: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """``(ids, the backbone's unit vectors)`` of the index's entries, reconstructed from the stored ones."""
    ids = [id_ for id_, _ in index.items()] if ids is None else ids
    if not ids:
        return ids, np.zeros((0, index.dim), np.float32)
    return ids, np.concatenate(list(_backbone_chunks(index, current(index), ids)))


def _backbone_chunks(index, transform: PostProcess, ids: list[str]):
    """The backbone's vectors of ``ids``, :data:`CHUNK` at a time (a million never sit in memory twice)."""
    for i in range(0, len(ids), CHUNK):
        yield transform.invert(index.get_vectors(ids[i:i + CHUNK]))


def refit(index, kind: str | None = None) -> PostProcess:
    """Fit ``kind`` (default: the index's) on every entry again and replace all stored vectors."""
    kind = current(index).kind if kind is None else kind
    ids, backbone = backbone_vectors(index)
    transform = PostProcess.fit(kind, backbone) if len(ids) else PostProcess.unfitted(kind, index.dim)
    if ids:
        vectors = transform.apply(backbone)
        replace_all = getattr(index, "replace_all_vectors", None)
        if replace_all is not None:
            replace_all(ids, vectors)
        else:  # the Index protocol: adding existing ids replaces them (metadata kept as it is)
            index.add(ids, vectors, [index.get(i) or {} for i in ids])
    _store(index, transform, 0)
    logger.info("post-processing %s fitted on %d entries", kind, len(ids))
    return transform


def drift(index) -> float | None:
    """``|mean now - fitted mean| / |fitted mean|`` of the power-normalised vectors (None: nothing to compare)."""
    from .postprocess import power_normalise

    transform = current(index)
    if not transform.active or transform.fitted_count == 0 or len(index) == 0:
        return None
    ids = [id_ for id_, _ in index.items()]
    total = np.zeros(index.dim, np.float64)
    for chunk in _backbone_chunks(index, transform, ids):
        total += power_normalise(chunk).sum(axis=0)
    fitted = transform.mean.astype(np.float64)
    return float(np.linalg.norm(total / len(ids) - fitted) / max(np.linalg.norm(fitted), 1e-12))


def finish(index, *, force: bool = False, command: str = "lookalike index DIR --refit") -> Outcome:
    """After a run's changes were recorded: refit if forced, never fitted, or changed enough;
    otherwise measure the drift (when something changed) and warn above :data:`DRIFT_WARNING`."""
    transform = current(index)
    out = Outcome(kind=transform.kind, changed=changed(index), fitted_count=transform.fitted_count)
    if not transform.active:
        return out
    reason = None
    if force:
        reason = "forced"
    elif transform.fitted_count == 0 and len(index):
        reason = "first fit"
    elif out.changed >= max(1, REFIT_FRACTION * transform.fitted_count):
        reason = f"{out.changed} entries changed since the fit on {transform.fitted_count}"
    if reason is not None:
        fresh = refit(index)
        out.refitted, out.changed, out.fitted_count = reason, 0, fresh.fitted_count
        return out
    if out.changed:
        out.drift = drift(index)
        if out.drift is not None and out.drift > DRIFT_WARNING:
            out.warning = (f"the collection has drifted from its post-processing: mean moved {out.drift:.2f} "
                           f"(warning above {DRIFT_WARNING}) after {out.changed} changes since the fit on "
                           f"{transform.fitted_count} entries; run `{command}`")
            logger.warning("%s", out.warning)
    return out


class BackboneView:
    """Read-only ``items``/``get_vectors`` of an index with the backbone's vectors (post-processing undone),
    for what is calibrated on them, such as the near-duplicate threshold."""

    def __init__(self, index):
        self.index, self.dim, self._transform = index, index.dim, current(index)

    def __len__(self) -> int:
        return len(self.index)

    def items(self):
        return self.index.items()

    def get(self, id: str):
        return self.index.get(id)

    def get_vectors(self, ids) -> np.ndarray:
        return self._transform.invert(self.index.get_vectors(ids))


def backbone_view(index):
    """``index`` itself without post-processing, else a :class:`BackboneView` of it."""
    return BackboneView(index) if current(index).active else index
