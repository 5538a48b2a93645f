"""Crash-safe file writes, an advisory lock, and reads that refuse special files."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import tempfile
from pathlib import Path

# atomic_write's temporary files: ".<name>.<mkstemp's random part>.tmp" beside the target.
TEMP_SUFFIX = ".tmp"


def temp_pattern(names: str) -> re.Pattern[str]:
    """The names of atomic_write's temporary files for targets whose names match regex ``names``."""
    return re.compile(rf"^\.(?:{names})\.[A-Za-z0-9_]+{re.escape(TEMP_SUFFIX)}$")


def atomic_write(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it, then rename it over
    ``path``: readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True):
    """An exclusive advisory lock on ``path`` (created if missing), yielding the open lock file.

    With ``blocking=False`` raises ``BlockingIOError`` when another process holds it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket or a folder: reading it could block forever."""

    def __init__(self, path, kind: str):
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _check_regular(mode: int, path) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, next((name for test, name in _KINDS if test(mode)), "special file"))


def read_regular_file(path) -> bytes:
    """The bytes of the regular file ``path`` (symlinks followed).

    Raises :class:`NotRegularFile` without opening anything else: opening a FIFO waits for a
    writer, and a device such as ``/dev/zero`` never ends.
    """
    _check_regular(os.stat(path).st_mode, path)
    # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open returns at once and
    # the fstat below refuses it; on a regular file the flag changes nothing.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        _check_regular(os.fstat(fd).st_mode, path)
        return fh.read()
