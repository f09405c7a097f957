"""The portal's view-models: pure functions folding the public facts of the read model
(:mod:`services.portal.projections`) into what each page shows. No I/O, no clock (``now``
comes in), no language: visible words come from the templates' catalogue
(:mod:`services.portal.messages`); here are only keys, figures, dates and ids.

The facts are folded by their ``occurred_at``, never by their arrival, so the pages are
the same whichever order Kafka delivered the three services' topics in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Fact = dict[str, Any]

#: Roles whose actors are residents or their representatives: masked unless the district
#: shows names. Staff, organisations and the platform are shown as they are.
PERSONAL_ROLES = frozenset({"resident", "council_member", "expert", "supervisor", "chair"})


@dataclass(frozen=True)
class Person:
    """Who acted, as a page shows them: a role (a catalogue key) and an id, masked or not."""

    role: str
    name: str


def mask(identifier: str) -> str:
    """An id with its middle hidden (``resident-wang`` → ``r***g``), as residents' names are
    masked on notice boards: enough to tell two apart in one record, not to find them."""
    if len(identifier) <= 2:
        return identifier[:1] + "*"
    return f"{identifier[0]}***{identifier[-1]}"


def person(actor_id: str, role: str, show_names: bool) -> Person:
    """How a page names the actor ``actor_id`` acting as ``role``."""
    if role in PERSONAL_ROLES and not show_names:
        return Person(role, mask(actor_id))
    if role == "system":
        return Person(role, "")
    return Person(role, actor_id)


# -- tasks and resolutions -------------------------------------------------------


@dataclass
class TaskView:
    """One task of a resolution: who delivers it, by when, how far, whether it is stuck."""

    task_id: str
    implementer: str
    implementer_kind: str
    due_at: datetime | None
    percent: int = 0
    completed_at: datetime | None = None
    moved_at: datetime | None = None
    stalled_at: datetime | None = None
    escalated_at: datetime | None = None
    escalated_to: str | None = None

    @property
    def stalled(self) -> bool:
        """Stalled since its last news (a report or completion clears it)."""
        return self.completed_at is None and _after(self.stalled_at, self.moved_at)

    @property
    def escalated(self) -> bool:
        return self.completed_at is None and _after(self.escalated_at, self.moved_at)

    @property
    def on_time(self) -> bool:
        return self.completed_at is not None and (self.due_at is None or self.completed_at <= self.due_at)


def _after(when: datetime | None, than: datetime | None) -> bool:
    return when is not None and (than is None or when > than)


@dataclass
class ResolutionView:
    """A resolution as the roadmap shows it (a row) and its page heads it."""

    resolution_id: str
    title: str
    text: str
    proposal_id: str
    council_id: str
    community_id: str | None
    registered_at: datetime
    tasks: dict[str, TaskView] = field(default_factory=dict)
    allocated_fen: int = 0
    spent_fen: int = 0
    budget_fen: int | None = None
    inspected: str | None = None
    rating: dict[str, int] | None = None
    closed: str | None = None

    @property
    def status(self) -> str:
        """registered, in_progress, completed, inspected, rated or closed_<reason>."""
        if self.closed:
            return f"closed_{self.closed}"
        if self.rating is not None:
            return "rated"
        if self.inspected is not None:
            return "inspected"
        if self.tasks and all(t.completed_at for t in self.tasks.values()):
            return "completed"
        return "in_progress" if self.tasks else "registered"

    @property
    def percent(self) -> int:
        """The mean progress of its tasks (0 without any)."""
        if not self.tasks:
            return 100 if self.closed == "delivered" else 0
        return round(sum(100 if t.completed_at else t.percent for t in self.tasks.values()) / len(self.tasks))

    @property
    def implementers(self) -> list[str]:
        return sorted({t.implementer for t in self.tasks.values()})

    @property
    def due_at(self) -> datetime | None:
        """The next deadline of an open task, else the last one."""
        open_ = [t.due_at for t in self.tasks.values() if t.due_at and not t.completed_at]
        every = [t.due_at for t in self.tasks.values() if t.due_at]
        return min(open_) if open_ else (max(every) if every else None)

    @property
    def stalled(self) -> bool:
        return any(t.stalled for t in self.tasks.values())

    @property
    def escalated(self) -> bool:
        return any(t.escalated for t in self.tasks.values())

    @property
    def on_time(self) -> bool:
        return bool(self.tasks) and all(t.on_time for t in self.tasks.values())

    @property
    def satisfaction_percent(self) -> float | None:
        """Satisfied and basically satisfied, out of every rating given."""
        if not self.rating:
            return None
        total = sum(self.rating.values())
        return round(100 * (self.rating["satisfied"] + self.rating["basically_satisfied"]) / total, 1) \
            if total else None


def moment(value: Any) -> datetime | None:
    """A time of an event body (ISO 8601 text), or of a row (already a datetime)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def resolutions(facts: Iterable[Fact]) -> dict[str, ResolutionView]:
    """Every resolution the facts register, with its tasks, money, inspection and rating."""
    found: dict[str, ResolutionView] = {}
    later: list[Fact] = []
    for f in facts:
        if f["type"] == "ResolutionRegistered":
            b = f["body"]
            found[f["resolution_id"]] = ResolutionView(
                f["resolution_id"], b["title"], b["text"], b["proposal_id"], b["council_id"], b.get("community_id"),
                f["occurred_at"], budget_fen=b.get("budget_fen"))
        else:
            later.append(f)
    for f in later:  # each already in time order; a resolution's facts after its registration
        r = found.get(f["resolution_id"]) if f["resolution_id"] else None
        if r is not None:
            _apply(r, f)
    return found


def _apply(r: ResolutionView, f: Fact) -> None:
    b, kind, at = f["body"], f["type"], f["occurred_at"]
    task = r.tasks.get(f["task_id"]) if f["task_id"] else None
    if kind == "TaskAssigned":
        r.tasks[f["task_id"]] = TaskView(f["task_id"], b["implementer"]["name"], b["implementer"]["kind"],
                                         moment(b["due_at"]), moved_at=at)
    elif task is None and kind in ("ProgressReported", "TaskStalled", "TaskEscalated", "TaskCompleted"):
        return  # its assignment is not here (a task of another resolution is never shown)
    elif kind == "ProgressReported":
        task.percent, task.moved_at = b["percent_complete"], at
    elif kind == "TaskCompleted":
        task.percent, task.completed_at, task.moved_at = 100, at, at
    elif kind == "TaskStalled":
        task.stalled_at = at
    elif kind == "TaskEscalated":
        task.escalated_at, task.escalated_to = at, b["to_level"]
    elif kind == "FundsAllocated":
        r.allocated_fen += b["amount_fen"]
    elif kind == "FundsSpent":
        r.spent_fen += b["amount_fen"]
    elif kind == "InspectionRecorded":
        r.inspected = b["finding"]
    elif kind == "SatisfactionRated":
        r.rating = {k: b[k] for k in ("satisfied", "basically_satisfied", "dissatisfied")}
    elif kind == "ResolutionClosed":
        r.closed = b["reason"]


# -- a community's roadmap -------------------------------------------------------


@dataclass
class Roadmap:
    """A community's outcome roadmap (成果运用路线图)."""

    community_id: str
    name: str | None
    rows: list[ResolutionView]
    fund_fen: int

    @property
    def allocated_fen(self) -> int:
        return sum(r.allocated_fen for r in self.rows)

    @property
    def spent_fen(self) -> int:
        return sum(r.spent_fen for r in self.rows)


def community_name(facts: Iterable[Fact], community_id: str) -> str | None:
    """The name of the community-level council serving it (else of any council there)."""
    named = [(f["body"]["level"] != "community", f["body"]["name"]) for f in facts
             if f["type"] == "CouncilFormed" and f["community_id"] == community_id]
    return min(named)[1] if named else None


def roadmap(facts: list[Fact], community_id: str) -> Roadmap | None:
    """The community's roadmap, newest resolution first; ``None`` when nothing is known
    of the community (no council, fund or resolution)."""
    if not facts:
        return None
    rows = sorted(resolutions(facts).values(), key=lambda r: (r.registered_at, r.resolution_id), reverse=True)
    fund = sum(f["body"]["amount_fen"] for f in facts
               if f["type"] == "FundEstablished" and f["community_id"] == community_id)
    return Roadmap(community_id, community_name(facts, community_id), rows, fund)


# -- one resolution's timeline ---------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One line of a timeline: what (a catalogue key), when, who, and its words or figures."""

    kind: str
    at: datetime
    who: Person
    text: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    resolution_id: str | None = None
    event_id: str = ""


#: The facts a timeline tells, from the need to the rating.
TIMELINE = ("ProposalRaised", "ProposalPublished", "MotionSeconded", "ObjectionLodged", "StatementMade",
            "VoteClosed", "ProposalDecided", "ResolutionRegistered", "TaskAssigned", "TaskAccepted",
            "ProgressReported", "TaskStalled", "TaskEscalated", "FundsAllocated", "FundsSpent", "TaskCompleted",
            "InspectionRecorded", "SatisfactionRated", "ResolutionClosed", "ProposalWithdrawn",
            "ProposalEscalated", "ProposalReturnedForReconsultation")


def step(f: Fact, show_names: bool) -> Step:
    """One fact as a timeline line."""
    b, kind = f["body"], f["type"]
    who = person(f["actor_id"], f["actor_role"], show_names)
    text = b.get("title") if kind in ("ProposalRaised", "ResolutionRegistered") else (
        b.get("grounds") or b.get("summary") or b.get("notes") or b.get("reason") or b.get("description")
        or b.get("purpose") or (b.get("text") if kind == "StatementMade" else None))
    figures: dict[str, Any] = {}
    if kind == "StatementMade":
        figures = {"step": b["step"], "speaker_role": b["speaker_role"]}
    elif kind == "ProgressReported":
        figures = {"percent": b["percent_complete"]}
    elif kind == "VoteClosed":
        figures = {"outcome": b["outcome"], "turnout": b["turnout_percent"], **b["tally"]}
    elif kind == "ProposalDecided":
        figures = {"decision": b["decision"]}
    elif kind in ("FundsAllocated", "FundsSpent"):
        figures = {"amount_fen": b["amount_fen"]}
    elif kind == "TaskAssigned":
        figures = {"implementer": b["implementer"]["name"], "due_at": moment(b["due_at"])}
    elif kind == "InspectionRecorded":
        figures = {"finding": b["finding"]}
    elif kind == "SatisfactionRated":
        figures = {k: b[k] for k in ("satisfied", "basically_satisfied", "dissatisfied")}
    elif kind == "TaskEscalated":
        figures = {"level": b["to_level"]}
    elif kind == "ProposalPublished":
        figures = {"notice_ends_at": moment(b["notice_ends_at"])}
    return Step(kind, f["occurred_at"], who, text, figures, f["resolution_id"], f["event_id"])


def timeline(facts: Iterable[Fact], show_names: bool) -> list[Step]:
    """The facts a timeline tells, in time order."""
    return [step(f, show_names) for f in facts if f["type"] in TIMELINE]


# -- proposals in their notice period --------------------------------------------


@dataclass
class Notice:
    """A proposal in its notice period (公示) with its deliberation record so far."""

    proposal_id: str
    title: str
    summary: str
    council_id: str
    form: str
    notice_ends_at: datetime
    session_at: datetime | None
    record: list[Step]

    @property
    def seconds(self) -> int:
        return sum(1 for s in self.record if s.kind == "MotionSeconded")

    @property
    def objections(self) -> int:
        return sum(1 for s in self.record if s.kind == "ObjectionLodged")


_ENDED = ("ProposalDecided", "ProposalWithdrawn", "ProposalEscalated")


def notices(facts: list[Fact], now: datetime, show_names: bool) -> list[Notice]:
    """Proposals published whose notice has not ended (nor been decided, withdrawn or
    escalated), soonest ending first."""
    by_proposal: dict[str, list[Fact]] = {}
    for f in facts:
        by_proposal.setdefault(f["proposal_id"], []).append(f)
    found = []
    for proposal_id, mine in by_proposal.items():
        raised = next((f for f in mine if f["type"] == "ProposalRaised"), None)
        published = [f for f in mine if f["type"] == "ProposalPublished"]
        if raised is None or not published or any(f["type"] in _ENDED for f in mine):
            continue
        last = published[-1]["body"]
        ends = moment(last["notice_ends_at"])
        if ends <= now:
            continue
        found.append(Notice(proposal_id, raised["body"]["title"], raised["body"]["summary"],
                            raised["council_id"], last["form"], ends, moment(last.get("session_at")),
                            timeline(mine, show_names)))
    return sorted(found, key=lambda n: (n.notice_ends_at, n.proposal_id))


# -- votes -----------------------------------------------------------------------


@dataclass
class VoteResult:
    """A vote as the public sees it: its question and rules, and once closed its counts.
    Never who chose what: the read model holds no ballot."""

    vote_id: str
    question: str
    council_id: str
    matter_kind: str
    matter_id: str
    secrecy: str
    closes_at: datetime
    electorate_size: int
    quorum_percent: float | None
    closed: dict[str, Any] | None = None


def votes(facts: Iterable[Fact]) -> list[VoteResult]:
    """Every vote opened, newest closing first, with its result once closed."""
    found: dict[str, VoteResult] = {}
    closings = []
    for f in facts:
        b = f["body"]
        if f["type"] == "VoteOpened":
            terms = b["terms"]
            found[f["vote_id"]] = VoteResult(
                f["vote_id"], terms["question"], b["council_id"], b["matter"]["kind"], b["matter"]["id"],
                terms.get("secrecy", "open"), moment(terms["closes_at"]), terms["electorate"]["size"],
                terms.get("quorum_percent"))
        elif f["type"] == "VoteClosed":
            closings.append(f)
    for f in closings:
        vote = found.get(f["vote_id"])
        if vote is not None:
            b = f["body"]
            vote.closed = {"outcome": b["outcome"], "turnout_percent": b["turnout_percent"],
                           "quorum_met": b["quorum_met"], "electorate_size": b["electorate_size"],
                           "ballots": sum(b["tally"][k] for k in ("in_favour", "against", "abstain")),
                           **{k: b["tally"][k] for k in ("in_favour", "against", "abstain")}}
    return sorted(found.values(), key=lambda v: (v.closes_at, v.vote_id), reverse=True)
