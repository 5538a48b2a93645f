"""What /proc says about processes a test started: process groups, command lines, memory and the
TCP sockets they listen on. Standard library only (the SageMaker harness and its bench use it)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path


def pgid(pid: int) -> int | None:
    """Process group of a live process; None if it is gone or a zombie (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[2]) if fields[0] != "Z" else None


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    return ""


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def group(leader: int) -> list[int]:
    """Every live process in the process group ``leader`` (its own session's children included)."""
    return [pid for pid in pids() if pgid(pid) == leader]


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` line of /proc/PID/status (``VmRSS`` now, ``VmHWM`` peak); 0 if the process is gone."""
    with contextlib.suppress(OSError, StopIteration):
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1])
    return 0


def listening(of: list[int]) -> list[tuple[str, int]]:
    """``(ip, port)`` of every TCP socket the processes ``of`` listen on (/proc/net/tcp*)."""
    inodes = set()
    for pid in of:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    inodes.add(os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").rstrip("]"))
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for fields in (line.split() for line in Path(table).read_text().splitlines()[1:]):
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                raw, port = fields[1].split(":")
                packed = b"".join(bytes.fromhex(raw[i:i + 8])[::-1] for i in range(0, len(raw), 8))
                found.append((str(ipaddress.ip_address(packed)), int(port, 16)))  # words in host order
    return found


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # java binds ::ffff:127.0.0.1
