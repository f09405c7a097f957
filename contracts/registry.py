"""The one registry of public message types, and the mapping between models and bytes.

Every type name (``ce_type``) maps to its owning service, its kind (event, command,
reply) and its schema versions. Producers call :func:`encode` (or :func:`to_envelope`);
consumers call :func:`decode`, which upcasts older versions to the newest model.

Decoding fails with one of three errors, each with a ``code`` for the dead-letter
record and a ``rejection`` reason for answering a command:

* :class:`UnknownEventType`: the type name is not in this registry (a newer producer,
  or a message on the wrong topic);
* :class:`UnsupportedSchemaVersion`: the version is newer than this code knows;
* :class:`InvalidPayload`: the body does not validate, or names another district.

Consumers park such messages on the dead-letter topic (``yishi.names.dead_letter_topic``)
instead of retrying them forever; command consumers also answer ``CommandRejected``.
See ``contracts/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from pydantic import ValidationError
from pydantic.config import ExtraValues

from contracts import notify, oversight, proposals, sessions, voting
from contracts.common import CommandAccepted, CommandRejected, Contract, RejectionReason
from contracts.envelope import Envelope
from yishi.names import SERVICES, commands_topic, events_topic, replies_topic

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the JSON body of version ``n`` into the JSON body of version ``n + 1``."""


class Kind(StrEnum):
    """What a message is, which decides its topic."""

    EVENT = "event"  # on {district}.{service}.events
    COMMAND = "command"  # on {district}.{service}.commands
    REPLY = "reply"  # on {district}.{service}.replies, written by every service


@dataclass(frozen=True)
class TypeSpec:
    """Everything known about one message type."""

    name: str
    kind: Kind
    service: str | None  # None for replies: every service writes them
    versions: Mapping[int, type[Contract]]
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)  # key n: version n → n + 1
    consumers: frozenset[str] = frozenset()  # other services that react to this event

    def __post_init__(self) -> None:
        # Checked at import so a version without its upcaster can never be deployed.
        latest = max(self.versions)
        if sorted(self.versions) != list(range(1, latest + 1)):
            raise ValueError(f"{self.name}: schema versions must be 1..{latest}, got {sorted(self.versions)}")
        if sorted(self.upcasters) != list(range(1, latest)):
            raise ValueError(f"{self.name}: needs exactly one upcaster from each version below {latest}")
        if (self.service is None) != (self.kind is Kind.REPLY) or (self.service and self.service not in SERVICES):
            raise ValueError(f"{self.name}: a {self.kind} needs an owning service, a reply has none")

    @property
    def latest(self) -> int:
        """The newest schema version; what :func:`decode` returns and producers write."""
        return max(self.versions)

    @property
    def model(self) -> type[Contract]:
        """The model of the newest version."""
        return self.versions[self.latest]


class ContractError(ValueError):
    """A message this code cannot turn into a model; never worth retrying as it is."""

    code: ClassVar[str]
    rejection: ClassVar[RejectionReason]


class UnknownEventType(ContractError):
    """The type name (``ce_type``) is not in the registry, or is not of the expected kind."""

    code = "unknown_type"
    rejection = RejectionReason.UNKNOWN_COMMAND


class UnsupportedSchemaVersion(ContractError):
    """The schema version (``ce_schemaversion``) is newer than this code knows, or not positive."""

    code = "unsupported_schema_version"
    rejection = RejectionReason.UNSUPPORTED_SCHEMA_VERSION


class InvalidPayload(ContractError):
    """The body does not validate against its schema, or names another district.

    ``errors`` lists ``(location, message)`` pairs, as in the exception text.
    """

    code = "invalid_payload"
    rejection = RejectionReason.INVALID_COMMAND

    def __init__(self, message: str, errors: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors

    @classmethod
    def from_validation(cls, what: str, exc: ValidationError) -> InvalidPayload:
        """Wrap a pydantic error as ``"<what>: <field>: <problem>; …"``."""
        errors = tuple((".".join(map(str, e["loc"])) or "(body)", e["msg"]) for e in exc.errors())
        return cls(f"{what}: " + "; ".join(f"{loc}: {msg}" for loc, msg in errors), errors)


# Which other services react to an event: the hand-offs that make one process out of four
# services (and what notify tells people about).
_CONSUMERS = {
    # proposals
    "CouncilFormed": {"oversight"},  # a resolution's community
    "ProposalRaised": {"notify", "oversight"},  # oversight: the audit trail
    "ProposalPublished": {"notify", "oversight"},
    "MotionSeconded": {"oversight"},
    "ObjectionLodged": {"oversight"},
    "StatementMade": {"oversight"},
    "VoteRequested": {"voting", "oversight"},
    "ProposalEscalated": {"oversight"},
    "ProposalWithdrawn": {"oversight"},
    "ProposalReturnedForReconsultation": {"oversight"},
    "ProposalDecided": {"oversight"},
    "MemberSeated": {"notify"},
    "MemberUnseated": {"notify"},
    # consultation sessions: notify tells their people; oversight counts them and their attendance
    "SessionScheduled": {"notify"},
    "SessionChairChanged": {"notify"},
    "SessionOpened": {"notify"},
    "SessionClosed": {"notify"},
    "StakeholderInvited": {"notify"},
    "AttendanceRecorded": {"oversight"},
    "SessionMinutesPublished": {"notify", "oversight"},
    # voting
    "VoteOpened": {"notify", "oversight"},
    "BallotAccepted": {"notify", "oversight"},
    "VoteClosed": {"proposals", "notify", "oversight"},
    # oversight
    "ReconsultationRequested": {"proposals"},
    "ResolutionRegistered": {"notify"},
    "TaskAssigned": {"notify"},
    "TaskAccepted": {"notify"},
    "TaskStalled": {"notify"},
    "ReminderDue": {"notify"},
    "InspectionRecorded": {"notify"},
    # notify: oversight shows on each task whether its reminders reached anyone
    "NotificationRequested": {"oversight"},
    "NotificationDelivered": {"oversight"},
    "NotificationFailed": {"oversight"},
}
# The portal (a reader: yishi.names.READERS) keeps a copy of these for its public pages;
# not ballots (a vote's page shows its closing counts only) nor reminders. Its consumers
# subscribe to this list (consumed_by("portal")): it is kept here only.
_PORTAL = ("CouncilFormed", "ProposalRaised", "ProposalPublished", "MotionSeconded", "ObjectionLodged",
           "StatementMade", "ProposalEscalated", "ProposalWithdrawn", "ProposalReturnedForReconsultation",
           "ProposalDecided", "VoteOpened", "VoteClosed", "ResolutionRegistered", "TaskAssigned", "TaskAccepted",
           "ProgressReported", "FundsAllocated", "FundsSpent", "TaskStalled", "TaskEscalated", "TaskCompleted",
           "InspectionRecorded", "SatisfactionRated", "ResolutionClosed", "FundEstablished", "SessionClosed",
           "AttendanceRecorded", "SessionMinutesPublished")
for _name in _PORTAL:
    _CONSUMERS.setdefault(_name, set()).add("portal")


def _types(service: str, kind: Kind, *models: type[Contract]) -> list[TypeSpec]:
    """Specs of types that have only ever had version 1."""
    return [
        TypeSpec(m.__name__, kind, service, {1: m}, consumers=frozenset(_CONSUMERS.get(m.__name__, ())))
        for m in models
    ]


_SPECS: tuple[TypeSpec, ...] = (
    *_types(
        "proposals", Kind.EVENT,
        proposals.CouncilFormed, proposals.MemberSeated, proposals.MemberUnseated,
        proposals.RepresentativeNominated, proposals.NominationPublicised,
        proposals.NominationConfirmed, proposals.NominationRejected,
        proposals.SlateNominated, proposals.SlateConfirmed, proposals.SlateRejected,
        proposals.CatalogueCategoryDefined, proposals.CatalogueItemAdded, proposals.CatalogueItemRetired,
        proposals.ProposalRaised, proposals.ProposalPublished, proposals.MotionSeconded,
        proposals.ObjectionLodged, proposals.StatementMade, proposals.VoteRequested,
        proposals.ProposalEscalated, proposals.ProposalWithdrawn,
        proposals.ProposalReturnedForReconsultation, proposals.ProposalDecided,
    ),
    *_types(
        "proposals", Kind.EVENT,
        sessions.ChairRotaSet, sessions.SessionScheduleSet, sessions.SessionScheduled,
        sessions.SessionChairChanged, sessions.AgendaItemAdded, sessions.StakeholderInvited,
        sessions.SessionOpened, sessions.AttendanceRecorded, sessions.SessionClosed,
        sessions.SessionMinutesPublished,
    ),
    *_types(
        "proposals", Kind.COMMAND,
        proposals.FormCouncil, proposals.SeatMember, proposals.UnseatMember,
        proposals.NominateRepresentative, proposals.PubliciseNomination, proposals.NominateSlate,
        proposals.DefineCatalogueCategory, proposals.AddCatalogueItem, proposals.RetireCatalogueItem,
        proposals.RaiseProposal, proposals.PublishProposal, proposals.SecondMotion,
        proposals.LodgeObjection, proposals.MakeStatement, proposals.RequestVote,
        proposals.EscalateProposal, proposals.WithdrawProposal,
        proposals.ReturnProposalForReconsultation,
    ),
    *_types(
        "proposals", Kind.COMMAND,
        sessions.SetChairRota, sessions.SetSessionSchedule, sessions.ScheduleSession,
        sessions.ChangeSessionChair, sessions.AddAgendaItem, sessions.InviteStakeholder,
        sessions.OpenSession, sessions.CheckIn, sessions.RecordAttendance, sessions.CloseSession,
        sessions.PublishMinutes,
    ),
    *_types("voting", Kind.EVENT, voting.VoteOpened, voting.BallotAccepted, voting.VoteClosed,
            voting.VoteBoardPublished, voting.VoteParticipants),
    *_types("voting", Kind.COMMAND, voting.OpenVote, voting.CastBallot, voting.CloseVote),
    *_types(
        "oversight", Kind.EVENT,
        oversight.ResolutionRegistered, oversight.TaskAssigned, oversight.TaskAccepted,
        oversight.ProgressReported, oversight.FundsSpent, oversight.TaskStalled,
        oversight.ReminderDue, oversight.TaskEscalated, oversight.TaskCompleted,
        oversight.InspectionRecorded, oversight.FollowUpInspectionScheduled,
        oversight.SatisfactionRated, oversight.ResolutionClosed, oversight.ReconsultationRequested,
        oversight.FundEstablished, oversight.ReminderPolicySet,
    ),
    TypeSpec(
        "FundsAllocated", Kind.EVENT, "oversight",
        {1: oversight.FundsAllocatedV1, 2: oversight.FundsAllocated},
        {1: oversight.upcast_funds_allocated_v1}, consumers=frozenset(_CONSUMERS.get("FundsAllocated", ())),
    ),
    *_types(
        "oversight", Kind.COMMAND,
        oversight.RegisterResolution, oversight.AssignTask, oversight.AcceptTask,
        oversight.ReportProgress, oversight.AllocateFunds, oversight.RecordSpending,
        oversight.EscalateTask, oversight.CompleteTask, oversight.RecordInspection,
        oversight.ScheduleFollowUpInspection, oversight.RecordSatisfaction,
        oversight.CloseResolution, oversight.RequestReconsultation,
        oversight.EstablishFund, oversight.SetReminderPolicy,
    ),
    *_types(
        "notify", Kind.EVENT,
        notify.NotificationRequested, notify.NotificationDelivered, notify.NotificationFailed,
    ),
    *_types("notify", Kind.COMMAND, notify.RequestNotification, notify.Subscribe, notify.Unsubscribe,
            notify.SetDefaultContact, notify.RemoveDefaultContact),
    TypeSpec("CommandAccepted", Kind.REPLY, None, {1: CommandAccepted}),
    TypeSpec("CommandRejected", Kind.REPLY, None, {1: CommandRejected}),
)

REGISTRY: Mapping[str, TypeSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""Every public message type by name, in a stable order (per service, events first)."""

_BY_MODEL: Mapping[type[Contract], tuple[str, int]] = {
    model: (s.name, version) for s in _SPECS for version, model in s.versions.items()
}


def spec(type_name: str, kind: Kind | None = None) -> TypeSpec:
    """The :class:`TypeSpec` of ``type_name``; :class:`UnknownEventType` if none (of ``kind``)."""
    found = REGISTRY.get(type_name)
    if found is None:
        raise UnknownEventType(f"unknown message type {type_name!r}")
    if kind is not None and found.kind is not kind:
        raise UnknownEventType(f"{type_name!r} is a {found.kind}, not a {kind}")
    return found


def consumed_by(service: str) -> dict[str, tuple[str, ...]]:
    """The events ``service`` consumes (those naming it among their ``consumers``), by the
    service that publishes them, in registry order: what it subscribes to, read from here
    so its wiring and the registry cannot drift apart."""
    consumed: dict[str, tuple[str, ...]] = {}
    for s in _SPECS:
        if s.kind is Kind.EVENT and service in s.consumers:
            consumed[s.service] = (*consumed.get(s.service, ()), s.name)
    return consumed


class Encoded(NamedTuple):
    """A model ready for an envelope: ``ce_type``, ``ce_schemaversion`` and the JSON body."""

    type: str
    schema_version: int
    data: bytes


def type_name(model_class: type[Contract]) -> str:
    """The registered type name (``ce_type``) of a model class."""
    try:
        return _BY_MODEL[model_class][0]
    except KeyError:
        raise UnknownEventType(f"{model_class.__name__} is not a registered contract model") from None


def encode(model: Contract) -> Encoded:
    """Serialise a registered model; its class decides the type name and version."""
    try:
        type_name, version = _BY_MODEL[type(model)]
    except KeyError:
        raise UnknownEventType(f"{type(model).__name__} is not a registered contract model") from None
    # The bytes model_dump_json() serialises and decodes to a str: the same JSON, without
    # decoding and encoding it again (each event the relay publishes or a replay translates).
    return Encoded(type_name, version, model.__pydantic_serializer__.to_json(model))


def input_extra(kind: Kind) -> ExtraValues | None:
    """How unknown fields of a received body are met: a command's are refused at every
    depth (a misspelt nested field, such as a vote's ``terms.quorum``, is never dropped);
    events and replies keep their models' tolerant reading."""
    return "forbid" if kind is Kind.COMMAND else None


def decode(envelope: Envelope, kind: Kind | None = None) -> Contract:
    """The newest-version model of an envelope's body, upcast if it was written by older code.

    ``kind`` restricts what is accepted (a command consumer passes ``Kind.COMMAND``).
    Raises :class:`UnknownEventType`, :class:`UnsupportedSchemaVersion` or
    :class:`InvalidPayload`.
    """
    found = spec(envelope.type, kind)
    version = envelope.schema_version
    what = f"{found.name} v{version}"
    if not 1 <= version <= found.latest:
        raise UnsupportedSchemaVersion(f"{what}: this code reads versions 1 to {found.latest}")
    try:
        model = found.versions[version].model_validate_json(envelope.data, extra=input_extra(found.kind))
    except ValidationError as exc:
        raise InvalidPayload.from_validation(what, exc) from exc
    if version < found.latest:
        # Validated against its own version first, so errors name what the sender wrote
        # and upcasters only ever see valid input.
        data = model.model_dump(mode="json")
        for step in range(version, found.latest):
            data = found.upcasters[step](data)
        try:
            model = found.model.model_validate(data)
        except ValidationError as exc:
            raise InvalidPayload.from_validation(f"{what} upcast to v{found.latest}", exc) from exc
    if model.district != envelope.district:
        raise InvalidPayload(
            f"{what}: body district {model.district!r} differs from ce_district {envelope.district!r}",
            (("district", "differs from ce_district"),),
        )
    return model


def to_envelope(
    model: Contract,
    *,
    id: str,
    source: str,
    subject: str,
    time: datetime,
    correlation_id: str,
    causation_id: str | None = None,
    token: str | None = None,
) -> Envelope:
    """Wrap a model in an :class:`Envelope`; type, version, district and body come from it.

    ``subject`` is the id of the aggregate (the Kafka key), ``source`` is
    ``yishi.names.source(district, service)`` for the platform's own messages; a command
    carries its sender's access ``token``.
    """
    encoded = encode(model)
    return Envelope(
        id=id,
        source=source,
        type=encoded.type,
        subject=subject,
        time=time,
        district=model.district,
        correlation_id=correlation_id,
        causation_id=causation_id,
        schema_version=encoded.schema_version,
        data=encoded.data,
        token=token,
    )


def topic(type_name: str, district: str, service: str | None = None) -> str:
    """The topic a message of this type travels on in ``district``.

    Replies belong to no single service: ``service`` names the one that answers (it is
    ignored for events and commands, whose owner is known).
    """
    found = spec(type_name)
    owner = service if found.kind is Kind.REPLY else found.service
    if owner is None:
        raise ValueError(f"{type_name} is a reply: say which service's replies topic")
    make = {Kind.EVENT: events_topic, Kind.COMMAND: commands_topic, Kind.REPLY: replies_topic}[found.kind]
    return make(district, owner)
