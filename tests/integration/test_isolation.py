"""District isolation (BOLA): nothing of district A can be read or changed with district
B's credentials, and A's ids are answered in B as not found.

Each service is started once, serving two fresh districts A and B, and A's records are
created through A-credentialed commands (the *seed*). Routes are enumerated from the
app's OpenAPI document, so a route added later is exercised at once, or makes
:func:`test_every_route_is_covered` fail until the tables below say how to fill it:

1. every query and every command on A's path with B's credentials: 404, nothing recorded;
2. every query on B's path with A's ids: 404 for one record, nothing of A in lists and
   summaries, and the same answer as for ids that exist nowhere;
3. commands on B's path that name A's records: ``not_found`` (as for unknown ids);
   commands that create B's own record under an id A also uses: accepted, A untouched;
4. B's credentials on B's path with a body naming A: 404 ``wrong_district``, nothing recorded;
5. over Kafka, a command carrying B's token, on A's command topic (or on B's naming A):
   a ``CommandRejected`` reply with ``wrong_district`` and no change.

"Nothing recorded / A untouched" is checked on the service's event store (no new event
in district A, no new version of any of A's streams) and on every query about A's
records as A's auditor sees them (:class:`StateOfA`). The proposals service's one route
without a district, the read-model rebuild, has its own test.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from contracts import examples, registry
from contracts.common import Actor
from contracts.envelope import Envelope
from contracts.permissions import PERMISSIONS
from contracts.proposals import CouncilFormed
from contracts.registry import Kind
from services.notify.main import spec as notify_spec
from services.notify.settings import NotifySettings
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.auth import bearer, token_for
from tests.support.kafka import read_topic
from tests.support.service import Running, eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics, new_producer
from yishi.names import SERVICES, commands_topic, events_topic, replies_topic, source

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
Ids = dict[str, str]

SPECS: dict[str, Callable[[], Any]] = {
    "proposals": proposals_spec,
    "voting": voting_spec,
    "oversight": oversight_spec,
    # Webhooks on, so subscriptions and deliveries can exist; the delivery worker sleeps,
    # so A's deliveries stay as they were created while the tests compare them.
    "notify": lambda: notify_spec(NotifySettings(webhook_secret="isolation-test", worker_interval_s=3600)),
}

# -- who acts -------------------------------------------------------------------

WORKER = {"id": "worker-1", "role": "community_worker"}
OFFICIAL = {"id": "official-1", "role": "official"}
RESIDENT = {"id": "resident-1", "role": "resident"}
NEIGHBOUR = {"id": "resident-2", "role": "resident"}
IMPLEMENTER = {"id": "impl-1", "role": "implementer"}
SUPERVISOR = {"id": "sup-1", "role": "supervisor"}
VOTER, OTHER_VOTER = {"id": "voter-1", "role": "resident"}, {"id": "voter-2", "role": "resident"}


def member(n: int) -> dict:
    """A council member acting from seat ``seat-{n}`` (the token lists the seat)."""
    return {"id": f"m{n}", "role": "council_member", "seat_id": f"seat-{n}"}


def at(days: float) -> str:
    """``days`` after the services' (manual) clock start, as JSON."""
    return (T0 + timedelta(days=days)).isoformat()


# -- the route table: how to ask each query about A's records -----------------------


@dataclass(frozen=True)
class Read:
    """How a query route is filled with A's ids: ``params`` maps each path or query
    parameter to the key of :attr:`World.ids` that fills it. A ``one`` route answers one
    record (another district's id: 404); a ``many`` route answers a list or a summary
    (in another district: 200 with nothing of A's records)."""

    many: bool
    params: dict[str, str]


def one(*names: str, **renamed: str) -> Read:
    """A one-record route; each name fills the parameter of the same name (or rename it)."""
    return Read(False, {**{n: n for n in names}, **renamed})


def many(*names: str, **renamed: str) -> Read:
    """A list or summary route, filled like :func:`one`."""
    return Read(True, {**{n: n for n in names}, **renamed})


READS: dict[str, dict[str, Read]] = {
    "proposals": {
        "/{district}/councils": many(),
        "/{district}/councils/{council_id}": one("council_id"),
        "/{district}/councils/{council_id}/members": one("council_id"),
        "/{district}/catalogue": many("community_id"),
        "/{district}/nominations/{nomination_id}": one("nomination_id"),
        "/{district}/slates/{slate_id}": one("slate_id"),
        "/{district}/proposals": many("council_id"),
        "/{district}/proposals/{proposal_id}": one("proposal_id"),
        "/{district}/councils/{council_id}/calendar": one("council_id"),
        "/{district}/sessions": many("council_id"),
        "/{district}/sessions/{session_id}": one("session_id"),
        "/{district}/clock": many(),
    },
    "voting": {
        "/{district}/votes": many(),
        "/{district}/votes/{vote_id}": one("vote_id"),
        "/{district}/votes/{vote_id}/tally": one("vote_id"),
        "/{district}/votes/{vote_id}/receipts/{ballot_id}": one("vote_id", "ballot_id"),
        "/{district}/votes/{vote_id}/board": one(vote_id="secret_vote_id"),
        "/{district}/clock": many(),
    },
    "oversight": {
        "/{district}/resolutions": many("community_id"),
        "/{district}/tasks": many("resolution_id"),
        "/{district}/resolutions/{resolution_id}": one("resolution_id"),
        "/{district}/resolutions/{resolution_id}/audit": one("resolution_id"),
        "/{district}/tasks/{task_id}": one("task_id"),
        "/{district}/funds/{fund_id}": one("fund_id"),
        "/{district}/communities/{community_id}/roadmap": many("community_id"),
        "/{district}/communities/{community_id}/reviews/{year}": many("community_id", "year"),
        "/{district}/statistics": many(),
        "/{district}/clock": many(),
    },
    "notify": {
        "/{district}/subscriptions/{subscription_id}": one("subscription_id"),
        "/{district}/subscriptions": many("subscriber_id"),
        "/{district}/default-contacts/{party_id}": one("party_id"),
        "/{district}/deliveries/{delivery_id}": one("delivery_id"),
        "/{district}/deliveries": many(recipient_id="subscriber_id"),
        "/{district}/clock": many(),
    },
}
RECORDLESS = frozenset({"/{district}/clock"})
"""District routes that show no record (the platform's time): refused to other districts'
credentials like every route, with nothing of A's to find on B's path."""
OPS = frozenset({"/healthz", "/readyz", "/healthz/kafka"})
"""Unauthenticated probes: no district, no data."""
LOG = frozenset({"/log/checkpoint", "/log/proof/inclusion", "/log/proof/consistency"})
"""The Merkle log's public proofs (yishi/tlog/http.py): no district, hashes only, the same
for everyone by design; tests/integration/audit/test_merkle_log.py covers them."""
WITHOUT_DISTRICT: dict[str, frozenset[str]] = {"proposals": frozenset({"/admin/read-models/rebuild"})}
"""Routes with no district in their path, each covered by a test of its own."""
STAFF_ONLY: dict[str, dict[str, Read]] = {
    "proposals": {"/{district}/sessions/{session_id}/check-in-code": one("session_id")}}
"""District routes no auditor reads, even in its own district (a session's check-in code:
its council's workers and chairs only, refused to other councils' staff in
tests/integration/proposals/test_sessions.py): here only B's credentials on A's path."""
COMMANDS = "/{district}/commands/"

# -- the command table: commands in B that name A's records --------------------------


@dataclass(frozen=True)
class Case:
    """A command sent by B's people on B's path that names A's records: ``body(ids)``
    (without the district). B must answer ``not_found``, as for ids that exist nowhere;
    or, when ``accepted``, create B's own record under an id A also uses. A's records
    never change."""

    label: str
    type: str
    body: Callable[[Ids], dict]
    accepted: bool = False


def vote_terms(question: str, roll: list[str]) -> dict:
    """Open, simple-majority terms for a council vote of ``roll``, closing in two days."""
    return {"question": question, "electorate": {"kind": "council_members", "scope_id": "council-v",
                                                 "size": len(roll), "roll": roll},
            "method": "online", "majority": "simple", "quorum_percent": 50, "secrecy": "open",
            "closes_at": at(2)}


def open_vote(vote_id: str, question: str) -> dict:
    """An ``OpenVote`` body (by the worker) that VOTER and OTHER_VOTER may vote in."""
    return {"actor": WORKER, "vote_id": vote_id, "council_id": "council-v",
            "matter": {"kind": "question", "id": f"q-{vote_id}"},
            "terms": vote_terms(question, [VOTER["id"], OTHER_VOTER["id"]])}


def council(council_id: str, name: str, area_id: str, **extra) -> dict:
    """A ``FormCouncil`` body for a community council with four seats (seat-4 for a resident
    representative, filled by nomination)."""
    seats = [{"seat_id": f"seat-{n}", "kind": kind} for n, kind in
             [(1, "expert"), (2, "local_unit"), (3, "social_organisation"), (4, "resident_representative")]]
    return {"actor": WORKER, "council_id": council_id, "name": name, "level": "community", "area_id": area_id,
            "seats": seats, "rules": {"seconds_required": 1, "notice_period_days": 7}, **extra}


def subscription(subscription_id: str, subscriber_id: str, address: str) -> dict:
    """A ``Subscribe`` body (by the worker) for a person's webhook."""
    return {"actor": WORKER, "subscription_id": subscription_id, "subscriber": {"kind": "person", "id": subscriber_id},
            "channel": "webhook", "address": address, "event_types": ["ProposalPublished"]}


def notice(notification_id: str, recipient_id: str, title: str) -> dict:
    """A ``RequestNotification`` body (by the worker) to one person's webhooks."""
    return {"actor": WORKER, "notification_id": notification_id, "recipients": [{"kind": "person", "id": recipient_id}],
            "channels": ["webhook"], "template": "proposal.published",
            "params": {"title": title, "proposal_id": "p-1", "notice_ends_at": at(7)}}


EVIDENCE = [{"uri": "https://files.example/b.jpg", "media_type": "image/jpeg", "sha256": "0" * 64}]
B_TEXT = "B's own text"

CASES: dict[str, list[Case]] = {
    "proposals": [
        Case("seat in A's council", "SeatMember",
             lambda i: {"actor": WORKER, "council_id": i["council_id"], "seat_id": "seat-3", "member_id": "m3"}),
        Case("unseat from A's council", "UnseatMember",
             lambda i: {"actor": WORKER, "council_id": i["council_id"], "seat_id": "seat-1", "member_id": "m1",
                        "reason": B_TEXT}),
        Case("nominate to A's council", "NominateRepresentative",
             lambda i: {"actor": WORKER, "nomination_id": f"{i['nomination_id']}-b", "council_id": i["council_id"],
                        "seat_id": "seat-4", "nominee_id": "resident-9", "route": "self_nomination"}),
        Case("nominate a slate to A's council", "NominateSlate",
             lambda i: {"actor": WORKER, "slate_id": f"{i['slate_id']}-b", "council_id": i["council_id"],
                        "nominees": [{"seat_id": "seat-4", "nominee_id": "resident-9", "route": "recommendation"}],
                        "notice_ends_at": at(7)}),
        Case("request a vote on A's slate", "RequestVote",
             lambda i: {"actor": WORKER, "vote_id": "vote-b3", "council_id": i["council_id"],
                        "matter": {"kind": "slate", "id": i["slate_id"]},
                        "terms": vote_terms(B_TEXT, ["resident-1", "resident-2"])}),
        Case("publicise A's nomination", "PubliciseNomination",
             lambda i: {"actor": WORKER, "nomination_id": i["nomination_id"], "notice_ends_at": at(7)}),
        Case("add an item to A's category", "AddCatalogueItem",
             lambda i: {"actor": WORKER, "item_id": f"{i['item_id']}-b", "category_id": i["category_id"],
                        "community_id": i["community_id"], "title": B_TEXT, "description": B_TEXT}),
        Case("retire A's item", "RetireCatalogueItem",
             lambda i: {"actor": WORKER, "item_id": i["item_id"], "reason": B_TEXT}),
        Case("raise before A's council", "RaiseProposal",
             lambda i: {"actor": RESIDENT, "proposal_id": f"{i['proposal_id']}-b", "council_id": i["council_id"],
                        "catalogue_item_id": i["item_id"], "title": B_TEXT, "summary": B_TEXT}),
        Case("publish A's proposal", "PublishProposal",
             lambda i: {"actor": WORKER, "proposal_id": i["proposal_id"], "form": "council", "notice_ends_at": at(8)}),
        Case("second A's proposal", "SecondMotion", lambda i: {"actor": member(2), "proposal_id": i["proposal_id"]}),
        Case("object to A's proposal", "LodgeObjection",
             lambda i: {"actor": NEIGHBOUR, "proposal_id": i["proposal_id"], "objection_id": "obj-b",
                        "grounds": B_TEXT}),
        Case("speak on A's proposal", "MakeStatement",
             lambda i: {"actor": RESIDENT, "proposal_id": i["proposal_id"], "statement_id": "st-b", "step": "motion",
                        "speaker_role": "proposer", "text": B_TEXT}),
        Case("request a vote on A's proposal", "RequestVote",
             lambda i: {"actor": WORKER, "vote_id": "vote-b", "council_id": i["council_id"],
                        "matter": {"kind": "proposal", "id": i["proposal_id"]},
                        "terms": vote_terms(B_TEXT, ["m1", "m2"])}),
        Case("request a vote on A's nomination", "RequestVote",
             lambda i: {"actor": WORKER, "vote_id": "vote-b2", "council_id": i["council_id"],
                        "matter": {"kind": "nomination", "id": i["nomination_id"]},
                        "terms": vote_terms(B_TEXT, ["resident-1", "resident-2"])}),
        Case("escalate A's proposal", "EscalateProposal",
             lambda i: {"actor": WORKER, "proposal_id": i["proposal_id"], "reason": B_TEXT}),
        Case("withdraw A's proposal", "WithdrawProposal",
             lambda i: {"actor": RESIDENT, "proposal_id": i["proposal_id"], "reason": B_TEXT}),
        Case("return A's proposal", "ReturnProposalForReconsultation",
             lambda i: {"actor": WORKER, "proposal_id": i["proposal_id"], "reason": B_TEXT}),
        Case("set the rota of A's council", "SetChairRota",
             lambda i: {"actor": WORKER, "council_id": i["council_id"], "chairs": ["b-chair"]}),
        Case("set the schedule of A's council", "SetSessionSchedule",
             lambda i: {"actor": WORKER, "council_id": i["council_id"], "form": "council", "day_of_month": 15,
                        "local_time": "19:00", "place": B_TEXT}),
        Case("schedule a session of A's council", "ScheduleSession",
             lambda i: {"actor": WORKER, "session_id": f"{i['session_id']}-b", "council_id": i["council_id"],
                        "form": "council", "starts_at": at(4), "place": B_TEXT}),
        Case("change the chair of A's session", "ChangeSessionChair",
             lambda i: {"actor": WORKER, "session_id": i["session_id"], "chair": "b-chair", "reason": B_TEXT}),
        Case("put A's proposal on A's session", "AddAgendaItem",
             lambda i: {"actor": WORKER, "session_id": i["session_id"], "proposal_id": i["proposal_id"]}),
        Case("invite to A's session", "InviteStakeholder",
             lambda i: {"actor": WORKER, "session_id": i["session_id"], "proposal_id": i["proposal_id"],
                        "person_id": "b-expert", "kind": "expert"}),
        Case("open A's session", "OpenSession", lambda i: {"actor": WORKER, "session_id": i["session_id"]}),
        Case("check in to A's session", "CheckIn",
             lambda i: {"actor": RESIDENT, "session_id": i["session_id"], "code": "ABCD12"}),
        Case("record attendance at A's session", "RecordAttendance",
             lambda i: {"actor": WORKER, "session_id": i["session_id"], "person_id": "resident-9"}),
        Case("close A's session", "CloseSession", lambda i: {"actor": WORKER, "session_id": i["session_id"]}),
        Case("publish the minutes of A's session", "PublishMinutes",
             lambda i: {"actor": WORKER, "session_id": i["session_id"], "text": B_TEXT}),
        Case("form a council under A's council", "FormCouncil",
             lambda i: council(f"{i['council_id']}-b", B_TEXT, "b-area", parent_council_id=i["council_id"])),
        Case("form a council with an id A uses", "FormCouncil",
             lambda i: council(i["council_twin"], B_TEXT, "b-area"), accepted=True),
        Case("define a category with an id A uses", "DefineCatalogueCategory",
             lambda i: {"actor": OFFICIAL, "category_id": i["category_twin"], "code": "PB", "title": B_TEXT,
                        "description": B_TEXT}, accepted=True),
    ],
    "voting": [
        Case("vote in A's vote", "CastBallot",
             lambda i: {"actor": OTHER_VOTER, "vote_id": i["vote_id"], "ballot_id": "ballot-b",
                        "choice": "against"}),
        Case("close A's vote", "CloseVote", lambda i: {"actor": WORKER, "vote_id": i["vote_id"]}),
        Case("open a vote with an id A uses", "OpenVote", lambda i: open_vote(i["vote_twin"], B_TEXT),
             accepted=True),
    ],
    "oversight": [
        Case("assign a task of A's resolution", "AssignTask",
             lambda i: {"actor": WORKER, "task_id": f"{i['task_id']}-b", "resolution_id": i["resolution_id"],
                        "implementer": {"kind": "social_organisation", "id": "org-b", "name": B_TEXT},
                        "description": B_TEXT, "acceptance_standards": [B_TEXT], "due_at": at(30)}),
        Case("accept A's task", "AcceptTask", lambda i: {"actor": IMPLEMENTER, "task_id": i["task_id"]}),
        Case("report on A's task", "ReportProgress",
             lambda i: {"actor": IMPLEMENTER, "task_id": i["task_id"], "percent_complete": 90, "summary": B_TEXT,
                        "evidence": EVIDENCE}),
        Case("complete A's task", "CompleteTask",
             lambda i: {"actor": IMPLEMENTER, "task_id": i["task_id"], "summary": B_TEXT, "evidence": EVIDENCE}),
        Case("escalate A's task", "EscalateTask",
             lambda i: {"actor": WORKER, "task_id": i["task_id"], "to_level": "street", "to_authority_id": "street-b",
                        "reason": B_TEXT}),
        Case("inspect A's task", "RecordInspection",
             lambda i: {"actor": SUPERVISOR, "inspection_id": "insp-b", "resolution_id": i["resolution_id"],
                        "task_id": i["task_id"], "inspector_ids": ["sup-1"], "aspects": ["quality"],
                        "finding": "unsatisfactory", "notes": B_TEXT}),
        Case("inspect A's resolution", "RecordInspection",
             lambda i: {"actor": SUPERVISOR, "inspection_id": "insp-b2", "resolution_id": i["resolution_id"],
                        "inspector_ids": ["sup-1"], "aspects": ["quality"], "finding": "unsatisfactory",
                        "notes": B_TEXT}),
        Case("schedule an inspection of A's task", "ScheduleFollowUpInspection",
             lambda i: {"actor": SUPERVISOR, "inspection_id": "insp-b3", "task_id": i["task_id"],
                        "scheduled_for": at(10), "reason": B_TEXT}),
        Case("allocate from A's fund", "AllocateFunds",
             lambda i: {"actor": WORKER, "allocation_id": f"{i['allocation_id']}-b", "fund_id": i["fund_id"],
                        "resolution_id": i["resolution_id"], "task_id": i["task_id"], "amount_fen": 100,
                        "purpose": B_TEXT}),
        Case("spend from A's allocation", "RecordSpending",
             lambda i: {"actor": WORKER, "expenditure_id": "exp-b", "allocation_id": i["allocation_id"],
                        "amount_fen": 100, "payee": B_TEXT, "purpose": B_TEXT}),
        Case("rate A's resolution", "RecordSatisfaction",
             lambda i: {"actor": WORKER, "rating_id": "rating-b", "resolution_id": i["resolution_id"],
                        "review_meeting_id": "meeting-b", "year": 2026, "satisfied": 0, "basically_satisfied": 0,
                        "dissatisfied": 40, "comments": B_TEXT}),
        Case("close A's resolution", "CloseResolution",
             lambda i: {"actor": WORKER, "resolution_id": i["resolution_id"], "reason": "abandoned",
                        "summary": B_TEXT}),
        Case("reconsult A's resolution", "RequestReconsultation",
             lambda i: {"actor": WORKER, "resolution_id": i["resolution_id"], "task_id": i["task_id"],
                        "problem": B_TEXT}),
        Case("set the policy of A's resolution", "SetReminderPolicy",
             lambda i: {"actor": WORKER, "scope": "resolution", "scope_id": i["resolution_id"],
                        "not_accepted_days": 1, "stall_days": 1, "deadline_warning_days": 1,
                        "escalate_after_days": 1, "supervisor_id": "sup-b"}),
        Case("set a policy for a council id A uses", "SetReminderPolicy",
             lambda i: {"actor": WORKER, "scope": "council", "scope_id": i["council_id"], "not_accepted_days": 1,
                        "stall_days": 1, "deadline_warning_days": 1, "escalate_after_days": 1}, accepted=True),
        Case("register a resolution with an id A uses", "RegisterResolution",
             lambda i: {"actor": WORKER, "resolution_id": i["resolution_twin"], "proposal_id": "p-b",
                        "council_id": "council-b", "title": B_TEXT, "text": B_TEXT}, accepted=True),
        Case("establish a fund with an id A uses", "EstablishFund",
             lambda i: {"actor": OFFICIAL, "fund_id": i["fund_twin"], "community_id": "b-community", "year": 2027,
                        "amount_fen": 1_000}, accepted=True),
        Case("establish a fund for A's community and year", "EstablishFund",
             lambda i: {"actor": OFFICIAL, "fund_id": f"{i['fund_id']}-b", "community_id": i["community_id"],
                        "year": int(i["year"]), "amount_fen": 2_000}, accepted=True),
    ],
    "notify": [
        Case("cancel A's subscription", "Unsubscribe",
             lambda i: {"actor": WORKER, "subscription_id": i["subscription_id"]}),
        Case("notify A's subscriber", "RequestNotification",
             lambda i: notice(f"{i['notification_id']}-b", i["subscriber_id"], B_TEXT), accepted=True),
        Case("subscribe with an id A uses", "Subscribe",
             lambda i: subscription(i["subscription_twin"], "resident-b", "https://b.example/hook"), accepted=True),
        Case("remove A's default contact", "RemoveDefaultContact",
             lambda i: {"actor": WORKER, "party_id": i["party_id"]}),
        Case("set a default contact for a party A lists", "SetDefaultContact",
             lambda i: {"actor": WORKER, "party_id": i["party_id"], "channel": "webhook",
                        "address": "https://b.example/org"}, accepted=True),
    ],
}
"""Every command type of every service appears here at least once (checked)."""

KAFKA: dict[str, str] = {"proposals": "second A's proposal", "voting": "vote in A's vote",
                         "oversight": "report on A's task", "notify": "cancel A's subscription"}
"""The case each service's Kafka test sends (with a body naming district A)."""


def case(service: str, label: str) -> Case:
    """The case of ``service`` labelled ``label``."""
    return next(c for c in CASES[service] if c.label == label)


def case_params() -> list:
    """One test parameter per case, ``(service, label)``."""
    return [pytest.param(service, c.label, id=f"{service}-{c.label}")
            for service in SERVICES for c in CASES[service]]


# -- the running world -----------------------------------------------------------------


@dataclass
class World:
    """One service serving districts ``a`` and ``b``; ``ids`` are A's records (by the
    parameter or field name they fill) and ``secrets`` strings only A's records contain."""

    name: str
    svc: Running
    servers: Any
    a: str
    b: str
    ids: Ids = dataclasses.field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    @property
    def client(self) -> httpx.AsyncClient:
        return self.svc.client

    async def command(self, type_: str, body: dict) -> str:
        """Send a command in A as its actor (seeding); it must be accepted. Returns the subject."""
        got = await self.client.post(f"/{self.a}/commands/{type_}", json={"district": self.a, **body})
        assert got.status_code == 200, f"seeding {type_} in A: {got.text}"
        return got.json()["subject"]


async def send(w: World, path_district: str, type_: str, body: dict, *, credentials: str | None = None
               ) -> httpx.Response:
    """POST ``body`` to ``path_district``'s command route, with a token for the body's
    actor in ``credentials``' district (default: the path's district)."""
    headers = {}
    if credentials is not None:
        headers["authorization"] = f"Bearer {token_for(Actor.model_validate(body['actor']), credentials)}"
    return await w.client.post(f"/{path_district}/commands/{type_}", json=body, headers=headers)


def fill(template: str, district: str, read: Read, ids: Ids) -> tuple[str, dict[str, str]]:
    """The path and query of ``template`` in ``district`` with ``ids``."""
    path = template.replace("{district}", district)
    query = {}
    for param, key in read.params.items():
        if "{" + param + "}" in path:
            path = path.replace("{" + param + "}", ids[key])
        else:
            query[param] = ids[key]
    missing = re.findall(r"{(\w+)}", path)
    assert not missing, f"{template}: no value for {missing} (add it to READS)"
    return path, query


async def query(w: World, template: str, district: str, ids: Ids, headers: dict | None = None) -> httpx.Response:
    """Ask ``template`` in ``district`` about ``ids`` (default reader: the path's auditor)."""
    read = READS[w.name].get(template) or STAFF_ONLY[w.name][template]
    path, params = fill(template, district, read, ids)
    return await w.client.get(path, params=params, headers=headers or {})


def elsewhere(ids: Ids) -> Ids:
    """Ids like A's that exist in no district (years stay years)."""
    tag = uuid.uuid4().hex[:8]
    return {k: str(int(v) + 5) if v.isdigit() else f"nx{tag}-{k}" for k, v in ids.items()}


def normalised(text: str, values: list[str]) -> str:
    """``text`` with each of ``values`` replaced by ``<id>``, to compare two answers."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "<id>")
    return text


def leaked(w: World, text: str) -> list[str]:
    """The secrets of A's records that ``text`` contains."""
    return [s for s in w.secrets if s in text]


def command_body(w: World, type_: str, district: str) -> dict:
    """A body for ``type_`` naming A's records (its first case), else the contracts'
    sample with an actor allowed to send it, in ``district``."""
    found = next((c for c in CASES[w.name] if c.type == type_), None)
    if found is not None:
        return {"district": district, **found.body(w.ids)}
    model = registry.spec(type_, Kind.COMMAND).model
    role = min(PERMISSIONS[type_])
    actor = {"id": "someone", "role": str(role), "seat_id": "seat-1" if role == "council_member" else None}
    return {**examples.sample(model).model_dump(mode="json"), "district": district, "actor": actor}


def routes(w: World) -> list[tuple[str, str]]:
    """Every (method, path) the service's OpenAPI document lists."""
    return [(method, path) for path, ops in w.svc.app.openapi()["paths"].items() for method in ops]


@dataclass(frozen=True)
class StateOfA:
    """Everything of district A: its aggregate streams with their versions, how many
    events (and replies) it holds, and every query about A's records as A's auditor
    sees it."""

    streams: dict[str, int]
    events: int
    replies: int
    reads: dict[str, Any]


async def state_of_a(w: World) -> StateOfA:
    """A's state now: streams from the service's event store, reads as A's auditor."""
    pool = w.svc.ctx.pool
    rows = await pool.fetch(
        "SELECT stream_id, max(version) AS version FROM events WHERE stream_id IN ("
        "  SELECT stream_id FROM events WHERE district = $1 AND version = 1 AND stream_id NOT LIKE 'reply-%')"
        " GROUP BY stream_id", w.a)
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE stream_id NOT LIKE 'reply-%') AS events,"
        " count(*) FILTER (WHERE stream_id LIKE 'reply-%') AS replies FROM events WHERE district = $1", w.a)
    reads = {}
    for template in READS[w.name]:
        got = await query(w, template, w.a, w.ids)
        assert got.status_code == 200, f"A's auditor cannot read {template} in A: {got.text}"
        reads[template] = got.json()
    return StateOfA({r["stream_id"]: r["version"] for r in rows}, counts["events"], counts["replies"], reads)


def assert_unchanged(before: StateOfA, after: StateOfA, what: str) -> None:
    """Fail, saying which part, if A's state differs; ``what`` names the cause."""
    assert after.streams == before.streams, f"{what}: A's streams changed"
    assert after.events == before.events, f"{what}: events were recorded in A"
    assert after.replies == before.replies, f"{what}: replies were recorded in A"
    for template, answer in before.reads.items():
        assert after.reads[template] == answer, f"{what}: A's {template} changed"


async def events_in(w: World, district: str) -> int:
    """How many events (replies included) the service holds in ``district``."""
    return await w.svc.ctx.pool.fetchval("SELECT count(*) FROM events WHERE district = $1", district)


async def assert_b_shows_nothing_of_a(w: World) -> None:
    """B's lists and summaries, asked about A's ids, show nothing of A's records."""
    for template, read in READS[w.name].items():
        if read.many:
            got = await query(w, template, w.b, w.ids)
            assert got.status_code == 200, f"{template} in B: {got.text}"
            assert not leaked(w, got.text), f"{template} in B shows A's {leaked(w, got.text)}: {got.text}"


# -- seeding A --------------------------------------------------------------------------


async def seed_proposals(w: World, mark: str, tag: str) -> None:
    """A's council (two members seated), catalogue, nomination and a published, seconded
    proposal; a second council and category whose ids B reuses."""
    i = w.ids = {"council_id": f"council-{tag}", "council_twin": f"council-twin-{tag}",
                 "category_id": f"cat-{tag}", "category_twin": f"cat-twin-{tag}", "item_id": f"item-{tag}",
                 "community_id": f"xikang-{tag}", "nomination_id": f"nom-{tag}", "proposal_id": f"prop-{tag}",
                 "slate_id": f"slate-{tag}", "session_id": f"session-{tag}"}
    await w.command("FormCouncil", council(i["council_id"], f"{mark} council", i["community_id"]))
    await w.command("FormCouncil", council(i["council_twin"], f"{mark} twin council", i["community_id"]))
    for n in (1, 2):
        await w.command("SeatMember", {"actor": WORKER, "council_id": i["council_id"], "seat_id": f"seat-{n}",
                                       "member_id": f"m{n}"})
    await w.command("DefineCatalogueCategory", {"actor": OFFICIAL, "category_id": i["category_id"], "code": "PA",
                                                "title": f"{mark} category", "description": mark})
    await w.command("DefineCatalogueCategory", {"actor": OFFICIAL, "category_id": i["category_twin"], "code": "PT",
                                                "title": f"{mark} twin category", "description": mark})
    await w.command("AddCatalogueItem", {"actor": WORKER, "item_id": i["item_id"], "category_id": i["category_id"],
                                         "community_id": i["community_id"], "title": f"{mark} item",
                                         "description": mark})
    await w.command("NominateRepresentative", {"actor": WORKER, "nomination_id": i["nomination_id"],
                                               "council_id": i["council_id"], "seat_id": "seat-4",
                                               "nominee_id": "resident-7", "route": "self_nomination"})
    await w.command("NominateSlate", {"actor": WORKER, "slate_id": i["slate_id"], "council_id": i["council_id"],
                                      "nominees": [{"seat_id": "seat-4", "nominee_id": "resident-8",
                                                    "route": "recommendation"}], "notice_ends_at": at(7)})
    await w.command("RaiseProposal", {"actor": RESIDENT, "proposal_id": i["proposal_id"],
                                      "council_id": i["council_id"], "catalogue_item_id": i["item_id"],
                                      "title": f"{mark} proposal", "summary": mark})
    await w.command("PublishProposal", {"actor": WORKER, "proposal_id": i["proposal_id"], "form": "council",
                                        "notice_ends_at": at(7)})
    await w.command("SecondMotion", {"actor": member(1), "proposal_id": i["proposal_id"]})
    await w.command("SetChairRota", {"actor": WORKER, "council_id": i["council_id"], "chairs": ["m1", "m2"]})
    await w.command("ScheduleSession", {"actor": WORKER, "session_id": i["session_id"], "council_id": i["council_id"],
                                        "form": "council", "starts_at": at(3), "place": f"{mark} hall"})


async def seed_voting(w: World, mark: str, tag: str) -> None:
    """A's open vote with one ballot; a second vote whose id B reuses; a closed secret vote
    with its published board."""
    i = w.ids = {"vote_id": f"vote-{tag}", "vote_twin": f"vote-twin-{tag}", "ballot_id": f"ballot-{tag}",
                 "secret_vote_id": f"vote-secret-{tag}"}
    await w.command("OpenVote", open_vote(i["vote_id"], f"{mark} question"))
    await w.command("OpenVote", open_vote(i["vote_twin"], f"{mark} twin question"))
    await w.command("CastBallot", {"actor": VOTER, "vote_id": i["vote_id"], "ballot_id": i["ballot_id"],
                                   "choice": "in_favour"})
    secret = open_vote(i["secret_vote_id"], f"{mark} secret question")
    secret["terms"]["secrecy"] = "secret"
    await w.command("OpenVote", secret)
    await w.command("CastBallot", {"actor": VOTER, "vote_id": i["secret_vote_id"], "ballot_id": f"{i['ballot_id']}-s",
                                   "choice": "against"})
    await w.command("CloseVote", {"actor": WORKER, "vote_id": i["secret_vote_id"]})  # its board is published


FUND_FEN, SPENT_FEN = 98_765_431, 43_217
"""Amounts only A's fund shows (in its review and the district's statistics)."""


async def seed_oversight(w: World, mark: str, tag: str) -> None:
    """A's council (from a proposals event), a resolution with a policy, an accepted task
    with progress and an inspection, a fund with an allocation and spending; a second
    resolution and fund whose ids B reuses."""
    i = w.ids = {"council_id": f"council-{tag}", "community_id": f"xikang-{tag}", "resolution_id": f"res-{tag}",
                 "resolution_twin": f"res-twin-{tag}", "task_id": f"task-{tag}", "fund_id": f"fund-{tag}",
                 "fund_twin": f"fund-twin-{tag}", "allocation_id": f"alloc-{tag}", "year": str(T0.year)}
    w.secrets += (str(FUND_FEN), str(SPENT_FEN))
    # Oversight learns councils (and so a resolution's community) from the proposals events.
    formed = CouncilFormed(district=w.a, actor=Actor.model_validate(WORKER), occurred_at=T0,
                           council_id=i["council_id"], name=f"{mark} council", level="community",
                           area_id=i["community_id"], seats=[{"seat_id": "seat-1", "kind": "expert"}])
    await produce(w, events_topic(w.a, "proposals"), registry.to_envelope(
        formed, id=str(uuid.uuid4()), source=source(w.a, "proposals"), subject=i["council_id"], time=T0,
        correlation_id=str(uuid.uuid4())))
    # Registered only once the council is known: a resolution registered while its council
    # is being recorded keeps no community (a race in oversight, see the report).
    await eventually(lambda: w.svc.ctx.pool.fetchval(
        "SELECT true FROM ov_councils WHERE district = $1 AND council_id = $2", w.a, i["council_id"]), timeout=60)
    for resolution in (i["resolution_id"], i["resolution_twin"]):
        await w.command("RegisterResolution", {"actor": WORKER, "resolution_id": resolution, "proposal_id": f"p-{tag}",
                                               "council_id": i["council_id"], "title": f"{mark} resolution",
                                               "text": mark, "budget_fen": 5_000_000})
    await w.command("SetReminderPolicy", {"actor": WORKER, "scope": "resolution", "scope_id": i["resolution_id"],
                                          "not_accepted_days": 3, "stall_days": 7, "deadline_warning_days": 5,
                                          "escalate_after_days": 3, "supervisor_id": "sup-1"})
    await w.command("AssignTask", {"actor": WORKER, "task_id": i["task_id"], "resolution_id": i["resolution_id"],
                                   "implementer": {"kind": "social_organisation", "id": "org-a", "name": mark},
                                   "description": f"{mark} task", "acceptance_standards": [mark], "due_at": at(60),
                                   "budget_fen": 1_000_000})
    await w.command("AcceptTask", {"actor": IMPLEMENTER, "task_id": i["task_id"]})
    await w.command("ReportProgress", {"actor": IMPLEMENTER, "task_id": i["task_id"], "percent_complete": 30,
                                       "summary": mark, "evidence": EVIDENCE})
    await w.command("EstablishFund", {"actor": OFFICIAL, "fund_id": i["fund_id"], "community_id": i["community_id"],
                                      "year": T0.year, "amount_fen": FUND_FEN})
    await w.command("EstablishFund", {"actor": OFFICIAL, "fund_id": i["fund_twin"], "community_id": f"other-{tag}",
                                      "year": T0.year, "amount_fen": 1_000})
    await w.command("AllocateFunds", {"actor": WORKER, "allocation_id": i["allocation_id"], "fund_id": i["fund_id"],
                                      "resolution_id": i["resolution_id"], "task_id": i["task_id"],
                                      "amount_fen": 500_000, "purpose": mark})
    await w.command("RecordSpending", {"actor": WORKER, "expenditure_id": f"exp-{tag}",
                                       "allocation_id": i["allocation_id"], "amount_fen": SPENT_FEN,
                                       "payee": mark, "purpose": mark})
    await w.command("RecordInspection", {"actor": SUPERVISOR, "inspection_id": f"insp-{tag}",
                                         "resolution_id": i["resolution_id"], "task_id": i["task_id"],
                                         "inspector_ids": ["sup-1"], "aspects": ["progress"],
                                         "finding": "satisfactory", "notes": mark})

    async def community_known() -> bool:
        got = await w.client.get(f"/{w.a}/resolutions/{i['resolution_id']}")
        return got.json()["community_id"] == i["community_id"]
    await eventually(community_known, timeout=60)


async def seed_notify(w: World, mark: str, tag: str) -> None:
    """A's subscriber with two webhook subscriptions (the second's id B reuses) and a
    notice to them, so two deliveries wait (the worker sleeps)."""
    i = w.ids = {"subscription_id": f"sub-{tag}", "subscription_twin": f"sub-twin-{tag}",
                 "subscriber_id": f"resident-{tag}", "notification_id": f"note-{tag}", "party_id": f"org-{tag}"}
    address = f"https://{mark}.example/hook"
    await w.command("SetDefaultContact", {"actor": WORKER, "party_id": i["party_id"], "channel": "webhook",
                                          "address": address + "/org"})
    await w.command("Subscribe", subscription(i["subscription_id"], i["subscriber_id"], address))
    await w.command("Subscribe", subscription(i["subscription_twin"], i["subscriber_id"], address + "/twin"))
    await w.command("RequestNotification", notice(i["notification_id"], i["subscriber_id"], f"{mark} notice"))
    deliveries = (await w.client.get(f"/{w.a}/deliveries", params={"recipient_id": i["subscriber_id"]})).json()["items"]
    assert len(deliveries) == 2, deliveries  # one per subscribed address
    i["delivery_id"] = deliveries[0]["delivery_id"]


SEEDS = {"proposals": seed_proposals, "voting": seed_voting, "oversight": seed_oversight, "notify": seed_notify}


async def produce(w: World, topic: str, envelope) -> None:
    """Put ``envelope`` on ``topic`` as a district system or service would."""
    producer = new_producer(w.servers.kafka_bootstrap)
    await producer.start()
    try:
        key, headers, value = envelope.to_kafka()
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(request, servers):
    """The service named by the test's parameter, serving fresh districts A and B, with
    A's records seeded (one start per service: tests are grouped by it)."""
    name = request.param
    a, b = new_district(), new_district()
    await ensure_topics(servers.kafka_bootstrap, [make(d, s) for d in (a, b) for s in SERVICES
                                                  for make in (events_topic, commands_topic)])
    async with running(SPECS[name](), servers, district=a, districts=[a, b], clock=ManualClock(T0),
                       command_rate_limit="1000/second") as svc:
        w = World(name, svc, servers, a, b)
        tag = uuid.uuid4().hex[:8]
        mark = f"a-only-{tag}"  # lower case: it also goes into URLs
        w.secrets = (mark,)
        await SEEDS[name](w, mark, tag)
        yield w


every_service = pytest.mark.parametrize("world", SERVICES, indirect=True)


# -- the tests ------------------------------------------------------------------------


@every_service
async def test_every_route_is_covered(world):
    """Every route is in a table here: queries in READS (with every parameter filled),
    commands in CASES, the rest known to have no district."""
    w = world
    seen_reads, seen_commands = set(), set()
    for method, path in routes(w):
        if path in OPS or path in LOG or path in WITHOUT_DISTRICT.get(w.name, ()) or path in STAFF_ONLY.get(w.name, {}):
            continue
        if method == "post" and path.startswith(COMMANDS):
            seen_commands.add(path.removeprefix(COMMANDS))
        elif method == "get" and path in READS[w.name]:
            seen_reads.add(path)
            _, params = fill(path, w.a, READS[w.name][path], w.ids)
            spec = w.svc.app.openapi()["paths"][path]["get"]
            required = {p["name"] for p in spec.get("parameters", []) if p["in"] == "query" and p.get("required")}
            assert required <= set(params), f"{path}: required query parameters {required - set(params)} unfilled"
        else:
            pytest.fail(f"{method.upper()} {path} is not covered: add it to READS, CASES or WITHOUT_DISTRICT")
    assert seen_reads == set(READS[w.name]), f"READS lists routes the service lacks: {set(READS[w.name]) - seen_reads}"
    assert seen_commands == {c.type for c in CASES[w.name]}, \
        f"commands without a case: {seen_commands - {c.type for c in CASES[w.name]}}; " \
        f"cases of no route: {({c.type for c in CASES[w.name]}) - seen_commands}"


@every_service
async def test_a_path_with_b_credentials_is_not_found(world):
    """1. Every query (B's auditor) and every command (B's token for its actor, the body
    naming A or B) on A's path: 404 like a route that does not exist; nothing recorded."""
    w = world
    before = await state_of_a(w)
    b_auditor = bearer("auditor-b", w.b, "auditor")
    nowhere = await w.client.get(f"/{w.a}/no-such-route", headers=b_auditor)
    assert nowhere.status_code == 404
    checked = 0
    for method, path in routes(w):
        if path in OPS or path in LOG or path in WITHOUT_DISTRICT.get(w.name, ()):
            continue
        if method == "get":
            assert path in READS[w.name] or path in STAFF_ONLY.get(w.name, {}), f"GET {path} is not in READS"
            got = await query(w, path, w.a, w.ids, headers=b_auditor)
            assert (got.status_code, got.json()) == (404, nowhere.json()), f"GET {path}: {got.text}"
        elif method == "post" and path.startswith(COMMANDS):
            type_ = path.removeprefix(COMMANDS)
            for body_district in (w.a, w.b):
                got = await send(w, w.a, type_, command_body(w, type_, body_district), credentials=w.b)
                assert (got.status_code, got.json()) == (404, nowhere.json()), \
                    f"POST {path} (body in {body_district}): {got.text}"
        else:
            pytest.fail(f"{method.upper()} {path} is not covered")
        checked += 1
    assert checked >= len(READS[w.name])
    assert_unchanged(before, await state_of_a(w), "B's credentials on A's path")


@every_service
async def test_b_path_with_a_ids_finds_nothing(world):
    """2. Every query on B's path (B's auditor) with A's ids: one record is 404, exactly
    as for ids that exist nowhere; lists and summaries show nothing of A (which the same
    query in A does show)."""
    w = world
    unknown = elsewhere(w.ids)
    for template, read in READS[w.name].items():
        if template in RECORDLESS:
            continue
        got = await query(w, template, w.b, w.ids)
        if read.many:
            assert got.status_code == 200, f"{template} in B: {got.text}"
            assert not leaked(w, got.text), f"{template} in B shows A's {leaked(w, got.text)}"
            in_a = await query(w, template, w.a, w.ids)
            assert leaked(w, in_a.text), f"{template} in A shows none of A's records: the check above proves nothing"
        else:
            assert got.status_code == 404, f"{template} in B with A's ids: {got.text}"
            never = await query(w, template, w.b, unknown)
            assert never.status_code == 404
            used = list(read.params.values())
            assert normalised(got.text, [w.ids[k] for k in used]) == normalised(never.text, [unknown[k] for k in used]), \
                f"{template}: A's ids are answered differently from unknown ids"


@pytest.mark.parametrize("world,label", case_params(), indirect=["world"], scope="module")
async def test_b_command_naming_a_records(world, label):
    """3. A command of B's people on B's path naming A's records: ``not_found``, as for
    ids that exist nowhere (or B's own new record, when the case creates one); A's
    records unchanged, and nothing of A appears in B."""
    w = world
    c = case(w.name, label)
    before = await state_of_a(w)
    got = await send(w, w.b, c.type, {"district": w.b, **c.body(w.ids)})
    assert not leaked(w, got.text), f"the answer shows A's {leaked(w, got.text)}"
    if c.accepted:
        assert got.status_code == 200, got.text
        assert got.json()["command_type"] == c.type
    else:
        assert (got.status_code, got.json().get("reason")) == (404, "not_found"), got.text
        never = await send(w, w.b, c.type, {"district": w.b, **c.body(elsewhere(w.ids))})
        assert (never.status_code, never.json().get("reason")) == (404, "not_found"), \
            f"unknown ids are answered {never.text}, A's {got.text}"
    assert_unchanged(before, await state_of_a(w), f"{c.type} in B")
    await assert_b_shows_nothing_of_a(w)


@every_service
async def test_b_credentials_b_path_body_naming_a(world):
    """4. B's credentials on B's path with a body naming district A: 404 ``wrong_district``
    for every command, recorded nowhere."""
    w = world
    before, b_events = await state_of_a(w), await events_in(w, w.b)
    for method, path in routes(w):
        if method == "post" and path.startswith(COMMANDS):
            type_ = path.removeprefix(COMMANDS)
            got = await send(w, w.b, type_, command_body(w, type_, w.a))
            assert (got.status_code, got.json().get("reason")) == (404, "wrong_district"), f"{type_}: {got.text}"
    assert_unchanged(before, await state_of_a(w), "bodies naming A on B's path")
    assert await events_in(w, w.b) == b_events, "a mismatched command was recorded in B"


@every_service
async def test_kafka_command_with_b_token_naming_a(world):
    """5. A command naming district A with a token of district B, put on A's command
    topic: a ``CommandRejected`` reply with ``wrong_district``, recorded as A's reply and
    published on A's replies topic; nothing else changes."""
    w = world
    c = case(w.name, KAFKA[w.name])
    ident, envelope = kafka_command_of_a_with_b_token(w, c)
    before = await state_of_a(w)
    await produce(w, commands_topic(w.a, w.name), envelope)

    async def reply():
        return await w.svc.ctx.pool.fetchrow(
            "SELECT district, state FROM events WHERE stream_id LIKE 'reply-%' AND metadata->>'causation_id' = $1",
            ident)
    recorded = await eventually(reply, timeout=60)
    body = json.loads(bytes(recorded["state"]))
    assert (recorded["district"], body["reason"], body["command_type"]) == (w.a, "wrong_district", c.type), body
    after = await state_of_a(w)
    assert after.replies == before.replies + 1
    assert_unchanged(before, dataclasses.replace(after, replies=before.replies), f"{c.type} over Kafka")

    published = await read_topic(w.servers.kafka_bootstrap, replies_topic(w.a, w.name), after.replies, timeout=30)
    mine = [e for e in published if e.correlation_id == ident]
    assert [e.type for e in mine] == ["CommandRejected"], [e.type for e in published]


@every_service
async def test_kafka_command_naming_a_on_b_topic_is_dead_lettered(world):
    """5b. The same command put on B's command topic names another district than its
    topic's: it is dead-lettered with the reason, and nothing is recorded in A or B."""
    w = world
    c = case(w.name, KAFKA[w.name])
    ident, envelope = kafka_command_of_a_with_b_token(w, c)
    before, b_events = await state_of_a(w), await events_in(w, w.b)
    await produce(w, commands_topic(w.b, w.name), envelope)

    async def parked():
        return await w.svc.ctx.pool.fetchval(
            "SELECT reason FROM dead_letters WHERE headers->>'ce_id' = $1", ident)
    reason = await eventually(parked, timeout=60)
    assert f"ce_district {w.a!r} is not the district of topic {commands_topic(w.b, w.name)}" in reason
    assert_unchanged(before, await state_of_a(w), f"{c.type} on B's topic")
    assert await events_in(w, w.b) == b_events


def kafka_command_of_a_with_b_token(w, c: Case) -> tuple[str, Envelope]:
    """Case ``c`` as a command naming A, with a token of B's: ``(id, envelope)``."""
    model = registry.spec(c.type, Kind.COMMAND).model.model_validate({"district": w.a, **c.body(w.ids)})
    ident = str(uuid.uuid4())
    return ident, registry.to_envelope(model, id=ident, source=f"/districts/{w.b}/grid-system", subject=ident,
                                       time=T0, correlation_id=ident, token=token_for(model.actor, w.b))


@pytest.mark.parametrize("world", ["proposals"], indirect=True)
async def test_read_model_rebuild_needs_an_admin_of_a_served_district(world):
    """The rebuild has no district in its path: only a district administrator of a
    district served here may run it; a B administrator's rebuild leaves A as it was."""
    w = world
    url = "/admin/read-models/rebuild"
    assert url in WITHOUT_DISTRICT[w.name]
    before = await state_of_a(w)
    for who in (bearer("resident-b", w.b, "resident"), bearer("auditor-b", w.b, "auditor"),
                bearer("worker-b", w.b, "community_worker", "official"),
                bearer("admin-x", new_district(), "district_admin")):
        got = await w.client.post(url, headers=who)
        assert got.status_code == 403, got.text
    got = await w.client.post(url, headers=bearer("admin-b", w.b, "district_admin"))
    assert got.status_code == 200, got.text
    assert_unchanged(before, await state_of_a(w), "a rebuild by B's administrator")


@pytest.mark.parametrize("world", ["proposals"], indirect=True)
async def test_read_model_rebuild_is_scoped_to_the_administrators_district(world):
    """A B administrator's rebuild rebuilds and counts B's documents only: A's are not
    rewritten, and their number is not in the answer. A's administrator's rebuild
    counts A's, and A reads as before."""
    w = world
    url = "/admin/read-models/rebuild"
    formed = await send(w, w.b, "FormCouncil",
                        {"district": w.b, **council(f"council-b-{uuid.uuid4().hex[:8]}", B_TEXT, "b-area")})
    assert formed.status_code == 200, formed.text

    async def documents(district: str) -> list[tuple[str, str, str]]:
        # xmin changes when a row is rewritten: the same xmin is the same, untouched row.
        rows = await w.svc.ctx.pool.fetch(
            "SELECT kind, id, xmin::text AS x FROM read_models WHERE district = $1 ORDER BY kind, id", district)
        return [(r["kind"], r["id"], r["x"]) for r in rows]
    before, of_a, of_b = await state_of_a(w), await documents(w.a), await documents(w.b)
    assert of_a and of_b
    got = await w.client.post(url, headers=bearer("admin-b", w.b, "district_admin"))
    assert got.json() == {"documents": len(of_b)}, got.text
    assert await documents(w.a) == of_a, "B's rebuild rewrote A's read models"
    assert [d[:2] for d in await documents(w.b)] == [d[:2] for d in of_b]
    got = await w.client.post(url, headers=bearer("admin-a", w.a, "district_admin"))
    assert got.json() == {"documents": len(of_a)}, got.text
    assert_unchanged(before, await state_of_a(w), "A's own rebuild")
