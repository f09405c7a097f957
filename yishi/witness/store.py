"""The witness's memory: per log, the last cosigned tree head, kept in one SQLite file.

Why SQLite (the standard library's): one transaction covers the read of the latest size,
the decision and the write of the new head, so two requests racing from the same old
size cannot both advance (``BEGIN IMMEDIATE`` takes the write lock first, across threads
and processes alike), and a crash before the commit leaves the old head, after it the new
one: never half, never rolled back. ``synchronous=FULL`` makes a commit durable before the
cosignature is answered. Forks and failed proofs a log signed are kept as evidence
(tlog-witness allows logging them).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yishi.witness.core import Refusal, TreeHead

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    origin   TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    root     BLOB NOT NULL,
    note     BLOB NOT NULL,
    updated  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id       INTEGER PRIMARY KEY,
    origin   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    request  BLOB NOT NULL,
    at       REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Head:
    """A stored head: the tree head and the checkpoint note (with this witness's cosignature)."""

    head: TreeHead
    note: bytes


class Transaction:
    """Reads and writes inside one write-locked transaction (see :meth:`WitnessStore.transaction`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def latest(self, origin: str) -> Head | None:
        """The head last cosigned for ``origin``, None if never."""
        row = self._conn.execute("SELECT size, root, note FROM heads WHERE origin = ?", (origin,)).fetchone()
        return Head(TreeHead(row[0], bytes(row[1])), bytes(row[2])) if row else None

    def advance(self, origin: str, head: TreeHead, cosigned: bytes) -> None:
        """Record ``head`` as the latest cosigned for ``origin``, with its cosigned note."""
        self._conn.execute(
            "INSERT INTO heads (origin, size, root, note, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
            "note = excluded.note, updated = excluded.updated",
            (origin, head.size, head.root_hash, cosigned, time.time()))

    def keep_evidence(self, origin: str, reason: str, request: bytes) -> None:
        """Keep a refused request the log signed (a fork, a failing proof) for whoever asks."""
        self._conn.execute("INSERT INTO evidence (origin, reason, request, at) VALUES (?, ?, ?, ?)",
                           (origin, reason, request, time.time()))


class WitnessStore:
    """The SQLite file at ``path``; each call opens its own connection (thread-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        A :class:`~yishi.witness.core.Refusal` raised inside still commits what was written
        before it (the evidence of a fork), then propagates.
        """
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(conn)
            except Refusal:
                conn.execute("COMMIT")
                raise
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def latest(self, origin: str) -> Head | None:
        """The head last cosigned for ``origin`` (outside any write)."""
        with contextlib.closing(self._connect()) as conn:
            return Transaction(conn).latest(origin)

    def evidence(self, origin: str) -> list[tuple[str, bytes]]:
        """Refused requests kept for ``origin``: (reason, request body), oldest first."""
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute("SELECT reason, request FROM evidence WHERE origin = ? ORDER BY id", (origin,))
            return [(r[0], bytes(r[1])) for r in rows]
