"""Ports for a process that binds them later (``yishi run --base-port``)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux; the common default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports free now, all below the ephemeral
    range: a port found free there (``bind(0)``) can be taken by any outgoing connection
    (to Kafka, to PostgreSQL) before the process that is to listen on it starts, and stays
    taken while that connection lives; a service that could not bind it failed every
    restart (seen in CI: portal, 5 times in a row)."""
    top = min(ephemeral_range()[0], 65536) - count
    for _ in range(200):
        base = random.randrange(10_000, top)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports below the ephemeral range")
