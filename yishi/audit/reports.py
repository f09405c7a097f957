"""Reports from the audit view: everything that happened to a resolution, a proposal, a
council or in a period, as a rich table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from rich.table import Table

from yishi.audit.views import AuditView, Entry

COLUMNS = ("at", "district", "service", "what", "actor", "role", "proposal_id", "vote_id", "resolution_id",
           "task_id", "detail", "event", "event_id")


def select(view: AuditView, *, proposal: str | None = None, resolution: str | None = None,
           council: str | None = None, since: datetime | None = None, until: datetime | None = None) -> list[Entry]:
    """Entries about a proposal (its deliberation, votes, resolutions and their delivery),
    a resolution (with the proposal it came from), a council (all its proposals), within
    ``since <= at < until``; in time order, then in the order replayed (log order from a
    store). With no subject, every entry of the period."""
    proposals: set[str] = set()
    if proposal:
        proposals.add(proposal)
    if resolution and resolution in view.resolution_proposal:
        proposals.add(view.resolution_proposal[resolution])
    if council:
        proposals |= {p for p, c in view.proposal_council.items() if c == council}
    votes = {v for v, p in view.vote_proposal.items() if p in proposals}
    resolutions = {r for r, p in view.resolution_proposal.items() if p in proposals} | ({resolution} - {None})
    scoped = bool(proposal or resolution or council)

    def about(e: Entry) -> bool:
        return (not scoped or e.proposal_id in proposals or e.vote_id in votes or e.resolution_id in resolutions
                or (council is not None and e.council_id == council))

    def within(e: Entry) -> bool:
        if since is None and until is None:
            return True
        at = datetime.fromisoformat(e.at)
        return (since is None or at >= since) and (until is None or at < until)

    return sorted((e for e in view.entries if about(e) and within(e)), key=lambda e: datetime.fromisoformat(e.at))


def table(entries: list[Entry], title: str) -> Table:
    """A rich table of who did what, when."""
    t = Table(title=title)
    for column in ("at", "what", "actor", "role", "proposal", "vote", "resolution", "task", "detail"):
        t.add_column(column, overflow="fold")
    for e in entries:
        t.add_row(e.at, e.what, e.actor, e.role, e.proposal_id or "", e.vote_id or "", e.resolution_id or "",
                  e.task_id or "", e.detail)
    return t


def to_json(entries: list[Entry]) -> str:
    """The entries as a JSON array of objects (every column)."""
    return json.dumps([{c: getattr(e, c) for c in COLUMNS} for e in entries], ensure_ascii=False, indent=1)


def to_csv(entries: list[Entry]) -> str:
    """The entries as CSV with a header row (every column)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows([getattr(e, c) or "" for c in COLUMNS] for e in entries)
    return out.getvalue()
