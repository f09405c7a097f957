"""The local restore test: a base backup plus the WAL archive bring the embedded database
back to a point in time, with exactly the events committed before it, and the hash
chains verify on the restored store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.support.store import events, meta
from yishi import migrations
from yishi.backup import (BackupError, archive_current_wal, base_backup, consistent_after, prepare_restore,
                          wait_recovered)
from yishi.db import create_pool
from yishi.embedded import EmbeddedPostgres, _runtime_root
from yishi.store import EventStore

SERVICE = "proposals"


@pytest.fixture
def workdir():
    # As root the server runs as another user, who must reach its folders (see yishi.embedded).
    path = Path(tempfile.mkdtemp(prefix="backup-", dir=_runtime_root() if os.geteuid() == 0 else None))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def stored(url: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f'SELECT stream_id, version FROM "{SERVICE}".events ORDER BY position')
        return [(r["stream_id"], r["version"]) for r in rows]
    finally:
        await conn.close()


async def write(store: EventStore, stream: str, n: int) -> list[tuple[str, int]]:
    await store.append(stream, 0, events(n, stream), meta())
    return [(stream, v) for v in range(1, n + 1)]


async def test_restore_to_a_point_in_time_keeps_exactly_the_events_before_it(workdir):
    origin_dir, backup, archive, restored_dir = (workdir / "origin", workdir / "base", workdir / "wal",
                                                 workdir / "restored")
    origin_dir.mkdir()
    restored_dir.mkdir()
    origin = EmbeddedPostgres(origin_dir, archive=archive)
    origin.start()
    restored = None
    try:
        await migrations.upgrade(origin.url, SERVICE, migrations.locations())
        pool = await create_pool(origin.url, SERVICE)
        store = EventStore(pool)
        before = await write(store, "before-backup", 5)
        assert await store.seal() == 5
        base_backup(origin.url, backup, origin.bin)
        before += await write(store, "after-backup", 4)  # only in the archive, not in the base backup
        target = await pool.fetchval("SELECT clock_timestamp()")
        after = await write(store, "after-target", 3)
        await store.seal()
        await pool.close()
        await archive_current_wal(origin.url)  # what came after the target is archived too
        assert len(await stored(origin.url)) == 12

        with pytest.raises(BackupError, match="older base backup"):
            prepare_restore(backup, archive, restored_dir / "pgdata", consistent_after(backup) - timedelta(seconds=1))
        prepare_restore(backup, archive, restored_dir / "pgdata", target, owner=origin.system_user)
        restored = EmbeddedPostgres(restored_dir)
        restored.start()
        await wait_recovered(restored.url)

        assert await stored(restored.url) == before
        assert not set(after) & set(await stored(restored.url))
        verified = subprocess.run([sys.executable, "-m", "yishi.cli", "verify", SERVICE], capture_output=True,
                                  text=True, timeout=120, env={**os.environ, "YISHI_DATABASE_URL": restored.url})
        assert verified.returncode == 0, verified.stderr
        assert "checked 9 events, 5 sealed" in verified.stderr and "history intact" in verified.stderr
        # The restored database takes writes (it was promoted at the target).
        pool = await create_pool(restored.url, SERVICE)
        try:
            await write(EventStore(pool), "after-restore", 1)
        finally:
            await pool.close()
    finally:
        origin.stop()
        if restored is not None:
            restored.stop()



def yishi(*args: str, url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"YISHI_DATABASE_URL": url} if url else {})}
    return subprocess.run([sys.executable, "-m", "yishi.cli", *args], capture_output=True, text=True, timeout=180,
                          env=env)


async def test_yishi_backup_and_restore_commands(workdir):
    archive = workdir / "wal"
    (workdir / "origin").mkdir()
    origin = EmbeddedPostgres(workdir / "origin", archive=archive)
    origin.start()
    try:
        await migrations.upgrade(origin.url, SERVICE, migrations.locations())
        pool = await create_pool(origin.url, SERVICE)
        store = EventStore(pool)
        await write(store, "before-backup", 2)
        taken = yishi("backup", str(workdir / "base"), url=origin.url)
        assert taken.returncode == 0, taken.stderr
        await write(store, "after-backup", 3)
        target = await pool.fetchval("SELECT clock_timestamp()")
        await write(store, "after-target", 4)
        await pool.close()
        await archive_current_wal(origin.url)
    finally:
        origin.stop()

    restored = yishi("restore", str(workdir / "base"), "--wal-archive", str(archive), "--to", target.isoformat(),
                     "--into", str(workdir / "restored"), "--no-serve")
    assert restored.returncode == 0, restored.stderr
    assert f"{SERVICE}: checked 5 events, 0 sealed: history intact" in restored.stderr

    again = yishi("restore", str(workdir / "base"), "--wal-archive", str(archive), "--to", target.isoformat(),
                  "--into", str(workdir / "restored"), "--no-serve")
    assert again.returncode == 1 and "is not empty" in again.stderr
