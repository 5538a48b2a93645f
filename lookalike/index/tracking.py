"""Keep an index's entries in step with the files under a folder after an ingest's walk.

Ids are content hashes, so one entry stands for one content, and its metadata ``path`` is
one file under the folder that holds it. Exact duplicates (several files, one content)
share that one entry; its path is the one the entry already had while that file still holds
the content, else the first such file in walk order. After each walk, for every entry whose
path is under the folder:

- the file at its path still holds its content: nothing changes;
- the file cannot be read (permissions, I/O): nothing changes, its content is unknown;
- another file under the folder holds its content (renamed, moved, or its surviving
  duplicate): the entry now points at that file (path and label; the vector is the same);
- the file at its path now holds other content (edited in place): the entry is deleted
  (the new content is embedded as its own entry), with or without ``--prune``;
- no file under the folder holds its content and its path is not a file: deleted with
  ``prune``, kept without it.

The other files that hold an entry's content (exact duplicates) are kept, sorted, in its
metadata ``copies`` (absent when there are none), so ``lookalike dupes`` can list them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Changes:
    moved: int = 0
    replaced: int = 0
    pruned: int = 0
    relisted: int = 0  # entries whose list of exact copies changed (metadata only)

    def __bool__(self) -> bool:
        return bool(self.moved or self.replaced or self.pruned or self.relisted)


def reconcile(index, root: Path, found: Mapping[str, str], unreadable: set[str], *, prune: bool,
              label_for: Callable[[Path], str]) -> Changes:
    """Apply the rules above; ``found`` maps each file read under ``root`` to its content id."""
    holder: dict[str, str] = {}
    files_of: dict[str, list[str]] = {}
    for path, id_ in found.items():  # walk order: the first file with a content holds it
        holder.setdefault(id_, path)
        files_of.setdefault(id_, []).append(path)
    prefix = str(root) + os.sep
    moves: dict[str, dict] = {}
    relisted = 0  # entries whose file stays but whose list of copies changed
    replaced, pruned = [], []
    for id_, meta in index.items():
        path = meta.get("path")
        if not isinstance(path, str) or not path.startswith(prefix):
            continue  # another folder's entry, or one added without a path
        if found.get(path) == id_ or path in unreadable:
            copies = sorted(p for p in files_of.get(id_, ()) if p != path)
            if copies != (meta.get("copies") or []):
                relisted += 1
                moves[id_] = {**{k: v for k, v in meta.items() if k != "copies"}, **({"copies": copies} if copies else {})}
            continue
        if id_ in holder:
            copies = sorted(p for p in files_of[id_] if p != holder[id_])
            moves[id_] = {**{k: v for k, v in meta.items() if k != "copies"}, "path": holder[id_],
                          "label": label_for(Path(holder[id_])), **({"copies": copies} if copies else {})}
        elif path in found:
            replaced.append(id_)
        elif prune and not os.path.isfile(path):
            pruned.append(id_)
    if moves:
        ids = list(moves)
        index.add(ids, index.get_vectors(ids), [moves[i] for i in ids])  # one batch: add replaces by id
    return Changes(moved=len(moves) - relisted, relisted=relisted, replaced=index.delete(replaced), pruned=index.delete(pruned))
