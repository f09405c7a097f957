"""Shared pieces of the public contracts: base classes, value types, enums and replies.

Reading policy, deliberately different for the two directions of traffic:

* **Events and replies are read tolerantly** (``extra="ignore"``, also on every nested
  value type): a consumer running older code ignores fields a newer producer added, so
  additive optional fields never need a version bump and never stop a consumer.
* **Commands are strict at the top level** (``extra="forbid"``): a misspelt field in a
  district system's command is rejected with ``invalid_command`` instead of being
  silently dropped. Nested value types are shared with events and keep their policy.

Everything is frozen: a message is a fact or a request as it was sent. Money is an
integer number of fen (分, 1/100 CNY) so sums are exact; times are timezone-aware.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Must accept exactly what yishi.names.check_district accepts (a unit test compares them):
# the district is part of every topic name.
DISTRICT_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"

District = Annotated[
    str,
    StringConstraints(pattern=DISTRICT_PATTERN),
    Field(description="District slug; also the first part of every topic name.", examples=["gulou"]),
]
# Ids travel as Kafka keys, ce_subject and URL path segments: no spaces, no slashes.
Id = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$"),
    Field(examples=["gulou-ninghai-2026-017"]),
]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200), Field(examples=["在3号院增设电动自行车充电棚"])]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000), Field(examples=["车棚选址在3号院东侧空地。"])]
Uri = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9+.-]*:\S+$", max_length=2048),
    Field(examples=["https://files.gulou.example/evidence/0017.jpg"]),
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$"), Field(examples=["0" * 64])]
MediaType = Annotated[str, StringConstraints(pattern=r"^[\w.+-]+/[\w.+-]+$"), Field(examples=["image/jpeg"])]
TypeName = Annotated[str, StringConstraints(min_length=1, max_length=200), Field(examples=["RaiseProposal"])]
CorrelationId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    Field(description="Chosen by whoever starts an exchange; copied onto everything it causes.",
          examples=["wx-7f3c2a9e"]),
]
Fen = Annotated[int, Field(ge=0, description="Amount in fen (分), 1/100 CNY.")]
Percent = Annotated[int, Field(ge=0, le=100)]
Count = Annotated[int, Field(ge=0)]


class Value(BaseModel):
    """Base of nested value types; tolerant like events because events embed them."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Contract(BaseModel):
    """Base of every message body: every event, command and reply names its district."""

    model_config = ConfigDict(frozen=True)

    district: District


class CouncilLevel(StrEnum):
    """The five levels councils (议事会) exist at; unresolved matters go one level up."""

    BUILDING = "building"  # 楼院
    COMPOUND = "compound"  # 小区
    COMMUNITY = "community"  # 社区
    STREET = "street"  # 街道
    DISTRICT = "district"  # 区


class Role(StrEnum):
    """The capacity in which an actor acts."""

    RESIDENT = "resident"
    COUNCIL_MEMBER = "council_member"  # holds a seat; Actor.seat_id says which
    COMMUNITY_WORKER = "community_worker"  # 社工: convenes councils, keeps the record
    CHAIR = "chair"  # chairs a session, e.g. the rotating chair of a consultation day
    EXPERT = "expert"  # 议事能手 or an invited specialist
    IMPLEMENTER = "implementer"  # staff of an implementer delivering a task
    SUPERVISOR = "supervisor"  # 监事, member of an inspection group
    OFFICIAL = "official"  # street or district government staff
    DISTRICT_ADMIN = "district_admin"  # keeps the district's councils, catalogue and funds set up
    AUDITOR = "auditor"  # reads everything in their district, changes nothing
    INTEGRATION = "integration"  # a district system's service account
    SYSTEM = "system"  # the platform itself (timers, tallies); never granted to a caller


class Actor(Value):
    """Who did something, and in which capacity."""

    id: Id
    role: Role
    seat_id: Id | None = Field(default=None, description="The council seat acted from, for council members.")


class Attachment(Value):
    """A document or photo kept elsewhere, pinned by its hash so the record stays verifiable."""

    uri: Uri
    media_type: MediaType
    sha256: Sha256


class VoteMatterKind(StrEnum):
    """What a vote decides."""

    PROPOSAL = "proposal"
    NOMINATION = "nomination"  # confirmation of a nominated resident representative


class VoteMatter(Value):
    """The thing a vote decides, so the requesting service can act on the result."""

    kind: VoteMatterKind
    id: Id


class ElectorateKind(StrEnum):
    """Who is entitled to vote."""

    COUNCIL_MEMBERS = "council_members"
    RESIDENTS_MEETING = "residents_meeting"  # 居民会议
    RESIDENT_REPRESENTATIVES = "resident_representatives"
    HOUSEHOLDS = "households"  # one vote per household
    STAKEHOLDERS = "stakeholders"  # the invited stakeholders of one topic (邀约式)


class Electorate(Value):
    """The people entitled to vote and how many they are (the base of turnout and quorum)."""

    kind: ElectorateKind
    scope_id: Id = Field(description="The council, community or compound whose people vote.")
    size: Annotated[int, Field(gt=0)]
    roll: tuple[Id, ...] | None = Field(
        default=None,
        description="Explicit list of eligible voters (council votes); absent: the scope's resident register.",
    )

    @model_validator(mode="after")
    def _roll_matches_size(self) -> Electorate:
        if self.roll is not None and len(set(self.roll)) != self.size:
            raise ValueError("roll must list exactly `size` distinct voters")
        return self


class VotingMethod(StrEnum):
    """How ballots are cast."""

    SHOW_OF_HANDS = "show_of_hands"
    PAPER_BALLOT = "paper_ballot"
    ONLINE = "online"  # 云协商
    MIXED = "mixed"


class MajorityRule(StrEnum):
    """What counts as adopted, given a quorum."""

    SIMPLE = "simple"  # more in favour than against
    ABSOLUTE = "absolute"  # more than half of the electorate is in favour
    TWO_THIRDS = "two_thirds"  # at least two thirds of the ballots cast are in favour
    UNANIMITY = "unanimity"  # every ballot cast is in favour
    CONSENSUS = "consensus"  # some in favour and nobody against (abstaining is standing aside)
    APPROVAL = "approval"  # each voter approves any of several options; the most approved wins


class Secrecy(StrEnum):
    """Whether a voter's choice may be known."""

    OPEN = "open"
    SECRET = "secret"  # no stored or published link from voter to choice


class VoteOption(Value):
    """One of several options of an approval vote."""

    id: Id
    label: Title


class VoteTerms(Value):
    """Everything that fixes how a vote is run; requested by proposals, opened by voting."""

    question: Title
    electorate: Electorate
    method: VotingMethod
    majority: MajorityRule
    quorum_percent: Percent = Field(description="Share of the electorate that must cast a ballot.")
    secrecy: Secrecy
    closes_at: AwareDatetime
    opens_at: AwareDatetime | None = Field(
        default=None, description="When ballots are first accepted; absent: as soon as the vote opens.")
    ballot_changes_allowed: bool = Field(
        default=False, description="Whether a voter may replace their ballot until the vote closes.")
    options: tuple[VoteOption, ...] | None = Field(
        default=None, description="The options of an approval vote (majority `approval`), at least two.")


class RejectionReason(StrEnum):
    """Machine-readable reason a command was rejected."""

    UNKNOWN_COMMAND = "unknown_command"  # type not in the registry, or not a command
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"  # newer than the service knows
    INVALID_COMMAND = "invalid_command"  # does not match the command's schema
    WRONG_DISTRICT = "wrong_district"  # body, header and topic disagree on the district
    NOT_AUTHORISED = "not_authorised"  # the actor's role or seat may not do this
    NOT_FOUND = "not_found"  # the addressed council, proposal, vote, task … does not exist
    ALREADY_EXISTS = "already_exists"  # the new id is taken by something different
    INVALID_STATE = "invalid_state"  # not allowed at this stage (e.g. seconding before publication)
    DUPLICATE = "duplicate"  # this actor already did it (a second ballot, a second seconding)
    NOT_ELIGIBLE = "not_eligible"  # not in the electorate
    DEADLINE_PASSED = "deadline_passed"  # vote closed, notice period over
    OVER_BUDGET = "over_budget"  # spending beyond the allocation
    CONFLICT = "conflict"  # concurrent change; retrying the same command is safe
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"  # the caller's key was used before for another request


class Event(Contract):
    """Base of integration events: a fact, who brought it about and when.

    Tolerant reader: unknown fields from newer producers are ignored.
    """

    model_config = ConfigDict(extra="ignore")

    actor: Actor
    occurred_at: AwareDatetime


class Command(Contract):
    """Base of commands: a request from ``actor``; answered by a reply on the replies topic.

    Strict: unknown top-level fields are rejected.
    """

    model_config = ConfigDict(extra="forbid")

    actor: Actor


class CommandAccepted(Event):
    """A command was carried out (or had already been: redelivered commands are answered again)."""

    correlation_id: CorrelationId = Field(description="The command's ce_correlationid.")
    command_type: TypeName
    subject: Id = Field(description="The aggregate the command addressed.")


class CommandRejected(Event):
    """A command was refused; nothing changed."""

    correlation_id: CorrelationId = Field(description="The command's ce_correlationid.")
    command_type: TypeName
    subject: Id | None = Field(default=None, description="The aggregate addressed, when the command was readable.")
    reason: RejectionReason
    message: Text = Field(description="Human-readable explanation, for logs and operators.")
