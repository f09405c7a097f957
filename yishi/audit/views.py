"""The cross-service audit view: who raised, seconded, objected, spoke, voted, decided,
delivered, inspected and rated what, and when, built from public events alone.

Every public event becomes one :class:`Entry` (the view is complete: nothing is left
out because no report asks for it yet). Links between services (a vote to its
proposal, a resolution to its proposal, a proposal to its council) are kept
as maps and resolved when a report asks, so the view does not depend on the order in
which events of different topics and partitions arrive: the stores and Kafka build the
same view.

Secret votes: ``BallotAccepted`` carries no choice for them, so the view records that
the voter voted and the choice only for open votes; choices of secret votes appear only
as the counts in ``VoteClosed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

Body = dict[str, Any]
_new_tuple = tuple.__new__


class Entry(NamedTuple):
    """One thing someone did, as the audit view records it."""

    at: str  # occurred_at, ISO 8601 as published
    district: str
    service: str
    what: str  # a verb: raised, seconded, objected, spoke, voted, decided, delivered, …
    actor: str
    role: str
    event: str  # the public event type
    event_id: str
    proposal_id: str | None
    council_id: str | None
    vote_id: str | None
    resolution_id: str | None
    task_id: str | None
    detail: str


def _tally(body: Body) -> str:
    t = body["tally"]
    return (f"{body['outcome']}: {t['in_favour']} in favour, {t['against']} against, {t['abstain']} abstain, "
            f"turnout {body['turnout_percent']}%")


def _ratings(body: Body) -> str:
    return (f"{body['year']}: satisfied {body['satisfied']}, basically satisfied "
            f"{body['basically_satisfied']}, dissatisfied {body['dissatisfied']}")


def _implementer(body: Body) -> str:
    who = body["implementer"]
    return f"{who['name']} ({who['kind']} {who['id']})"


# Public type -> (verb, detail). Types not listed are recorded under their own name.
VERBS: dict[str, tuple[str, Callable[[Body], str] | None]] = {
    "CouncilFormed": ("formed council", lambda b: b["name"]),
    "MemberSeated": ("seated", lambda b: f"{b['member_id']} in {b['seat_id']}"),
    "MemberUnseated": ("unseated", lambda b: f"{b['member_id']} from {b['seat_id']}"),
    "ProposalRaised": ("raised", lambda b: b["title"]),
    "ProposalPublished": ("published", lambda b: f"notice until {b['notice_ends_at']}"),
    "MotionSeconded": ("seconded", None),
    "ObjectionLodged": ("objected", lambda b: b["grounds"]),
    "StatementMade": ("spoke", lambda b: f"{b['step']} as {b['speaker_role']}"),
    "VoteRequested": ("requested vote", lambda b: b["terms"]["question"]),
    "VoteOpened": ("opened vote", lambda b: f"{b['terms']['secrecy']} vote: {b['terms']['question']}"),
    "BallotAccepted": ("voted", lambda b: b.get("choice") or "secret"),
    "VoteClosed": ("closed vote", _tally),
    "ProposalEscalated": ("escalated", lambda b: f"to {b['to_council_id']}: {b['reason']}"),
    "ProposalWithdrawn": ("withdrew", lambda b: b["reason"]),
    "ProposalReturnedForReconsultation": ("returned for reconsultation", lambda b: b["reason"]),
    "ProposalDecided": ("decided", lambda b: b["decision"]),
    "ResolutionRegistered": ("registered resolution", lambda b: b["title"]),
    "TaskAssigned": ("assigned task", _implementer),
    "TaskAccepted": ("accepted task", None),
    "ProgressReported": ("reported progress", lambda b: f"{b['percent_complete']}%"),
    "FundsAllocated": ("allocated funds", lambda b: f"{b['amount_fen']} fen"),
    "FundsSpent": ("spent", lambda b: f"{b['amount_fen']} fen to {b['payee']}"),
    "TaskStalled": ("stalled", None),
    "ReminderDue": ("reminded", lambda b: f"{b['recipient_id']} ({b['kind']}, step {b.get('escalation_step') or 1})"),
    "TaskEscalated": ("escalated task", lambda b: b["reason"]),
    "TaskCompleted": ("delivered", lambda b: b["summary"]),
    "InspectionRecorded": ("inspected", lambda b: b["finding"]),
    "SatisfactionRated": ("rated", _ratings),
    "ResolutionClosed": ("closed resolution", lambda b: b["reason"]),
    "ReconsultationRequested": ("requested reconsultation", lambda b: b["problem"]),
    "NotificationDelivered": ("notified", lambda b: f"{b['recipient_id']} by {b['channel']}"),
    "NotificationFailed": ("notification failed", lambda b: f"{b['recipient_id']} by {b['channel']}: {b['reason']}"
                           if b.get("channel") else f"{b['recipient_id']}: {b['reason']}"),
}


class AuditView:
    """Entries plus the links reports follow; fed by :meth:`apply`, one public event at a time."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.vote_proposal: dict[str, str] = {}  # vote id -> proposal id
        self.resolution_proposal: dict[str, str] = {}  # resolution id -> proposal id
        self.proposal_council: dict[str, str] = {}  # proposal id -> council id

    def apply(self, service: str, type_: str, body: Body, event_id: str) -> None:
        """Record one public event (its JSON body, newest schema version)."""
        verb, detail = VERBS.get(type_, (type_, None))
        actor = body["actor"]
        proposal_id = body.get("proposal_id")
        vote_id = body.get("vote_id")
        resolution_id = body.get("resolution_id")
        council_id = body.get("council_id") or body.get("from_council_id")
        matter = body.get("matter")
        if matter is not None and matter.get("kind") == "proposal":
            proposal_id = matter["id"]
            self.vote_proposal[vote_id] = proposal_id
        elif type_ == "ResolutionRegistered":
            self.resolution_proposal[resolution_id] = proposal_id
        elif type_ == "ProposalRaised":
            self.proposal_council[proposal_id] = council_id
        # tuple.__new__ directly: Entry(...) would add a Python-level call per event.
        self.entries.append(_new_tuple(Entry, (
            body["occurred_at"], body["district"], service, verb, actor["id"], actor["role"], type_, event_id,
            proposal_id, council_id, vote_id, resolution_id, body.get("task_id"),
            detail(body) if detail is not None else "",
        )))

    def snapshot(self) -> dict[str, Any]:
        """The whole view in a canonical order, as JSON-ready data (what two sources must agree on)."""
        return {
            "entries": [e._asdict() for e in sorted(self.entries, key=lambda e: (e.at, e.event_id))],
            "vote_proposal": dict(sorted(self.vote_proposal.items())),
            "resolution_proposal": dict(sorted(self.resolution_proposal.items())),
            "proposal_council": dict(sorted(self.proposal_council.items())),
        }
