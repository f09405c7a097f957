"""The district's figures and its communities, counted from all its public facts (pure,
like :mod:`services.portal.views`, whose resolutions they count)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.portal.views import Fact, community_name, moment, resolutions


@dataclass
class CommunityFigures:
    """One community's row of the district statistics."""

    community_id: str
    name: str | None
    proposals: int = 0
    resolutions: int = 0
    completed: int = 0
    on_time: int = 0
    fund_fen: int = 0
    spent_fen: int = 0
    ratings: dict[str, int] = field(default_factory=lambda: {"satisfied": 0, "basically_satisfied": 0,
                                                             "dissatisfied": 0})

    @property
    def satisfaction_percent(self) -> float | None:
        total = sum(self.ratings.values())
        return round(100 * (self.ratings["satisfied"] + self.ratings["basically_satisfied"]) / total, 1) \
            if total else None


@dataclass
class Statistics:
    """The district's figures: sessions, person-times, proposals, resolutions and per community."""

    sessions: int
    person_times: int
    proposals: int
    resolutions: int
    on_time: int
    communities: list[CommunityFigures]


#: The acts of residents and their representatives counted as person-times (人次), besides
#: ballots: attending a session, raising, seconding, objecting, speaking.
_PARTICIPATION = ("AttendanceRecorded", "ProposalRaised", "MotionSeconded", "ObjectionLodged", "StatementMade")


def statistics(facts: list[Fact]) -> Statistics:
    """Count the district's figures from all its facts."""
    council_community = {f["council_id"]: f["community_id"] for f in facts if f["type"] == "CouncilFormed"}
    communities: dict[str, CommunityFigures] = {}

    def of(community_id: str | None) -> CommunityFigures | None:
        if community_id is None:
            return None
        if community_id not in communities:
            communities[community_id] = CommunityFigures(community_id, community_name(facts, community_id))
        return communities[community_id]

    for community_id in set(council_community.values()):
        of(community_id)
    proposals = 0
    for f in facts:
        if f["type"] == "ProposalRaised":
            proposals += 1
            if (c := of(council_community.get(f["council_id"]))) is not None:
                c.proposals += 1
        elif f["type"] == "FundEstablished":
            of(f["community_id"]).fund_fen += f["body"]["amount_fen"]
    found = resolutions(facts)
    for r in found.values():
        c = of(r.community_id or council_community.get(r.council_id))
        if c is None:
            continue
        c.resolutions += 1
        c.spent_fen += r.spent_fen
        if r.tasks and all(t.completed_at for t in r.tasks.values()):
            c.completed += 1
            c.on_time += r.on_time
        if r.rating:
            for k, n in r.rating.items():
                c.ratings[k] += n
    # Sessions held: those closed, and for councils that keep no session calendar, the
    # session times their proposals were published for.
    held = {f["body"]["session_id"]: f["council_id"] for f in facts if f["type"] == "SessionClosed"}
    calendars = set(held.values())
    sessions = len(held) + len({(f["council_id"], moment(f["body"]["session_at"])) for f in facts
                                if f["type"] == "ProposalPublished" and f["body"].get("session_at")
                                and f["council_id"] not in calendars})
    ballots = sum(sum(f["body"]["tally"][k] for k in ("in_favour", "against", "abstain"))
                  for f in facts if f["type"] == "VoteClosed")
    person_times = ballots + sum(1 for f in facts if f["type"] in _PARTICIPATION)
    return Statistics(sessions, person_times, proposals, len(found), sum(r.on_time for r in found.values()),
                      sorted(communities.values(), key=lambda c: c.community_id))


@dataclass(frozen=True)
class Community:
    """A community the district index lists."""

    community_id: str
    name: str | None


def communities(facts: Iterable[Fact]) -> list[Community]:
    """The communities the facts name: served by a council, holding a fund or a resolution."""
    facts = list(facts)
    ids = {f["community_id"] for f in facts if f["community_id"]}
    return sorted((Community(c, community_name(facts, c)) for c in ids), key=lambda c: c.community_id)
