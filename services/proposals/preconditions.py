"""The proposals service's commands: what each needs, and its refusals, in the order the
rules (``domain/``, ``application.py``) check them. Rendered into contracts/README.md by
``python -m contracts.generate`` (see :mod:`contracts.preconditions`)."""

from __future__ import annotations

from contracts.common import RejectionReason as R
from contracts.preconditions import Refusal

PRECONDITIONS: dict[str, tuple[Refusal, ...]] = {
    "FormCouncil": (
        (R.ALREADY_EXISTS, "the council id is taken"),
        (R.NOT_FOUND, "the parent council does not exist"),
        (R.INVALID_COMMAND, "two seats share an id"),
        (R.INVALID_STATE, "the parent council does not sit above a council of this level"),
    ),
    "SeatMember": (
        (R.NOT_FOUND, "the council does not exist, or has no such seat"),
        (R.INVALID_STATE, "the seat is a resident representative's (filled by nomination and a residents' "
                          "confirmation vote), or another member holds it"),
        (R.DUPLICATE, "the member already holds this seat or another seat of the council"),
        (R.INVALID_COMMAND, "the term ends in the past"),
    ),
    "UnseatMember": (
        (R.NOT_FOUND, "the council does not exist, or has no such seat"),
        (R.INVALID_STATE, "the member does not hold the seat"),
    ),
    "NominateRepresentative": (
        (R.ALREADY_EXISTS, "the nomination id is taken"),
        (R.NOT_FOUND, "the council does not exist, or has no such seat"),
        (R.INVALID_STATE, "the seat is not a resident representative seat, or is not vacant"),
        (R.DUPLICATE, "the nominee already holds a seat of the council"),
    ),
    "NominateSlate": (
        (R.ALREADY_EXISTS, "the slate id is taken"),
        (R.NOT_FOUND, "the council does not exist"),
        (R.INVALID_COMMAND, "the slate names a seat or a nominee twice; the notice period ends in the past"),
        (R.INVALID_STATE, "a seat is not a resident representative seat, or is not vacant"),
        (R.DUPLICATE, "a nominee already holds a seat of the council"),
    ),
    "PubliciseNomination": (
        (R.NOT_FOUND, "the nomination does not exist"),
        (R.INVALID_STATE, "the nomination is already publicised or decided"),
        (R.INVALID_COMMAND, "the notice period ends in the past"),
    ),
    "DefineCatalogueCategory": (
        (R.ALREADY_EXISTS, "the category id is taken"),
    ),
    "AddCatalogueItem": (
        (R.ALREADY_EXISTS, "the item id is taken"),
        (R.NOT_FOUND, "the category does not exist"),
    ),
    "RetireCatalogueItem": (
        (R.NOT_FOUND, "the item does not exist"),
        (R.INVALID_STATE, "the item is already retired"),
    ),
    "RaiseProposal": (
        (R.ALREADY_EXISTS, "the proposal id is taken"),
        (R.NOT_FOUND, "the council or the catalogue item does not exist"),
        (R.INVALID_STATE, "the catalogue item is retired"),
    ),
    "PublishProposal": (
        (R.NOT_FOUND, "the proposal does not exist"),
        (R.INVALID_STATE, "the proposal is not raised (already published, decided, escalated or withdrawn); the "
                          "council does not consult in this form; the notice ends before the council's "
                          "`notice_period_days` from now (on the platform's clock)"),
        (R.INVALID_COMMAND, "the session is in the past"),
    ),
    "SecondMotion": (
        (R.NOT_FOUND, "the proposal does not exist"),
        (R.INVALID_STATE, "the proposal is not published"),
        (R.NOT_AUTHORISED, "the seconder is the proposer, or holds no seat of the proposal's council"),
        (R.DUPLICATE, "the member has already seconded"),
    ),
    "LodgeObjection": (
        (R.NOT_FOUND, "the proposal does not exist"),
        (R.INVALID_STATE, "the proposal is not published"),
        (R.NOT_AUTHORISED, "the objector is the proposer"),
        (R.ALREADY_EXISTS, "the objection id is already on record"),
    ),
    "MakeStatement": (
        (R.NOT_FOUND, "the proposal does not exist, or the session named does not"),
        (R.INVALID_STATE, "the proposal is not published; the round's first statement is not the motion; the "
                          "step is over (the five steps run in order: motion, seconding, objection, debate, "
                          "expert comment)"),
        (R.ALREADY_EXISTS, "the statement id is already on record"),
        (R.NOT_AUTHORISED, "a session is named and is not open, or the proposal is not on its agenda; the "
                           "speaker is invited to the session for another item only, or speaks as invited "
                           "without naming the open session; the speaker's role does not speak in this step, "
                           "or the speaker is not who that role is (the proposer, a seconder, an objector …)"),
    ),
    "RequestVote": (
        (R.NOT_FOUND, "the proposal, nomination or slate, or its council, or the session named, does not exist"),
        (R.INVALID_STATE, "the matter is before another council; the proposal is not published (or the "
                          "nomination not publicised); its notice period has not ended; the motion has not been "
                          "presented this round (a `MakeStatement` of step `motion`); it has fewer seconds than "
                          "the council's `seconds_required`; the council has no seated members; a session is "
                          "named for a nomination's or a slate's vote, or is not open, is another council's, or "
                          "does not have the proposal on its agenda, or its attendance does not make the vote's "
                          "quorum (contracts/README.md, \"Sessions\")"),
        (R.ALREADY_EXISTS, "the vote id was already requested"),
        (R.DEADLINE_PASSED, "the vote would close in the past"),
        (R.INVALID_COMMAND, "a proposal's council-members electorate names another council, or another "
                            "electorate (a residents' meeting) comes without its roll"),
        (R.COUNCIL_RULE, "a proposal's terms break its council's voting rules: the electorate is not the "
                         "seated members, the quorum is below the council's, the majority is less strict, "
                         "or the council requires a secret ballot (contracts/README.md, \"Voting rules\")"),
    ),
    "EscalateProposal": (
        (R.NOT_FOUND, "the proposal, its council or the council above it does not exist"),
        (R.INVALID_STATE, "the proposal is not raised or published, or its council has none above it"),
    ),
    "WithdrawProposal": (
        (R.NOT_FOUND, "the proposal does not exist"),
        (R.NOT_AUTHORISED, "the actor is not the proposer"),
        (R.INVALID_STATE, "the proposal is not raised or published"),
    ),
    "ReturnProposalForReconsultation": (
        (R.NOT_FOUND, "the proposal does not exist"),
        (R.INVALID_STATE, "the proposal is not decided (adopted or rejected)"),
    ),
    # consultation sessions (domain/session.py)
    "SetChairRota": (
        (R.NOT_FOUND, "the council does not exist"),
        (R.INVALID_COMMAND, "the rota names a person twice"),
    ),
    "SetSessionSchedule": (
        (R.NOT_FOUND, "the council does not exist"),
        (R.INVALID_STATE, "the council does not consult in this form"),
    ),
    "ScheduleSession": (
        (R.ALREADY_EXISTS, "the session id is taken"),
        (R.NOT_FOUND, "the council does not exist"),
        (R.INVALID_STATE, "the council does not consult in this form; no chair is named and the council has no "
                          "rota"),
        (R.INVALID_COMMAND, "the session starts in the past"),
    ),
    "ChangeSessionChair": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is closed, or already has this chair"),
    ),
    "AddAgendaItem": (
        (R.NOT_FOUND, "the session or the proposal does not exist"),
        (R.INVALID_STATE, "the session is closed; the proposal is another council's, or decided, escalated or "
                          "withdrawn"),
        (R.DUPLICATE, "the proposal is already on the agenda"),
    ),
    "InviteStakeholder": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is closed, or the proposal is not on its agenda"),
        (R.DUPLICATE, "the person is already invited to this item"),
    ),
    "OpenSession": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is already open or closed"),
    ),
    "CheckIn": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is not open"),
        (R.NOT_AUTHORISED, "the code is not the session's; a proxy where the council's rules allow none"),
        (R.DUPLICATE, "the person (or the resident represented) is already recorded"),
    ),
    "RecordAttendance": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is not open"),
        (R.NOT_AUTHORISED, "a proxy where the council's rules allow none"),
        (R.DUPLICATE, "the person (or the resident represented) is already recorded"),
    ),
    "CloseSession": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is not open"),
    ),
    "PublishMinutes": (
        (R.NOT_FOUND, "the session does not exist"),
        (R.INVALID_STATE, "the session is not closed"),
        (R.DUPLICATE, "its minutes are already published"),
    ),
}
