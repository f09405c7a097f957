"""The demo: one deliberation in a district, from raise to satisfaction rating, driven only
through the services' public HTTP APIs and told as it goes.

``yishi run --demo`` starts the platform and then this story; ``yishi demo`` tells it to a
platform already running. The story keeps real periods (a seven-day notice, a task
stalled after a day without news) and needs the rehearsal clock to tell them within a
minute (:func:`service_env` sets one for the processes ``yishi run`` starts: four weeks a
minute), and notify's webhook channel to show the reminder delivered to a loopback
receiver the demo runs itself (:class:`WebhookInbox`). Every time it sends is the
platform's (``GET /{district}/clock``), never this machine's.

Every step is a command (``POST /{district}/commands/{Type}``) followed by the query that
shows its effect; a rejected command or an effect that does not show within the timeout
stops the story with :class:`DemoFailed`, naming the step. The end-to-end tests tell the
same story (and its variants) through these functions.

(Over 500 lines on purpose: it is one story, told top to bottom, with its cast and its
small HTTP client beside it.)
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from contracts import registry
from contracts.common import Actor, Command, Electorate, ElectorateKind, Role, VoteMatter, VoteMatterKind, VoteTerms
from contracts.notify import Channel, SetDefaultContact
from contracts.oversight import (
    AcceptTask,
    AssignTask,
    CompleteTask,
    Implementer,
    ImplementerKind,
    InspectionAspect,
    InspectionFinding,
    PolicyScope,
    RecordInspection,
    RecordSatisfaction,
    ReportProgress,
    SetReminderPolicy,
)
from contracts.proposals import (
    ConsultationForm,
    CouncilRules,
    DeliberationStep,
    EscalateProposal,
    FormCouncil,
    LodgeObjection,
    MakeStatement,
    PublishProposal,
    RaiseProposal,
    RequestVote,
    Seat,
    SeatKind,
    SeatMember,
    SecondMotion,
    SpeakerRole,
)
from contracts.voting import BallotChoice, CastBallot, CloseVote
from yishi.auth import ActingAs, dev_issuer
from yishi.names import RUNNABLE

DEMO_DISTRICT = "gulou"
COMMUNITY = "xikang"  # the area the story's community council serves: its roadmap is the portal's page
REHEARSAL_FACTOR = 40_320
"""How fast the demo platform's clock runs (``YISHI_CLOCK_FACTOR``): four weeks a minute, so
the story's seven-day notice lasts 15 s and a day without news 2.1 s."""
NOTICE_DAYS = 7
"""The story's notice period: its council's rule (its proposal is publicised half a day longer)."""
VOTE_DAYS = 30
"""How long the story's vote stays open (it closes early, once every member has voted)."""
NOTICE_S = 3.0
"""How long proposals stay publicised by default (the default council asks for 0 days): the
variants the tests tell on a platform whose clock is the wall clock."""


class DemoFailed(RuntimeError):
    """A step of the story did not happen: a command was rejected, or its effect did not
    show in time."""


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    """Settings ``yishi run --demo`` adds for the services it starts, unless already set:
    the rehearsal clock (``yishi run`` gives it its epoch), a webhook secret so notify can
    deliver, and quieter logs so the story can be read."""
    wanted = {"YISHI_CLOCK_FACTOR": str(REHEARSAL_FACTOR),
              "YISHI_NOTIFY_WEBHOOK_SECRET": secrets.token_hex(16), "YISHI_LOG_LEVEL": "WARNING"}
    return {key: value for key, value in wanted.items() if key not in env}


def urls_from(host: str, base_port: int, services: Iterable[str] = RUNNABLE) -> dict[str, str]:
    """Where ``yishi run --base-port`` puts each service: consecutive ports in service order."""
    return {name: f"http://{host}:{base_port + i}" for i, name in enumerate(services)}


# --- talking to the platform ---------------------------------------------------------


class Api:
    """The four services' public HTTP APIs, in one district."""

    def __init__(self, urls: Mapping[str, str], district: str = DEMO_DISTRICT, *, timeout: float = 30.0,
                 auth: httpx.Auth | None = None) -> None:
        """``auth`` signs the requests; default: tokens of the development provider for
        each command's actor (reads as the district's auditor)."""
        self.urls = dict(urls)
        self.district = district
        self.timeout = timeout
        # The implementer's staff act for their organisation only; the convener and the
        # inspection group serve the whole district (acts_for "*").
        self._http = httpx.AsyncClient(timeout=10.0, auth=auth or ActingAs(dev_issuer(),
                                                                           acts_for={STAFF.id: [IMPLEMENTER_ID]}))

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def send(self, command: Command, *, retry_while: Iterable[str] = ()) -> dict:
        """Send ``command`` to the service that owns it and return its ``CommandAccepted``.

        A rejection whose reason is in ``retry_while`` (something this step waits for,
        e.g. the end of a notice period) is retried until the timeout; any other raises."""
        name = registry.type_name(type(command))
        url = f"{self.urls[registry.spec(name).service]}/{self.district}/commands/{name}"
        # One idempotency key for every try: a retry after a lost answer changes nothing.
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + self.timeout
        while True:
            response = await self._http.post(url, content=command.model_dump_json(), headers=headers)
            reply = response.json()
            if response.status_code == 200:
                return reply
            reason = reply.get("reason") if isinstance(reply, dict) else None
            if reason in set(retry_while) and time.monotonic() < deadline:
                headers["Idempotency-Key"] = str(uuid.uuid4())  # the rejection is the old key's answer
                await asyncio.sleep(0.5)
                continue
            message = reply.get("message", reply) if isinstance(reply, dict) else reply
            raise DemoFailed(f"{name} was rejected ({response.status_code} {reason}): {message}")

    async def clock(self) -> dict:
        """The platform's clock (``GET /{district}/clock`` of proposals): ``now``, ``factor``, ``epoch``."""
        response = await self._http.get(f"{self.urls['proposals']}/{self.district}/clock")
        response.raise_for_status()
        return response.json()

    async def now(self) -> datetime:
        """The platform's time, against which the deadlines a command carries are checked."""
        return datetime.fromisoformat((await self.clock())["now"])

    async def get(self, service: str, path: str, **params: Any) -> Any | None:
        """``GET`` a query of ``service`` (``path`` below the district); None when not found."""
        response = await self._http.get(f"{self.urls[service]}/{self.district}/{path}", params=params)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    async def until(self, what: str, service: str, path: str, check: Callable[[Any], object] = bool,
                    **params: Any) -> Any:
        """Poll a query until ``check`` accepts its answer; :class:`DemoFailed` naming
        ``what`` (and the last answer) after the timeout."""
        deadline = time.monotonic() + self.timeout
        seen: Any = None
        while time.monotonic() < deadline:
            seen = await self.get(service, path, **params)
            if seen is not None and check(seen):
                return seen
            await asyncio.sleep(0.2)
        raise DemoFailed(f"{what} did not happen within {self.timeout:.0f}s "
                         f"(GET {service} /{self.district}/{path}: {json.dumps(seen, ensure_ascii=False)[:400]})")


class WebhookInbox:
    """A loopback webhook receiver standing in for an implementer's phone gateway: keeps
    every request notify sends it (headers and raw body, so signatures can be checked)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # the story is the log
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="demo-webhook")

    def __enter__(self) -> WebhookInbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self) -> list[dict]:
        """The JSON bodies received so far."""
        return [json.loads(body) for _, body in self.received]


# --- the people ------------------------------------------------------------------------

WORKER = Actor(id="worker-0102", role=Role.COMMUNITY_WORKER)  # 社工 who convenes the council
OFFICIAL = Actor(id="official-0007", role=Role.OFFICIAL)  # street office staff
RESIDENT = Actor(id="resident-liu", role=Role.RESIDENT)  # the objector
EXPERT = Actor(id="expert-sun", role=Role.EXPERT)  # 议事能手
STAFF = Actor(id="staff-2201", role=Role.IMPLEMENTER)  # the social organisation's project lead
IMPLEMENTER_ID = "org-green-home"  # the social organisation the task is assigned to, STAFF's employer
SUPERVISOR = Actor(id="supervisor-01", role=Role.SUPERVISOR)  # heads the five-person inspection group

NAMES = {"worker-0102": "社工 周敏", "official-0007": "街道干部 吴刚", "resident-liu": "居民 刘阿姨",
         "expert-sun": "议事能手 孙工", "staff-2201": "项目负责人 何磊", "supervisor-01": "监事 钱明",
         "member-wang": "王芳", "member-li": "李娜", "member-zhao": "赵强", "member-chen": "陈静",
         "member-zhang": "张伟"}

# seat id, seat kind, member: the community council's five seats, filled directly.
MEMBERS = (("seat-pm-01", SeatKind.PARTY_MEMBER, "member-wang"),
           ("seat-so-01", SeatKind.SOCIAL_ORGANISATION, "member-li"),
           ("seat-np-01", SeatKind.NPC_DEPUTY, "member-zhao"),
           ("seat-ex-01", SeatKind.EXPERT, "member-chen"),
           ("seat-lu-01", SeatKind.LOCAL_UNIT, "member-zhang"))

ADOPT = {"member-wang": BallotChoice.IN_FAVOUR, "member-li": BallotChoice.IN_FAVOUR,
         "member-zhao": BallotChoice.IN_FAVOUR, "member-chen": BallotChoice.IN_FAVOUR,
         "member-zhang": BallotChoice.AGAINST}
"""The story's ballots: four in favour, one against."""


def who(actor_id: str) -> str:
    """A person's name for the story (the platform's own actors by their id)."""
    return f"{NAMES[actor_id]} ({actor_id})" if actor_id in NAMES else actor_id


def member(member_id: str) -> Actor:
    """A seated member of the community council, acting from their seat."""
    seat = next(s for s, _, m in MEMBERS if m == member_id)
    return Actor(id=member_id, role=Role.COUNCIL_MEMBER, seat_id=seat)


# --- the story, step by step -------------------------------------------------------------


@dataclass
class Councils:
    """The councils the story uses: a community council and the street council above it."""

    community: str
    street: str


@dataclass
class Deliberation:
    """A proposal taken to a vote, and how the vote ended."""

    proposal_id: str
    vote_id: str
    vote: dict = field(default_factory=dict)
    proposal: dict = field(default_factory=dict)


async def form_councils(api: Api, tag: str, say: Console, *, notice_period_days: int = 0) -> Councils:
    """The street council and the community council under it (whose rules ask for
    ``notice_period_days`` of notice), its five members seated."""
    street = f"council-hunanlu-{tag}"
    community = f"council-xikang-{tag}"
    await api.send(FormCouncil(district=api.district, actor=OFFICIAL, council_id=street, name="湖南路街道议事会",
                               level="street", area_id="hunanlu",
                               seats=(Seat(seat_id="seat-bs-01", kind=SeatKind.BUREAU_STAFF),)))
    rules = CouncilRules(seconds_required=1, notice_period_days=notice_period_days, quorum_percent=60)
    await api.send(FormCouncil(district=api.district, actor=WORKER, council_id=community, name="西康路社区议事会",
                               level="community", area_id=COMMUNITY, parent_council_id=street,
                               seats=tuple(Seat(seat_id=s, kind=k) for s, k, _ in MEMBERS), rules=rules))
    say.print(f"🏛  {who(WORKER.id)} forms [bold]西康路社区议事会[/bold] ({community}), under the street council "
              f"{street}: seconds required 1, notice {notice_period_days} days, quorum 60%, simple majority")
    for seat_id, kind, member_id in MEMBERS:
        await api.send(SeatMember(district=api.district, actor=WORKER, council_id=community, seat_id=seat_id,
                                  member_id=member_id))
        say.print(f"   seated {who(member_id)} in {seat_id} ({kind.value})")
    await api.until("the seating of five members", "proposals", f"councils/{community}/members",
                    lambda members: len(members) == len(MEMBERS))
    return Councils(community=community, street=street)


async def raise_and_deliberate(api: Api, councils: Councils, proposal_id: str, say: Console, *,
                               title: str = "在3号院增设电动自行车集中充电棚",
                               summary: str = "在3号院东侧空地建设集中充电棚,设40个充电位,配烟感与自动断电装置。",
                               notice: timedelta = timedelta(seconds=NOTICE_S)) -> None:
    """Raise, publish for ``notice`` of the platform's time, second, object, and hear all
    five steps of deliberation."""
    await api.send(RaiseProposal(district=api.district, actor=member("member-wang"), proposal_id=proposal_id,
                                 council_id=councils.community, title=title, summary=summary))
    say.print(f"📝 {who('member-wang')} raises «{title}» ({proposal_id})")
    notice_ends = await api.now() + notice
    await api.send(PublishProposal(district=api.district, actor=WORKER, proposal_id=proposal_id,
                                   form=ConsultationForm.COUNCIL, notice_ends_at=notice_ends))
    say.print(f"📢 {who(WORKER.id)} publishes it (告知) until {notice_ends:%Y-%m-%d %H:%M:%S} UTC (platform time)")
    await api.send(SecondMotion(district=api.district, actor=member("member-li"), proposal_id=proposal_id))
    say.print(f"🙋 {who('member-li')} seconds the motion (附议)")
    grounds = "充电棚离住户窗户太近,有消防隐患。"
    await api.send(LodgeObjection(district=api.district, actor=RESIDENT, proposal_id=proposal_id,
                                  objection_id=f"{proposal_id}-obj-1", grounds=grounds))
    say.print(f"✋ {who(RESIDENT.id)} lodges an objection: {grounds}")
    statements = (
        (DeliberationStep.MOTION, SpeakerRole.PROPOSER, member("member-wang"), "电动车在楼道充电,隐患大,需要集中充电棚。"),
        (DeliberationStep.SECONDING, SpeakerRole.SECONDER, member("member-li"), "我们服务中心愿意承接建设和运营。"),
        (DeliberationStep.OBJECTION, SpeakerRole.OBJECTOR, RESIDENT, "希望离窗户至少8米,并装烟感。"),
        (DeliberationStep.DEBATE, SpeakerRole.SUPPORTER, member("member-zhao"), "东侧空地距窗户8米以上,可以满足。"),
        (DeliberationStep.EXPERT_COMMENT, SpeakerRole.EXPERT, EXPERT, "配自动断电和烟感,符合消防规范。"),
    )
    for i, (step, role, actor, text) in enumerate(statements, 1):
        await api.send(MakeStatement(district=api.district, actor=actor, proposal_id=proposal_id,
                                     statement_id=f"{proposal_id}-st-{i}", step=step, speaker_role=role, text=text))
        say.print(f"   🗣  {step.value}: {who(actor.id)} as {role.value}: {text}")


async def vote(api: Api, councils: Councils, proposal_id: str, vote_id: str, say: Console, *,
               ballots: Mapping[str, BallotChoice] = ADOPT, close_early: bool = False,
               open_for: timedelta = timedelta(minutes=10)) -> Deliberation:
    """Request the council's vote once notice is over, open for ``open_for`` of the
    platform's time, cast ``ballots``, close it early if asked (everyone voting closes it
    by itself), and wait for the proposal's outcome."""
    closes_at = await api.now() + open_for
    roll = tuple(sorted(m for _, _, m in MEMBERS))
    terms = VoteTerms(question="是否同意建设集中充电棚?", closes_at=closes_at,
                      electorate=Electorate(kind=ElectorateKind.COUNCIL_MEMBERS, scope_id=councils.community,
                                            size=len(roll), roll=roll),
                      method="show_of_hands", majority="simple", quorum_percent=60, secrecy="open")
    # The notice period has to run out first: the council refuses earlier requests.
    await api.send(RequestVote(district=api.district, actor=WORKER, vote_id=vote_id, council_id=councils.community,
                               matter=VoteMatter(kind=VoteMatterKind.PROPOSAL, id=proposal_id), terms=terms),
                   retry_while={"invalid_state"})
    opened = await api.until("the vote's opening", "voting", f"votes/{vote_id}")
    say.print(f"🗳  {who(WORKER.id)} requests the vote; voting opens {vote_id} for "
              f"{opened['terms']['electorate']['size']} members, quorum {opened['terms']['quorum_percent']}%")
    for voter, choice in ballots.items():
        await api.send(CastBallot(district=api.district, actor=member(voter), vote_id=vote_id,
                                  ballot_id=f"{vote_id}-{voter}", choice=choice))
        say.print(f"   ballot: {who(voter)} — {choice.value}")
    if close_early:
        await api.send(CloseVote(district=api.district, actor=WORKER, vote_id=vote_id))
        say.print(f"   {who(WORKER.id)} closes the vote")
    closed = await api.until("the vote's close", "voting", f"votes/{vote_id}", lambda v: v["result"] is not None)
    result = closed["result"]
    tally = result["tally"]
    say.print(f"🔔 vote closed ({result['closed_by']}): {tally['in_favour']} in favour, {tally['against']} against, "
              f"{tally['abstain']} abstain; turnout {result['turnout_percent']}%, quorum "
              f"{'met' if result['quorum_met'] else 'not met'} → [bold]{result['outcome']}[/bold]")
    proposal = await api.until("the proposal's decision", "proposals", f"proposals/{proposal_id}",
                               lambda p: any(v["vote_id"] == vote_id and v["outcome"] for v in p["votes"]))
    if proposal["status"] in ("adopted", "rejected"):
        say.print(f"⚖️  ProposalDecided: {proposal_id} is [bold]{proposal['status']}[/bold]")
    else:
        say.print(f"↩️  ProposalReturnedForReconsultation: {proposal_id} goes back to deliberation "
                  f"(round {proposal['round']})")
    return Deliberation(proposal_id, vote_id, closed, proposal)


async def deliver(api: Api, councils: Councils, proposal_id: str, say: Console, inbox: WebhookInbox | None) -> str:
    """The resolution's task, through a stall and its reminder, to completion, inspection
    and the residents' rating. Returns the resolution id.

    The ids of what the story creates from here on are the platform's, named in each
    reply (``ids``); the resolution's is named by the adopted proposal."""
    proposal = await api.until("the proposal naming its resolution", "proposals", f"proposals/{proposal_id}",
                               lambda p: p["resolution_id"])
    resolution_id = proposal["resolution_id"]
    await api.until("the resolution's registration", "oversight", f"resolutions/{resolution_id}")
    say.print(f"📜 ResolutionRegistered: {resolution_id}")
    await api.send(SetReminderPolicy(district=api.district, actor=WORKER, scope=PolicyScope.RESOLUTION,
                                     scope_id=resolution_id, not_accepted_days=30, stall_days=1,
                                     deadline_warning_days=7, escalate_after_days=30, supervisor_id=SUPERVISOR.id))
    factor = (await api.clock())["factor"]
    say.print("   reminder policy: a task without news for 1 day is stalled"
              + (f" (on this platform's rehearsal clock a day lasts {86_400 / factor:.1f} s)" if factor > 1 else ""))
    if inbox is not None:
        # The staff subscribe to nothing: the district's directory of default contacts
        # reaches them through their organisation's gateway (services/notify/README.md).
        await api.send(SetDefaultContact(district=api.district, actor=WORKER, party_id=IMPLEMENTER_ID,
                                         channel=Channel.WEBHOOK, address=inbox.url))
        say.print(f"   {who(WORKER.id)} lists 鼓楼绿色家园服务中心's webhook ({inbox.url}) in the district's "
                  "directory of default contacts")
    standards = ("40个充电位全部可用", "通过消防验收", "距住户窗户不少于8米")
    assigned = await api.send(AssignTask(
        district=api.district, actor=WORKER, resolution_id=resolution_id,
        implementer=Implementer(kind=ImplementerKind.SOCIAL_ORGANISATION, id=IMPLEMENTER_ID,
                                name="鼓楼绿色家园服务中心"),
        description="建设充电棚并完成消防验收。", acceptance_standards=standards,
        due_at=await api.now() + timedelta(days=60), budget_fen=8_600_000))
    task_id = assigned["ids"]["task_id"]
    say.print(f"🧰 TaskAssigned: {task_id} to 鼓楼绿色家园服务中心, standards: {'; '.join(standards)}")
    await api.send(AcceptTask(district=api.district, actor=STAFF, task_id=task_id))
    await api.send(ReportProgress(district=api.district, actor=STAFF, task_id=task_id, percent_complete=40,
                                  summary="地基和棚架完成。"))
    say.print(f"   {who(STAFF.id)} accepts the task and reports 40%: 地基和棚架完成。 — then no news…")
    await api.until("the stall reminder", "oversight", f"tasks/{task_id}", lambda t: t["last_reminder_at"])
    say.print(f"⏰ TaskStalled: no progress on {task_id} for 1 policy day; ReminderDue → {who(STAFF.id)}")
    if inbox is not None:
        def reminders(page: dict) -> list[dict]:
            return [r for r in page["items"] if r["regarding_type"] == "ReminderDue" and r["status"] == "delivered"]

        delivered = reminders(await api.until("the reminder's delivery", "notify", "deliveries", reminders,
                                              recipient_id=STAFF.id))
        notice = next((b for b in inbox.bodies() if b.get("delivery_id") == delivered[0]["delivery_id"]), {})
        say.print(f"📨 NotificationDelivered to {who(STAFF.id)} by webhook: {notice.get('subject', '')}")
    await api.send(CompleteTask(district=api.district, actor=STAFF, task_id=task_id,
                                summary="充电棚投入使用,40个充电位全部可用,已通过消防验收。"))
    say.print(f"✅ TaskCompleted: {who(STAFF.id)} declares {task_id} done")
    inspectors = (SUPERVISOR.id, "supervisor-02", "supervisor-03", "supervisor-04", "supervisor-05")
    await api.send(RecordInspection(district=api.district, actor=SUPERVISOR, resolution_id=resolution_id,
                                    task_id=task_id, inspector_ids=inspectors,
                                    aspects=(InspectionAspect.QUALITY, InspectionAspect.SPENDING),
                                    finding=InspectionFinding.SATISFACTORY, notes="符合三项验收标准。"))
    await api.until("the task passing inspection", "oversight", f"tasks/{task_id}", lambda t: t["status"] == "passed")
    say.print(f"🔍 InspectionRecorded: the five-person group led by {who(SUPERVISOR.id)} finds it satisfactory; "
              "the task passes")
    year = (await api.now()).year
    await api.send(RecordSatisfaction(district=api.district, actor=WORKER, resolution_id=resolution_id,
                                      review_meeting_id=f"review-xikang-{year}", year=year, satisfied=58,
                                      basically_satisfied=9, dissatisfied=3))
    say.print("⭐ SatisfactionRated at the yearly review: 58 satisfied, 9 basically satisfied, 3 dissatisfied")
    return resolution_id


AUDITED = ("ProposalRaised", "ProposalPublished", "MotionSeconded", "ObjectionLodged", "StatementMade",
           "VoteRequested", "VoteOpened", "BallotAccepted", "VoteClosed", "ProposalDecided", "ResolutionRegistered",
           "TaskAssigned", "TaskAccepted", "ProgressReported", "TaskStalled", "ReminderDue", "TaskCompleted",
           "InspectionRecorded", "SatisfactionRated")
"""What the audit trail of the story's resolution must show."""


async def audit(api: Api, resolution_id: str, say: Console) -> dict:
    """Wait for the resolution's audit trail to hold every step of the story, and show it."""
    trail = await api.until("the complete audit trail", "oversight", f"resolutions/{resolution_id}/audit",
                            lambda t: set(AUDITED) <= {s["type"] for s in t["steps"]})
    table = Table(title=f"audit trail of {resolution_id}: who did what, when")
    for column in ("when (UTC)", "source", "what", "who", "as"):
        table.add_column(column)
    for step in trail["steps"]:
        table.add_row(step["occurred_at"][11:19], step["source"], step["type"], who(step["actor_id"]),
                      step["actor_role"])
    say.print(table)
    say.print(f"🧾 audit trail: {len(trail['steps'])} steps, "
              f"{len({s['actor_id'] for s in trail['steps']})} actors named")
    return trail


async def tell(urls: Mapping[str, str], say: Console, *, district: str = DEMO_DISTRICT, timeout: float = 45.0,
               inbox: WebhookInbox | None = None, auth: httpx.Auth | None = None) -> dict:
    """The whole story, from a new council to the audit trail; returns the audit trail.
    ``auth`` as for :class:`Api`. On a platform whose clock can run a seven-day notice out
    within half the ``timeout`` (the rehearsal clock of ``yishi run --demo``), the council
    asks for one and the vote stays open a month; on the wall clock, the tests' platforms,
    it asks for none, the notice lasts seconds and the vote ten minutes."""
    tag = uuid.uuid4().hex[:6]  # fresh ids: the story can be told again on the same platform
    async with Api(urls, district, timeout=timeout, auth=auth) as api:
        say.rule(f"议事 demo in district {district}")
        factor = (await api.clock())["factor"]
        real_periods = timedelta(days=NOTICE_DAYS).total_seconds() / factor <= timeout / 2
        councils = await form_councils(api, tag, say, notice_period_days=NOTICE_DAYS if real_periods else 0)
        proposal_id = f"prop-xikang-{tag}"
        # Half a day more than the rule: at this speed the clock runs on while the command travels.
        notice = timedelta(days=NOTICE_DAYS, hours=12) if real_periods else timedelta(seconds=NOTICE_S)
        await raise_and_deliberate(api, councils, proposal_id, say, notice=notice)
        await vote(api, councils, proposal_id, f"vote-{tag}", say,
                   open_for=timedelta(days=VOTE_DAYS) if real_periods else timedelta(minutes=10))
        resolution_id = await deliver(api, councils, proposal_id, say, inbox)
        trail = await audit(api, resolution_id, say)
        if "portal" in urls:
            await roadmap(api, urls["portal"], resolution_id, say)
        say.rule("the story is complete")
        return trail


async def roadmap(api: Api, portal: str, resolution_id: str, say: Console) -> str:
    """Wait for the portal's public roadmap of the story's community to show the
    resolution, and give its link (the last line of the story)."""
    url = f"{portal}/{api.district}/communities/{COMMUNITY}"
    deadline = time.monotonic() + api.timeout
    while f'data-resolution="{resolution_id}"' not in (page := await api._http.get(url)).text:
        if time.monotonic() > deadline:
            raise DemoFailed(f"the portal's roadmap did not show {resolution_id} within {api.timeout:.0f}s "
                             f"(last answer {page.status_code})")
        await asyncio.sleep(0.2)
    say.print(f"🗺  the outcome roadmap, public, no login: {url}", soft_wrap=True)
    return url


async def escalate(api: Api, councils: Councils, proposal_id: str, say: Console) -> dict:
    """Pass a proposal to the street council; returns the proposal as it then stands."""
    await api.send(EscalateProposal(district=api.district, actor=WORKER, proposal_id=proposal_id,
                                    reason="涉及市政管网改造,超出社区能力。"))
    proposal = await api.until("the escalation", "proposals", f"proposals/{proposal_id}",
                               lambda p: p["council_id"] == councils.street)
    say.print(f"⤴️  ProposalEscalated: {proposal_id} goes to the street council {councils.street}")
    return proposal


# --- running it ------------------------------------------------------------------------------


def run(urls: Mapping[str, str], console: Console, *, district: str = DEMO_DISTRICT) -> None:
    """Tell the story (blocking) with a webhook inbox of its own; :class:`DemoFailed` on a missed step."""
    with WebhookInbox() as inbox:
        asyncio.run(tell(urls, console, district=district, inbox=inbox))


class Background:
    """The story told on a thread, so ``yishi run`` keeps watching its processes (and
    Ctrl-C) meanwhile."""

    def __init__(self, urls: Mapping[str, str], console: Console) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._tell, args=(urls, console), daemon=True, name="demo")
        self._thread.start()

    def _tell(self, urls: Mapping[str, str], console: Console) -> None:
        try:
            run(urls, console)
        except Exception as exc:  # reported by the owner of the thread
            self.error = exc

    def done(self) -> bool:
        """Whether the story has ended (well or not: see ``error``)."""
        return not self._thread.is_alive()


__all__ = ["Api", "Background", "DemoFailed", "WebhookInbox", "service_env", "tell", "urls_from"]
