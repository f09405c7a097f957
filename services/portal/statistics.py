"""The district's figures and its communities, counted from all its public facts (pure,
like :mod:`services.portal.views`, whose resolutions they count)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.portal.views import Fact, community_name, resolutions


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
    # The district's own definitions (issue 20), the same as oversight's district statistics
    # and yearly review: a session is held once its minutes are published; participants
    # are attendance person-times (in person or by proxy): one AttendanceRecorded each, as
    # a session records a person once (the facts are kept by event id, so a redelivery is
    # one; who attended is withheld from the copy).
    sessions = len({f["body"]["session_id"] for f in facts if f["type"] == "SessionMinutesPublished"})
    person_times = sum(1 for f in facts if f["type"] == "AttendanceRecorded")
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
