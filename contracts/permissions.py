"""Who may send which command: the one permission table of the platform.

Every command, over HTTP or Kafka, is checked here once (by
:func:`yishi.commands.authorise`) before its handler runs: the caller's token must
belong to the command's district, the command's ``actor`` must be the caller
(``sub``) acting in a role the token grants (and, for a council member, from a seat
the token lists), and the table below must allow that role to send that command.
What depends on the record itself (only the proposer withdraws, only seat holders of
*this* council second, only electors vote) is decided by the aggregates afterwards.

Reading: every role of a district may read the district's public record (councils,
proposals, votes and tallies, resolutions, tasks, funds); a person's subscriptions and
deliveries are readable by that person and by staff (:data:`STAFF`). The auditor reads
everything in their district and sends no command. ``system`` is the platform itself
(timers, events turned into commands): it is trusted, is not in the table, and no token
grants it.
"""

from __future__ import annotations

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
