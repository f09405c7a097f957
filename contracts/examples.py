"""Example messages built from the models, so they are valid by construction.

* :func:`sample` gives a deterministic valid instance of any contract model, for tests
  (every optional field filled, so every field is exercised).
* :func:`worked_example` is one proposal's journey from a resident's idea to the
  satisfaction rating and closure, as the Kafka messages that carry it; the generator
  renders it into ``contracts/README.md``.
"""

from __future__ import annotations

import hashlib
import types
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from contracts import oversight, proposals, voting
from contracts.common import (
    Actor,
    Attachment,
    CommandAccepted,
    CommandRejected,
    Contract,
    Electorate,
    ElectorateKind,
    MajorityRule,
    RejectionReason,
    Role,
    Secrecy,
    Share,
    VoteMatter,
    VoteMatterKind,
    VoteTerms,
    VotingMethod,
)
from contracts.envelope import Envelope
from contracts.registry import Kind, encode, spec, to_envelope, topic
from yishi.names import source

M = TypeVar("M", bound=BaseModel)
SAMPLE_TIME = datetime(2026, 3, 2, 9, 15, tzinfo=timezone(timedelta(hours=8)))


def sample(model: type[M]) -> M:
    """A valid instance of ``model`` with every field set, from the types' ``examples``.

    A string type without examples is an error on purpose: every string field of the
    contracts should use a documented type from ``contracts.common`` or its module.
    """
    values = {name: _value(f.annotation, f.metadata, f.examples) for name, f in model.model_fields.items()}
    return model.model_validate(values)


def _value(annotation: Any, metadata: list[Any], examples: list[Any] | None) -> Any:
    if examples:
        return examples[0]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        inner = [m for m in args[1:] if isinstance(m, FieldInfo)]
        found = next((m.examples for m in inner if m.examples), None)
        return _value(args[0], [*metadata, *args[1:], *(x for m in inner for x in m.metadata)], found)
    if origin in (Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)), metadata, None)
    if origin is tuple:
        return (_value(args[0], [], None),)
    if origin is dict:
        return {_value(args[0], [], None): _value(args[1], [], None)}
    if origin is Literal:
        return args[0]
    if annotation in (datetime, AwareDatetime):
        return SAMPLE_TIME
    if annotation is bool:
        return True
    if annotation in (int, float, Decimal):
        low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
        above = next((m.gt for m in metadata if isinstance(m, annotated_types.Gt)), None)
        return annotation(low if low is not None else above + 1 if above is not None else 1)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return next(iter(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sample(annotation)
    raise TypeError(f"no example value for {annotation!r}: give its type `examples`")


@dataclass(frozen=True)
class Step:
    """One message of the worked example and what it means."""

    caption: str
    topic: str
    envelope: Envelope


DISTRICT = "gulou"
MINI_PROGRAM = "/gulou/wechat-mini-program"  # the ce_source of the district's own system


def worked_example() -> list[Step]:
    """A proposal for an e-bike charging shed, from raise to satisfaction rating and closure."""
    steps: list[Step] = []

    def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
        return SAMPLE_TIME.replace(hour=hour, minute=minute) + timedelta(days=day)

    def send(
        caption: str,
        model: Contract,
        *,
        subject: str,
        time: datetime,
        cause: Envelope | None = None,
        correlation_id: str | None = None,
        answered_by: str | None = None,
    ) -> Envelope:
        """Record one message: a new exchange brings its correlation id, a caused one inherits it."""
        found = spec(encode(model).type)
        service = answered_by or found.service
        envelope = to_envelope(
            model,
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:yishi:example:{len(steps) + 1}")),
            source=MINI_PROGRAM if found.kind is Kind.COMMAND else source(DISTRICT, str(service)),
            subject=subject,
            time=time,
            correlation_id=cause.correlation_id if cause else str(correlation_id),
            causation_id=cause.id if cause else None,
        )
        steps.append(Step(caption, topic(found.name, DISTRICT, service), envelope))
        return envelope

    def platform(service: str) -> Actor:
        return Actor(id=f"yishi-{service}", role=Role.SYSTEM)

    proposer = Actor(id="resident-4211", role=Role.COUNCIL_MEMBER, seat_id="seat-rr-03")
    seconder = Actor(id="member-0932", role=Role.COUNCIL_MEMBER, seat_id="seat-lu-01")
    objector = Actor(id="resident-5120", role=Role.RESIDENT)
    expert = Actor(id="expert-0007", role=Role.EXPERT, seat_id="seat-ex-01")
    worker = Actor(id="worker-0102", role=Role.COMMUNITY_WORKER)
    implementer = Actor(id="staff-2201", role=Role.IMPLEMENTER)
    inspector = Actor(id="supervisor-01", role=Role.SUPERVISOR)
    council, proposal, vote = "council-xikang", "prop-xikang-2026-017", "vote-xikang-2026-017"
    resolution, task = "res-xikang-2026-017", "task-xikang-2026-017-1"
    title = "在3号院增设电动自行车集中充电棚"
    summary = "3号院电动自行车在楼道充电,存在火灾隐患。建议在院内东侧空地建集中充电棚,约40个充电位。"
    common = {"district": DISTRICT}

    raise_cmd = send(
        "A resident representative raises a proposal from the district's WeChat mini-program",
        proposals.RaiseProposal(
            **common, actor=proposer, proposal_id=proposal, council_id=council,
            catalogue_item_id="item-xikang-2026-03", title=title, summary=summary,
        ),
        subject=proposal, time=at(0), correlation_id="wx-7f3c2a9e",
    )
    send(
        "The proposal is on record",
        proposals.ProposalRaised(
            **common, actor=proposer, occurred_at=at(0), proposal_id=proposal, council_id=council,
            catalogue_item_id="item-xikang-2026-03", title=title, summary=summary,
        ),
        subject=proposal, time=at(0), cause=raise_cmd,
    )
    send(
        "The proposals service answers on its replies topic, matched by correlation id",
        CommandAccepted(
            **common, actor=platform("proposals"), occurred_at=at(0), correlation_id=raise_cmd.correlation_id,
            command_type=raise_cmd.type, subject=proposal,
        ),
        subject=proposal, time=at(0), cause=raise_cmd, answered_by="proposals",
    )
    send(
        "The community worker publishes it for a seven-day notice period (告知)",
        proposals.ProposalPublished(
            **common, actor=worker, occurred_at=at(1), proposal_id=proposal, council_id=council,
            form=proposals.ConsultationForm.CONSULTATION_DAY, notice_ends_at=at(8), session_at=at(10, 19),
        ),
        subject=proposal, time=at(1), correlation_id="grid-5521",
    )
    send(
        "A council member from a local unit seconds the motion (附议)",
        proposals.MotionSeconded(**common, actor=seconder, occurred_at=at(2), proposal_id=proposal, council_id=council),
        subject=proposal, time=at(2), correlation_id="wx-81d0be44",
    )
    send(
        "A ground-floor resident objects",
        proposals.ObjectionLodged(
            **common, actor=objector, occurred_at=at(4), proposal_id=proposal, council_id=council,
            objection_id="obj-017-1", grounds="充电棚紧邻1楼住户窗户,担心噪声和安全。",
        ),
        subject=proposal, time=at(4), correlation_id="wx-c41e0a73",
    )
    send(
        "At the session the proposer presents the motion (动议), the first of five steps",
        proposals.StatementMade(
            **common, actor=proposer, occurred_at=at(10, 19, 5), proposal_id=proposal, council_id=council,
            statement_id="stmt-017-1", step=proposals.DeliberationStep.MOTION,
            speaker_role=proposals.SpeakerRole.PROPOSER, text="说明楼道充电的隐患和选址方案。",
        ),
        subject=proposal, time=at(10, 19, 5), correlation_id="session-017",
    )
    send(
        "…seconding, objection and debate follow the same way; the expert comments last (议事能手)",
        proposals.StatementMade(
            **common, actor=expert, occurred_at=at(10, 20, 10), proposal_id=proposal, council_id=council,
            statement_id="stmt-017-5", step=proposals.DeliberationStep.EXPERT_COMMENT,
            speaker_role=proposals.SpeakerRole.EXPERT,
            text="建议充电棚向西移5米,离住户窗户8米以上,并加装烟感和自动断电装置。",
        ),
        subject=proposal, time=at(10, 20, 10), correlation_id="session-017",
    )
    members = tuple(f"member-{n:04d}" for n in range(1, 16))
    vote_request = proposals.VoteRequested(
        **common, actor=worker, occurred_at=at(10, 20, 30), vote_id=vote, council_id=council,
        matter=VoteMatter(kind=VoteMatterKind.PROPOSAL, id=proposal),
        terms=VoteTerms(
            question=f"是否同意{title}(按专家意见调整选址)?",
            electorate=Electorate(kind=ElectorateKind.COUNCIL_MEMBERS, scope_id=council, size=15, roll=members),
            method=VotingMethod.ONLINE, majority=MajorityRule.ABSOLUTE, quorum=Share(numerator=2, denominator=3),
            secrecy=Secrecy.SECRET, closes_at=at(12, 20),
        ),
    )
    requested = send(
        "The council refers the amended proposal to a secret online vote of its 15 members",
        vote_request,
        subject=proposal, time=at(10, 20, 30), correlation_id="session-017",
    )
    opened = send(
        "The voting service opens the vote it was asked for",
        voting.VoteOpened(
            **common, actor=platform("voting"), occurred_at=at(10, 20, 31), vote_id=vote, council_id=council,
            matter=vote_request.matter, terms=vote_request.terms,
        ),
        subject=vote, time=at(10, 20, 31), cause=requested,
    )
    ballot = send(
        "A member casts a ballot from the mini-program",
        voting.CastBallot(
            **common, actor=Actor(id="member-0007", role=Role.COUNCIL_MEMBER, seat_id="seat-rr-07"),
            vote_id=vote, ballot_id="ballot-6c1f", choice=voting.BallotChoice.IN_FAVOUR,
        ),
        subject=vote, time=at(11, 8, 2), correlation_id="wx-0b9d7e12",
    )
    send(
        "Accepted: the voter is named, the choice is not (secret vote)",
        voting.BallotAccepted(
            **common, actor=Actor(id="member-0007", role=Role.COUNCIL_MEMBER, seat_id="seat-rr-07"),
            occurred_at=at(11, 8, 2), vote_id=vote, ballot_id="ballot-6c1f",
        ),
        subject=vote, time=at(11, 8, 2), cause=ballot,
    )
    again = send(
        "The same member tries again",
        voting.CastBallot(
            **common, actor=Actor(id="member-0007", role=Role.COUNCIL_MEMBER, seat_id="seat-rr-07"),
            vote_id=vote, ballot_id="ballot-77a0", choice=voting.BallotChoice.AGAINST,
        ),
        subject=vote, time=at(11, 8, 5), correlation_id="wx-0b9d8f30",
    )
    send(
        "…and is refused with a machine-readable reason",
        CommandRejected(
            **common, actor=platform("voting"), occurred_at=at(11, 8, 5), correlation_id=again.correlation_id,
            command_type=again.type, subject=vote, reason=RejectionReason.DUPLICATE,
            message="member-0007 has already voted in vote-xikang-2026-017",
        ),
        subject=vote, time=at(11, 8, 5), cause=again, answered_by="voting",
    )
    closed = send(
        "The vote closes on time and is counted",
        voting.VoteClosed(
            **common, actor=platform("voting"), occurred_at=at(12, 20), vote_id=vote, council_id=council,
            matter=vote_request.matter, tally=voting.Tally(in_favour=11, against=2, abstain=1),
            electorate_size=15, turnout_percent=93.33, quorum_met=True, outcome=voting.VoteOutcome.ADOPTED,
        ),
        subject=vote, time=at(12, 20), cause=opened,
    )
    resolution_text = "在3号院东侧空地(距住户窗户8米以上)建设集中充电棚,设40个充电位,配烟感与自动断电装置。"
    decided = send(
        "The proposals service records the decision",
        proposals.ProposalDecided(
            **common, actor=platform("proposals"), occurred_at=at(12, 20, 1), proposal_id=proposal,
            council_id=council, vote_id=vote, decision=proposals.Decision.ADOPTED, title=title,
            catalogue_item_id="item-xikang-2026-03", resolution=resolution_text,
        ),
        subject=proposal, time=at(12, 20, 1), cause=closed,
    )
    send(
        "Oversight registers the resolution",
        oversight.ResolutionRegistered(
            **common, actor=platform("oversight"), occurred_at=at(12, 20, 2), resolution_id=resolution,
            proposal_id=proposal, council_id=council, catalogue_item_id="item-xikang-2026-03",
            title=title, text=resolution_text, budget_fen=8_600_000,
        ),
        subject=resolution, time=at(12, 20, 2), cause=decided,
    )
    send(
        "The task goes to a social organisation, with standards set beforehand (事前有标准)",
        oversight.TaskAssigned(
            **common, actor=worker, occurred_at=at(14), task_id=task, resolution_id=resolution,
            implementer=oversight.Implementer(
                kind=oversight.ImplementerKind.SOCIAL_ORGANISATION, id="org-green-home", name="鼓楼绿色家园服务中心",
            ),
            description="建设充电棚并完成消防验收。",
            acceptance_standards=("40个充电位全部可用", "通过消防验收", "距住户窗户不少于8米"),
            due_at=at(75, 18), budget_fen=8_600_000,
        ),
        subject=task, time=at(14), correlation_id="grid-5630",
    )
    send(
        "The implementer accepts",
        oversight.TaskAccepted(**common, actor=implementer, occurred_at=at(15), task_id=task, resolution_id=resolution),
        subject=task, time=at(15), correlation_id="org-0419",
    )
    send(
        "86,000 yuan of the community's micro-project fund are set aside (amounts in fen)",
        oversight.FundsAllocated(
            **common, actor=worker, occurred_at=at(16), allocation_id="alloc-2026-031", resolution_id=resolution,
            task_id=task, fund_id="fund-xikang-micro-2026", amount_fen=8_600_000, purpose="充电棚建设",
        ),
        subject="fund-xikang-micro-2026", time=at(16), correlation_id="grid-5702",
    )
    receipt = Attachment(
        uri="https://files.gulou.example/xikang/2026/017/progress-1.jpg", media_type="image/jpeg",
        sha256=hashlib.sha256(b"progress-1.jpg").hexdigest(),
    )
    send(
        "Progress is reported with photo evidence (过程有跟踪)",
        oversight.ProgressReported(
            **common, actor=implementer, occurred_at=at(30), task_id=task, resolution_id=resolution,
            percent_complete=40, summary="地基和棚架完成。", evidence=(receipt,),
        ),
        subject=task, time=at(30), correlation_id="org-0502",
    )
    stalled = send(
        "Three weeks without news: the stall timer fires",
        oversight.TaskStalled(
            **common, actor=platform("oversight"), occurred_at=at(51), task_id=task, resolution_id=resolution,
            last_progress_at=at(30), stalled_after_days=21,
        ),
        subject=task, time=at(51), correlation_id="timer-task-xikang-2026-017-1-stall",
    )
    send(
        "…and the implementer is reminded",
        oversight.ReminderDue(
            **common, actor=platform("oversight"), occurred_at=at(51), reminder_id="rem-017-1-1", task_id=task,
            resolution_id=resolution, kind=oversight.ReminderKind.STALLED, due_at=at(75, 18),
            recipient_id="staff-2201",
        ),
        subject=task, time=at(51), cause=stalled,
    )
    send(
        "Money is spent from the allocation",
        oversight.FundsSpent(
            **common, actor=implementer, occurred_at=at(60), expenditure_id="exp-2026-088",
            allocation_id="alloc-2026-031", resolution_id=resolution, task_id=task, amount_fen=8_235_000,
            payee="南京某电气工程有限公司", purpose="充电桩及棚体安装", receipt=receipt.model_copy(
                update={"uri": "https://files.gulou.example/xikang/2026/017/invoice-1.pdf",
                        "media_type": "application/pdf"},
            ), fund_id="fund-xikang-micro-2026",
        ),
        subject="fund-xikang-micro-2026", time=at(60), correlation_id="org-0611",
    )
    send(
        "The implementer declares the task done",
        oversight.TaskCompleted(
            **common, actor=implementer, occurred_at=at(70), task_id=task, resolution_id=resolution,
            summary="充电棚投入使用,40个充电位全部可用,已通过消防验收。", evidence=(receipt,),
        ),
        subject=task, time=at(70), correlation_id="org-0707",
    )
    send(
        "The five-person inspection group checks quality and spending (协约督事)",
        oversight.InspectionRecorded(
            **common, actor=inspector, occurred_at=at(72), inspection_id="insp-017-1", resolution_id=resolution,
            task_id=task, inspector_ids=tuple(f"supervisor-{n:02d}" for n in range(1, 6)),
            aspects=(oversight.InspectionAspect.QUALITY, oversight.InspectionAspect.SPENDING),
            finding=oversight.InspectionFinding.SATISFACTORY, notes="符合三项验收标准;支出8.235万元,有发票。",
        ),
        subject=task, time=at(72), correlation_id="insp-017-1",
    )
    send(
        "Residents rate the outcome at the yearly review meeting",
        oversight.SatisfactionRated(
            **common, actor=worker, occurred_at=at(290, 15), rating_id="rating-2026-017", resolution_id=resolution,
            review_meeting_id="review-xikang-2026", year=2026, satisfied=58, basically_satisfied=9, dissatisfied=3,
        ),
        subject=resolution, time=at(290, 15), correlation_id="review-xikang-2026",
    )
    send(
        "The file is closed and the result shown on the outcome roadmap (成果运用路线图)",
        oversight.ResolutionClosed(
            **common, actor=worker, occurred_at=at(291), resolution_id=resolution,
            reason=oversight.ClosureReason.DELIVERED, summary="充电棚建成并通过验收,满意度95.7%。",
        ),
        subject=resolution, time=at(291), correlation_id="grid-6120",
    )
    return steps
