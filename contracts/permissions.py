"""Who may send which command: the one permission table of the platform.

Every command, over HTTP or Kafka, is checked here once (by
:func:`yishi.commands.authorise`) before its handler runs: the caller's token must
belong to the command's district, the command's ``actor`` must be the caller
(``sub``) acting in a role the token grants (and, for a council member, from a seat
the token lists), and the table below must allow that role to send that command.
What depends on the record itself (only the proposer withdraws, only seat holders of
*this* council second, only electors vote) is decided by the aggregates afterwards.

Whom a person acts for. The scoped roles (:data:`SCOPED_ROLES`: implementer,
community worker, chair, supervisor) act for parties, as a council member acts from a
seat: the token's ``acts_for`` claim (name configurable, ``YISHI_AUTH_ACTS_FOR_CLAIM``)
lists the ids of the implementer organisations and councils the person acts for; the
value ``*`` (:data:`ANY_PARTY`) stands for every party of the district (district-wide
staff). A command listed in :data:`PARTIES` acts on a record of one party (a task's
implementer organisation; the council of a resolution, a proposal, a nomination, a
slate or a vote, or the council a seat is on; for ``FormCouncil`` the parent council,
so a top-level council is formed by district-wide staff): a caller in a scoped role
may send it only for a party their token lists, else ``not_authorised`` (403, a
recorded ``CommandRejected``). The record names the party, so the check runs once the
record is loaded (:func:`yishi.commands.authorise_party`, the one shared check each
service's loader of the addressed record calls), judged by :func:`acts_for` here. The
platform's own commands (a ``VoteRequested`` opening its vote, the closing timer) are
not checked. **A token without the claim acts for no party**: it may still send every
command not in :data:`PARTIES`, but none that is (an implementer's token must name
its organisation). Other roles are not scoped:
officials, district administrators and integrations act district-wide, council members
from their seats, residents and experts for themselves.

Reading: every role of a district may read the district's public record (councils,
proposals, votes and tallies, resolutions, tasks, funds); a person's subscriptions and
deliveries are readable by that person and by staff (:data:`STAFF`). The auditor reads
everything in their district and sends no command. ``system`` is the platform itself
(timers, events turned into commands): it is trusted, is not in the table, and no token
grants it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum
from types import MappingProxyType

from contracts.common import Role

R, CM, CW, CH = Role.RESIDENT, Role.COUNCIL_MEMBER, Role.COMMUNITY_WORKER, Role.CHAIR
EX, IM, SU, OF = Role.EXPERT, Role.IMPLEMENTER, Role.SUPERVISOR, Role.OFFICIAL
DA, AU, IN = Role.DISTRICT_ADMIN, Role.AUDITOR, Role.INTEGRATION

STAFF = frozenset({CW, CH, OF, DA, AU, IN})
"""Who may read and manage other people's notification settings and deliveries."""

_TABLE: dict[str, frozenset[Role]] = {
    # proposals: councils and seats are kept by the convener (community worker) and the
    # district administration; the catalogue by the street/district government.
    "FormCouncil": frozenset({CW, OF, DA}),
    "SeatMember": frozenset({CW, DA}),
    "UnseatMember": frozenset({CW, DA}),
    "NominateRepresentative": frozenset({R, CM, CW, DA}),
    "PubliciseNomination": frozenset({CW, DA}),
    "NominateSlate": frozenset({CW, DA}),  # a slate is the convener's list, publicised in one go
    "DefineCatalogueCategory": frozenset({CW, OF, DA}),
    "AddCatalogueItem": frozenset({CW, OF, DA}),
    "RetireCatalogueItem": frozenset({CW, OF, DA}),
    "RaiseProposal": frozenset({R, CM}),
    "PublishProposal": frozenset({CW, CH}),
    "SecondMotion": frozenset({CM}),
    "LodgeObjection": frozenset({R, CM}),
    "MakeStatement": frozenset({R, CM, CW, CH, EX, IM, SU, OF}),
    "RequestVote": frozenset({CW, CH}),
    "EscalateProposal": frozenset({CW, CH}),
    "WithdrawProposal": frozenset({R, CM}),
    "ReturnProposalForReconsultation": frozenset({CW, CH, OF}),
    # consultation sessions: the convener keeps the rota and schedule, the convener and the
    # chair run a session; anyone may check in to one with its code.
    "SetChairRota": frozenset({CW, DA}),
    "SetSessionSchedule": frozenset({CW, DA}),
    "ScheduleSession": frozenset({CW, CH}),
    "ChangeSessionChair": frozenset({CW, DA}),
    "AddAgendaItem": frozenset({CW, CH}),
    "InviteStakeholder": frozenset({CW, CH}),
    "OpenSession": frozenset({CW, CH}),
    "CheckIn": frozenset({R, CM, CW, CH, EX, IM, SU, OF}),
    "RecordAttendance": frozenset({CW, CH}),
    "CloseSession": frozenset({CW, CH}),
    "PublishMinutes": frozenset({CW, CH}),
    # voting: convening roles open and close; electors are checked against the roll.
    "OpenVote": frozenset({CW, CH, OF}),
    "CastBallot": frozenset({R, CM, CH, EX}),
    "CloseVote": frozenset({CW, CH, OF}),
    # oversight: the convener and government staff run delivery, implementers deliver,
    # supervisors inspect; district systems may register resolutions taken elsewhere.
    "RegisterResolution": frozenset({CW, OF, IN}),
    "EstablishFund": frozenset({CW, OF, DA}),
    "SetReminderPolicy": frozenset({CW, OF, DA}),
    "AssignTask": frozenset({CW, OF}),
    "AcceptTask": frozenset({IM}),
    "ReportProgress": frozenset({IM, CW}),
    "AllocateFunds": frozenset({CW, OF}),
    "RecordSpending": frozenset({IM, CW}),
    "EscalateTask": frozenset({CW, OF, SU}),
    "CompleteTask": frozenset({IM}),
    "RecordInspection": frozenset({SU}),
    "ScheduleFollowUpInspection": frozenset({SU, CW}),
    "RecordSatisfaction": frozenset({CW}),
    "CloseResolution": frozenset({CW, OF}),
    "RequestReconsultation": frozenset({SU, CW, CM}),
    # notify: staff and district systems send notices; anyone but the read-only auditor
    # manages their own subscriptions (staff also other people's).
    "RequestNotification": frozenset({CW, CH, OF, IN}),
    "Subscribe": frozenset({R, CM, CW, CH, EX, IM, SU, OF, DA, IN}),
    "Unsubscribe": frozenset({R, CM, CW, CH, EX, IM, SU, OF, DA, IN}),
    # the district's directory of default contacts (who is reached without subscribing)
    "SetDefaultContact": frozenset({CW, DA}),
    "RemoveDefaultContact": frozenset({CW, DA}),
}

PERMISSIONS: MappingProxyType[str, frozenset[Role]] = MappingProxyType(_TABLE)
"""Command type name → the roles that may send it."""


def allowed(command_type: str, role: Role) -> bool:
    """Whether ``role`` may send ``command_type`` (unknown commands: nobody)."""
    return role in PERMISSIONS.get(command_type, frozenset())


class Party(StrEnum):
    """Whose record a command acts on, for the scoped roles."""

    IMPLEMENTER = "implementer"  # the organisation a task is assigned to (Implementer.id)
    COUNCIL = "council"  # the council a resolution, and so its tasks, belongs to


SCOPED_ROLES = frozenset({IM, CW, CH, SU})
"""Roles that act only for the parties their token's ``acts_for`` claim lists."""

ANY_PARTY = "*"
"""The ``acts_for`` value that stands for every party of the district."""

_PARTIES: dict[str, Party] = {
    # delivery: only the assigned organisation's staff, whatever their role
    "AcceptTask": Party.IMPLEMENTER,
    "ReportProgress": Party.IMPLEMENTER,
    "RecordSpending": Party.IMPLEMENTER,
    "CompleteTask": Party.IMPLEMENTER,
    # the council's own staff run its resolutions' delivery; its supervisors inspect
    "RegisterResolution": Party.COUNCIL,
    "SetReminderPolicy": Party.COUNCIL,
    "AssignTask": Party.COUNCIL,
    "AllocateFunds": Party.COUNCIL,
    "EscalateTask": Party.COUNCIL,
    "RecordInspection": Party.COUNCIL,
    "ScheduleFollowUpInspection": Party.COUNCIL,
    "RecordSatisfaction": Party.COUNCIL,
    "CloseResolution": Party.COUNCIL,
    "RequestReconsultation": Party.COUNCIL,
    # proposals and voting: a council's chair and community workers run its own record
    # (its seats, nominations, proposals, votes); FormCouncil's is the parent council
    "FormCouncil": Party.COUNCIL,
    "SeatMember": Party.COUNCIL,
    "UnseatMember": Party.COUNCIL,
    "NominateRepresentative": Party.COUNCIL,
    "NominateSlate": Party.COUNCIL,
    "PubliciseNomination": Party.COUNCIL,
    "PublishProposal": Party.COUNCIL,
    "RequestVote": Party.COUNCIL,
    "EscalateProposal": Party.COUNCIL,
    "ReturnProposalForReconsultation": Party.COUNCIL,
    "OpenVote": Party.COUNCIL,
    "CloseVote": Party.COUNCIL,
    # sessions: the council's own staff and chairs (CheckIn is anyone's, with the code)
    "SetChairRota": Party.COUNCIL,
    "SetSessionSchedule": Party.COUNCIL,
    "ScheduleSession": Party.COUNCIL,
    "ChangeSessionChair": Party.COUNCIL,
    "AddAgendaItem": Party.COUNCIL,
    "InviteStakeholder": Party.COUNCIL,
    "OpenSession": Party.COUNCIL,
    "RecordAttendance": Party.COUNCIL,
    "CloseSession": Party.COUNCIL,
    "PublishMinutes": Party.COUNCIL,
    # Not checked: EstablishFund and the catalogue (a community's, no council's; the street
    # government's list), MakeStatement (consultation hears anyone the table lets speak,
    # an implementer for their organisation), CastBallot (the roll decides).
}

PARTIES: MappingProxyType[str, Party] = MappingProxyType(_PARTIES)
"""Command type name → the party of the addressed record a scoped role must act for."""


def acts_for(command_type: str, role: Role, parties: Collection[str], record: Mapping[Party, str | None]) -> bool:
    """Whether a caller in ``role`` whose token lists ``parties`` may send ``command_type``
    on a record whose parties are ``record``: always for commands not in :data:`PARTIES`
    and for roles that are not scoped; else only for a party the token lists."""
    party = PARTIES.get(command_type)
    if party is None or role not in SCOPED_ROLES:
        return True
    wanted = record.get(party)
    return ANY_PARTY in parties or (wanted is not None and wanted in parties)
