"""Shared pieces of the public contracts: base classes, value types, enums and replies.

Reading policy, deliberately different for the two directions of traffic:

* **Events and replies are read tolerantly** (``extra="ignore"``, also on every nested
  value type): a consumer running older code ignores fields a newer producer added, so
  additive optional fields never need a version bump and never stop a consumer.
* **Commands are strict** (``extra="forbid"``): a misspelt field in a district system's
  command is rejected with ``invalid_command`` instead of being silently dropped. Nested
  value types are shared with events and keep their tolerant policy in the models; the
  input edges (``registry.decode`` of a command, ``yishi.commands``' HTTP route) validate
  commands with ``extra="forbid"``, so an unknown nested field is refused there too.

Everything is frozen: a message is a fact or a request as it was sent. Money is an
integer number of fen (分, 1/100 CNY) so sums are exact; times are timezone-aware.

**Values are checked at the input edge** (see "Values" in ``contracts/README.md``): while
a :class:`Command` is validated, over HTTP or from a command topic, the value types below
also refuse what the store cannot hold or the domain cannot compute with (NUL, lone
surrogates, invisible-only or self-disguising text, integers given as strings, floats or
booleans, amounts and counts beyond their ceilings, times outside 2000-2200). The same
types read events without these checks: stored and published history is replayed as it
was written, and a check added later must never make an old event unreadable.
"""

from __future__ import annotations

import fractions
import unicodedata
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

# --- input checks -------------------------------------------------------------------

_CHECKING_INPUT: ContextVar[bool] = ContextVar("contracts_checking_input", default=False)
"""True while a Command is validated: the value types then apply their input checks.
A context variable rather than separate command types, so that a command and the event
recording it share their nested values (``VoteTerms``, ``Implementer`` …) and compare equal."""


def on_input(check: Callable[[Any], Any]) -> AfterValidator:
    """An after-validator running ``check`` only while a command is validated."""
    return AfterValidator(lambda value: check(value) if _CHECKING_INPUT.get() else value)


_JSON_KINDS = {str: "a string", float: "a number with a fraction or an exponent", bool: "a boolean",
               type(None): "null", list: "an array", dict: "an object"}


def _json_integer(value: Any) -> Any:
    """Commands give integers as JSON integers: not ``"100"``, ``1.0``, ``0.5`` or ``true``."""
    if _CHECKING_INPUT.get() and type(value) is not int:
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise PydanticCustomError("int_type", "Input should be a JSON integer, not {kind}", {"kind": kind})
    return value


JsonInteger = BeforeValidator(_json_integer)
"""Marks an ``int`` that commands must give as a JSON integer; put it after the ``Field``
bounds (``Annotated[int, Field(ge=0), JsonInteger]``) so they stay JSON Schema keywords."""


def _at_most(ceiling: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value > ceiling:
            raise PydanticKnownError("less_than_equal", {"le": ceiling})
        return value
    return check


MAX_FEN = 10**12
"""Ceiling of an amount in a command: 10^12 fen = 10 billion CNY, far below PostgreSQL's
bigint (2^63 - 1) even when many amounts are summed."""
MAX_COUNT = 10**8
"""Ceiling of a count of people in a command (an electorate, ratings): more than any
district's population, far below PostgreSQL's integer."""
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""Times in commands lie in [EARLIEST, LATEST): the years of the funds (2000-2200), and
every date library and database the platform uses can hold them in any time zone."""


def _in_window(value: datetime) -> datetime:
    # The year test first: arithmetic on year 1 or 9999 in a far time zone can overflow.
    if not (EARLIEST.year - 1 <= value.year <= LATEST.year and EARLIEST <= value < LATEST):
        raise PydanticCustomError("datetime_window",
                                  "Input should be from 2000-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z")
    return value


_BIDI_OPENERS = {"\u202a": "embedding", "\u202b": "embedding", "\u202d": "embedding", "\u202e": "embedding",
                 "\u2066": "isolate", "\u2067": "isolate", "\u2068": "isolate"}
_BIDI_CLOSERS = {"\u202c": "embedding", "\u2069": "isolate"}
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # letters and symbols that render as nothing
# Controls, format characters (zero-width, bidi), spaces, and combining marks, which show
# nothing without a base character to sit on.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def _storable(value: str) -> str:
    """Refuse what PostgreSQL text and UTF-8 cannot hold: NUL and lone surrogates."""
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "Input should not contain NUL (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("string_surrogate", "Input should not contain a lone surrogate (at {position})",
                                  {"position": exc.start}) from None
    return value


def _visible(value: str) -> str:
    if all(ch in _BLANK or unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in value):
        raise PydanticCustomError("string_invisible",
                                  "Input should contain a visible character, not only spaces or invisible ones")
    return value


def _one_line(value: str) -> str:
    """A title, name or label: storable, visible, no control characters (line breaks
    included) and no bidi embedding, override or isolate, so it cannot disguise itself
    (reverse a word, hide an id) nor leak its direction into the page around it."""
    _storable(value)
    for position, ch in enumerate(value):
        if ch in _BIDI_OPENERS or ch in _BIDI_CLOSERS:
            raise PydanticCustomError(
                "string_bidi_control",
                "Input should not contain bidi embedding, override or isolate controls ({char} at {position})",
                {"char": f"U+{ord(ch):04X}", "position": position})
        if unicodedata.category(ch) == "Cc":
            raise PydanticCustomError("string_control", "Input should not contain control characters "
                                      "({char} at {position})", {"char": f"U+{ord(ch):04X}", "position": position})
    return _visible(value)


def _long_text(value: str) -> str:
    """A text: storable, visible, tabs and line breaks but no other control character;
    bidi controls only balanced within each line, so that quoted right-to-left script
    (Uyghur, Arabic) can be isolated as Unicode recommends while nothing reorders the
    rest of the line or the page around it (the "Trojan Source" trick)."""
    _storable(value)
    open_: list[str] = []
    for position, ch in enumerate(value):
        if ch in "\n\r" or ch == "\u2029":
            if open_:
                break
            continue
        if ch in _BIDI_OPENERS:
            open_.append(_BIDI_OPENERS[ch])
        elif ch in _BIDI_CLOSERS:
            if not open_ or open_.pop() != _BIDI_CLOSERS[ch]:
                raise PydanticCustomError("string_bidi_unbalanced", "Input should close bidi controls in the order "
                                          "they were opened ({char} at {position})",
                                          {"char": f"U+{ord(ch):04X}", "position": position})
        elif ch != "\t" and unicodedata.category(ch) == "Cc":
            raise PydanticCustomError("string_control", "Input should not contain control characters other than "
                                      "tab and line breaks ({char} at {position})",
                                      {"char": f"U+{ord(ch):04X}", "position": position})
    if open_:
        raise PydanticCustomError("string_bidi_unbalanced",
                                  "Input should close every bidi embedding, override or isolate on its line")
    return _visible(value)


# Must accept exactly what yishi.names.check_district accepts (a unit test compares them):
# the district is part of every topic name.
DISTRICT_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"

District = Annotated[
    str,
    StringConstraints(pattern=DISTRICT_PATTERN),
    Field(description="District slug; also the first part of every topic name.", examples=["gulou"]),
]
# Ids travel as Kafka keys, ce_subject and URL path segments: no spaces, no slashes.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}"
Id = Annotated[
    str,
    StringConstraints(pattern=f"^{ID_PATTERN}$"),
    Field(examples=["gulou-ninghai-2026-017"]),
]


class PlatformChosen:
    """Marks a command's field that names what the command creates: the caller may
    choose the id (for idempotency of its own) or leave it out, and the platform then
    chooses one and names it in the reply (:mod:`yishi.ids`). ``derive``, when given,
    computes the omitted id from the command itself (a public rule such as
    ``resolution_id_for``) instead of drawing a new one."""

    def __init__(self, derive: Callable[[Any], str] | None = None) -> None:
        self.derive = derive

    def __repr__(self) -> str:
        return f"PlatformChosen(derive={self.derive!r})" if self.derive else "PlatformChosen()"


NewId = Annotated[
    Id | None,
    PlatformChosen(),
    Field(description="The new id; chosen by the caller, or left out (or null) and then chosen by the platform, "
          "named in the reply's `ids`."),
]
"""The type of a command's new id; declare it with ``= None``."""


def new_id_fields(model: type[BaseModel]) -> dict[str, PlatformChosen]:
    """The fields of ``model`` marked :data:`NewId` (or :class:`PlatformChosen`), with their mark."""
    return {name: mark for name, info in model.model_fields.items()
            for mark in info.metadata if isinstance(mark, PlatformChosen)}


Title = Annotated[
    str, StringConstraints(min_length=1, max_length=200), on_input(_one_line),
    Field(description="One line of human text (a title, name, label or question). In commands: not only "
          "invisible characters; no control characters, no bidi embeddings, overrides or isolates.",
          examples=["在3号院增设电动自行车充电棚"]),
]
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=20_000), on_input(_long_text),
    Field(description="Human text, possibly several lines. In commands: not only invisible characters; no "
          "control characters but tab and line breaks; bidi controls only balanced within a line.",
          examples=["车棚选址在3号院东侧空地。"]),
]
Storable = on_input(_storable)
"""Marks a ``str`` that is no human text of its own: in commands no NUL and no lone
surrogate. Put it after the constraints, so they stay JSON Schema keywords."""
Uri = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9+.-]*:\S+$", max_length=2048),
    Storable,
    Field(examples=["https://files.gulou.example/evidence/0017.jpg"]),
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$"), Field(examples=["0" * 64])]
MediaType = Annotated[str, StringConstraints(pattern=r"^[\w.+-]+/[\w.+-]+$"), Field(examples=["image/jpeg"])]
TypeName = Annotated[str, StringConstraints(min_length=1, max_length=200), Storable,
                     Field(examples=["RaiseProposal"])]
CorrelationId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    Field(description="Chosen by whoever starts an exchange; copied onto everything it causes.",
          examples=["wx-7f3c2a9e"]),
]
Fen = Annotated[int, Field(ge=0, description="Amount in fen (分), 1/100 CNY; in commands at most "
                            "10^12 (10 billion CNY)."), JsonInteger, on_input(_at_most(MAX_FEN))]
Percent = Annotated[int, Field(ge=0, le=100), JsonInteger]
Count = Annotated[int, Field(ge=0, description="In commands at most 10^8."), JsonInteger,
                  on_input(_at_most(MAX_COUNT))]
Moment = Annotated[
    AwareDatetime, on_input(_in_window),
    Field(description="In commands from 2000-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z."),
]
"""A point in time with its UTC offset; in commands within [EARLIEST, LATEST)."""


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
    QUESTION = "question"  # a question no service acts on (a poll, a priority order): opened with OpenVote
    SLATE = "slate"  # confirmation of a slate of representatives, all in one vote


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
    size: Annotated[int, Field(gt=0, description="In commands at most 10^8."), JsonInteger,
                    on_input(_at_most(MAX_COUNT))]
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


class Share(Value):
    """An exact share of a whole, ``numerator/denominator`` (two thirds: 2 and 3), from 0 to 1."""

    numerator: Annotated[int, Field(ge=0, le=10**6), JsonInteger]
    denominator: Annotated[int, Field(gt=0, le=10**6), JsonInteger]

    @model_validator(mode="after")
    def _at_most_one(self) -> Share:
        if self.numerator > self.denominator:
            raise ValueError("a share is at most 1: numerator <= denominator")
        return self

    @property
    def fraction(self) -> fractions.Fraction:
        """The share as an exact :class:`fractions.Fraction`."""
        return fractions.Fraction(self.numerator, self.denominator)


def quorum_of(percent: int | None, share: Share | None) -> fractions.Fraction:
    """The exact quorum of a vote or a council's rules: ``share`` when given, else ``percent``/100."""
    return share.fraction if share is not None else fractions.Fraction(percent or 0, 100)


class VoteTerms(Value):
    """Everything that fixes how a vote is run; requested by proposals, opened by voting.

    The quorum is given once: as a whole percent (``quorum_percent``) or exactly
    (``quorum``, e.g. two thirds); ``contracts/README.md`` "Voting rules" defines each rule.
    """

    question: Title
    electorate: Electorate
    method: VotingMethod
    majority: MajorityRule
    quorum_percent: Percent | None = Field(
        default=None, description="Share of the electorate that must cast a ballot, in whole percent. "
        "Give this or `quorum` (both only if equal).")
    quorum: Share | None = Field(
        default=None, description="The same share exactly, e.g. {\"numerator\": 2, \"denominator\": 3}. "
        "Give this or `quorum_percent` (both only if equal).")
    secrecy: Secrecy
    closes_at: Moment
    opens_at: Moment | None = Field(
        default=None, description="When ballots are first accepted; absent: as soon as the vote opens.")
    ballot_changes_allowed: bool = Field(
        default=False, description="Whether a voter may replace their ballot until the vote closes.")
    options: tuple[VoteOption, ...] | None = Field(
        default=None, description="The options of an approval vote (majority `approval`), at least two.")
    verifiable: bool | None = Field(
        default=None, description="Secret votes: each voter gets a tracking code, and the close publishes the "
        "board (codes and choices, no voter) and who took part, so anyone recounts (contracts/README.md "
        "\"Verifiable secret ballots\"). Absent: on for secret votes; `false` turns it off. Open votes ignore "
        "it: they publish who voted how.")

    @model_validator(mode="after")
    def _one_quorum(self) -> VoteTerms:
        if self.quorum_percent is None and self.quorum is None:
            raise ValueError("a vote needs a quorum: quorum_percent (whole percent) or quorum (an exact share)")
        if self.quorum is not None and self.quorum_percent is not None \
                and self.quorum.fraction != fractions.Fraction(self.quorum_percent, 100):
            raise ValueError("quorum_percent and quorum disagree: give one of them")
        return self

    @property
    def publishes_board(self) -> bool:
        """Whether the vote publishes its board of tracking codes (a secret vote, unless turned off)."""
        return self.secrecy == Secrecy.SECRET and self.verifiable is not False

    @property
    def quorum_share(self) -> fractions.Fraction:
        """The quorum as an exact fraction of the electorate."""
        return quorum_of(self.quorum_percent, self.quorum)


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
    COUNCIL_RULE = "council_rule"  # the requested vote's terms break a rule of the council (named in the message)
    # an OpenVote on a proposal or a nomination: their votes are requested with RequestVote
    VOTE_REQUESTED_THROUGH_PROPOSALS = "vote_requested_through_proposals"


class Event(Contract):
    """Base of integration events: a fact, who brought it about and when.

    Tolerant reader: unknown fields from newer producers are ignored.
    """

    model_config = ConfigDict(extra="ignore")

    actor: Actor
    occurred_at: AwareDatetime


class Command(Contract):
    """Base of commands: a request from ``actor``; answered by a reply on the replies topic.

    Strict: unknown top-level fields are rejected, and every value type applies its input
    checks (see the module docstring) to the whole command, nested values included.
    """

    model_config = ConfigDict(extra="forbid")

    actor: Actor

    @model_validator(mode="wrap")
    @classmethod
    def _checked_as_input(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        token = _CHECKING_INPUT.set(True)
        try:
            return handler(data)
        finally:
            _CHECKING_INPUT.reset(token)


class CommandAccepted(Event):
    """A command was carried out (or had already been: redelivered commands are answered again)."""

    correlation_id: CorrelationId = Field(description="The command's ce_correlationid.")
    command_type: TypeName
    subject: Id = Field(description="The aggregate the command addressed.")
    ids: dict[str, Id] = Field(
        default_factory=dict, description="The ids the platform chose for new-id fields the command left out, by "
        "field name; empty when the caller chose them all.",
        examples=[{"proposal_id": "proposal-5d41402abc4b2a76b9719d91"}])


class CommandRejected(Event):
    """A command was refused; nothing changed."""

    correlation_id: CorrelationId = Field(description="The command's ce_correlationid.")
    command_type: TypeName
    subject: Id | None = Field(default=None, description="The aggregate addressed, when the command was readable.")
    reason: RejectionReason
    message: Text = Field(description="Human-readable explanation, for logs and operators.")
