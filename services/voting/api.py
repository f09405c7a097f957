"""HTTP queries of the voting service: a vote, its (live) tally, a receipt check and a
verifiable vote's published board.

Commands are served by the runtime (``POST /{district}/commands/{Type}``). Another
district's votes are answered as not found.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from contracts.common import Id, VoteMatter, VoteMatterKind, VoteTerms
from contracts.voting import BallotChoice, BoardEntry, Tally, TrackingCode, VoteClosure, VoteOutcome
from yishi.auth import Principal, authenticate
from yishi.pagination import Page, PageQuery, page_query
from yishi.runtime import ServiceContext
from services.voting import projections
from services.voting.ballot_box import PostgresBallotBox, receipt_hash


class VoteStatus(StrEnum):
    """Whether ballots are still taken."""

    OPEN = "open"
    CLOSED = "closed"


class VoteResult(BaseModel):
    """How a closed vote was counted."""

    tally: Tally
    outcome: VoteOutcome
    quorum_met: bool
    turnout_percent: float
    winning_option: str | None = None
    closed_by: VoteClosure
    closed_at: datetime


class VoteView(BaseModel):
    """A vote: its terms, whether it is open, its turnout and, once closed, its result."""

    vote_id: str
    council_id: str
    matter: VoteMatter
    terms: VoteTerms
    status: VoteStatus
    opened_at: datetime
    turnout: int = Field(description="Electors who have voted so far.")
    result: VoteResult | None = None


class TallyView(BaseModel):
    """The tally as it stands: live for open votes; for secret votes only after closing."""

    vote_id: str
    status: str
    turnout: int
    electorate_size: int
    tally: Tally | None = Field(description="Absent while a secret vote is open: a running count would let "
                                            "an observer pair a ballot with a choice.")


class ReceiptView(BaseModel):
    """What a voter can check with their receipt (the ``ballot_id`` they sent)."""

    vote_id: str
    recorded: bool
    counted: bool = Field(description="The vote has closed and this ballot is in its tally.")
    choice: BallotChoice | None = None
    approvals: list[str] | None = None
    tracking_code: TrackingCode | None = Field(
        default=None, description="Verifiable secret votes: the ballot's tracking code, to find on the vote's board "
                                  "once it closes (anyone who sees it with the board learns the choice).")


class BoardView(BaseModel):
    """A closed verifiable vote's published board and participants, with what to check them
    against (``yishi audit recount``): the terms (who is eligible) and the published tally."""

    vote_id: str
    terms: VoteTerms
    tally: Tally
    entries: list[BoardEntry] = Field(description="Every counted ballot: tracking code and choice, in code order.")
    voter_ids: list[str] = Field(description="Who took part, in id order; as many as entries.")


_NOT_FOUND = {404: {"description": "No such vote in this district."}}
_NO_BOARD = {404: {"description": "No such vote in this district, or it has published no board: it is open, or "
                                  "not a verifiable secret vote."}}
_RECEIPT_NOT_FOUND = {404: {"description": "No such vote in this district; for a secret vote also: no ballot of "
                                           "the caller's with this receipt (only its voter may read it)."}}


def router(ctx: ServiceContext) -> APIRouter:
    """The query routes, reading the service's read models and its ballot box through ``ctx.pool``."""
    api = APIRouter(prefix="/{district}/votes", tags=["votes"])
    box = PostgresBallotBox()

    async def find(district: str, vote_id: str) -> Any:
        row = await projections.vote_row(ctx.pool, district, vote_id)
        if row is None:
            raise HTTPException(404, f"no vote {vote_id} in {district}")
        return row

    @api.get("", response_model=Page[VoteView])
    async def list_votes(district: str, council_id: Id | None = None, status: VoteStatus | None = None,
                         matter_kind: VoteMatterKind | None = None, matter_id: Id | None = None,
                         query: PageQuery = Depends(page_query(str))) -> dict:
        """The district's votes by id, a page at a time, optionally of one council, open
        or closed, on one kind of matter or on one proposal or nomination (``matter_id``)."""
        rows = await projections.find_votes(
            ctx.pool, district, council_id=council_id, closed=None if status is None else status is VoteStatus.CLOSED,
            matter_kind=matter_kind, matter_id=matter_id, after=query.after_value,
            limit=query.fetch)
        page = query.page(rows, lambda r: (r["public_id"],))
        return {**page, "items": [_view(r, r["turnout"]) for r in page["items"]]}

    @api.get("/{vote_id}", response_model=VoteView, responses=_NOT_FOUND)
    async def get_vote(district: str, vote_id: Id) -> VoteView:
        """A vote with its terms, turnout and result."""
        row = await find(district, vote_id)
        return _view(row, await box.turnout(ctx.pool, row["vote_id"]))

    @api.get("/{vote_id}/tally", response_model=TallyView, responses=_NOT_FOUND)
    async def get_tally(district: str, vote_id: Id) -> TallyView:
        """The live tally of an open vote, or the final one."""
        row = await find(district, vote_id)
        if row["result"] is not None:
            tally: Tally | None = Tally.model_validate(row["result"]["tally"])
        elif row["secret"]:
            tally = None
        else:
            counted = await box.tally(ctx.pool, row["vote_id"], secret=False)
            tally = Tally(in_favour=counted.in_favour, against=counted.against, abstain=counted.abstain,
                          approvals=counted.approvals if row["terms"].get("options") else None)
        return TallyView(vote_id=vote_id, status=_status(row),
                         turnout=await box.turnout(ctx.pool, row["vote_id"]),
                         electorate_size=row["electorate_size"], tally=tally)

    @api.get("/{vote_id}/receipts/{ballot_id}", response_model=ReceiptView, responses=_RECEIPT_NOT_FOUND)
    async def check_receipt(district: str, vote_id: Id, ballot_id: Id,
                            principal: Principal = Depends(authenticate)) -> ReceiptView:
        """Check a ballot by the ``ballot_id`` it was sent with: recorded, counted, and as what.

        A secret vote's receipt is shown to its voter only: the receipt is stored hashed
        with the voter's id, so anyone else (a community worker, an auditor, another
        voter) gets 404, exactly as for a receipt that does not exist. An open vote's
        ballots are public (``VoteClosed`` lists them), so their receipts are too."""
        row = await find(district, vote_id)
        if row["secret"]:
            found = await box.recorded(ctx.pool, row["vote_id"],
                                       receipt_hash(district, vote_id, principal.subject, ballot_id))
            if found is None:
                raise HTTPException(404, f"no ballot of {principal.subject} with this receipt in vote {vote_id}")
        else:
            found = await box.open_choice(ctx.pool, row["vote_id"], ballot_id)
        return ReceiptView(vote_id=vote_id, recorded=found is not None,
                           counted=found is not None and row["result"] is not None,
                           choice=found.choice if found else None, approvals=found.approvals if found else None,
                           tracking_code=found.tracking_code if found else None)

    @api.get("/{vote_id}/board", response_model=BoardView, responses=_NO_BOARD)
    async def get_board(district: str, vote_id: Id) -> BoardView:
        """A closed verifiable vote's board (``VoteBoardPublished``) and participants
        (``VoteParticipants``), for any reader of the district: voters find their tracking
        code, anyone recounts the tally from it and checks who took part."""
        row = await find(district, vote_id)
        published = await projections.published_board(ctx.pool, row["vote_id"])
        if published is None:
            raise HTTPException(404, f"vote {vote_id} has published no board: it is open, or not a verifiable "
                                     "secret vote")
        entries, voter_ids = published
        return BoardView(vote_id=vote_id, terms=row["terms"], tally=row["result"]["tally"], entries=entries,
                         voter_ids=voter_ids)

    return api


def _status(row: Any) -> VoteStatus:
    return VoteStatus.CLOSED if row["closed_at"] is not None else VoteStatus.OPEN


def _view(row: dict[str, Any], turnout: int) -> VoteView:
    """The view of a vote's row (its public id, not the stream id that keys the tables)."""
    return VoteView(vote_id=row["public_id"], council_id=row["council_id"], matter=row["matter"], terms=row["terms"],
                    status=_status(row), opened_at=row["opened_at"], turnout=turnout, result=row["result"])
