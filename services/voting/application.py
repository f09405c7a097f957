"""Command handlers of the voting service (one per command), the closing timer and the
mixer of secret choices."""

from __future__ import annotations

import functools
import uuid

import asyncpg
import structlog

from contracts.common import CommandAccepted, RejectionReason, VoteMatterKind
from contracts.permissions import Party
from contracts.voting import CastBallot, CloseVote, OpenVote
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext, Projection, Reply
from yishi.failures import RetryPolicy
from yishi.jobs import JobItems, every
from yishi.metrics import TIMERS_FIRED
from yishi.repository import Repository
from yishi.rules import Rejected
from yishi.store import EventStore
from services.voting import projections
from services.voting.ballot_box import MIX_BATCH, BallotBox, PostgresBallotBox, vote_lock
from services.voting.domain import Ballot, Vote

log = structlog.get_logger("yishi.voting")


def create_bus(store: EventStore, clock: Clock) -> CommandBus:
    """The voting service's command bus on ``store``, as the service runs it."""
    # Votes and ballots are short streams: snapshots would only cost writes.
    return build_bus(Repository(store, snapshot_every=None), clock)


def build_bus(repository: Repository, clock: Clock, *, box: BallotBox | None = None,
              project: Projection | None = projections.project) -> CommandBus:
    """The voting service's command bus with its three handlers, putting ballots in
    ``box`` (the service's tables by default) and keeping its read models with
    ``project`` (None in handler unit tests on the in-memory store, which holds no tables)."""
    box = box or PostgresBallotBox()
    bus = CommandBus("voting", repository, clock, project=project)

    @bus.handles(OpenVote)
    async def open_vote(cmd: OpenVote, ctx: CommandContext) -> str:
        """Open a vote; the same vote opened again on the same terms changes nothing.

        A vote deciding a proposal or a nomination opens only from its council's
        ``VoteRequested`` (the platform's own ``OpenVote``, see :mod:`.consumers`): the
        proposals service checks the request and waits for that vote's result. Sent
        directly, it would be counted and ignored, so it is refused; direct votes are on a
        ``question``."""
        if cmd.matter.kind != VoteMatterKind.QUESTION and not ctx.principal.platform:
            raise Rejected(RejectionReason.VOTE_REQUESTED_THROUGH_PROPOSALS,
                           f"a vote on {cmd.matter.kind} {cmd.matter.id} is requested with RequestVote (proposals "
                           "service), which checks it against the council's rules and takes its result; OpenVote "
                           "opens votes on a matter of kind question", cmd.vote_id)
        ctx.authorise_party(cmd, {Party.COUNCIL: cmd.council_id}, cmd.vote_id)
        # Its stream is derived from district and id, so another district's vote with the
        # same id is never found, and no vote id names any other stream.
        existing = await ctx.find(Vote, cmd.district, cmd.vote_id)
        if existing is not None:
            if existing.terms == cmd.terms and existing.council_id == cmd.council_id:
                return cmd.vote_id
            raise Rejected(RejectionReason.ALREADY_EXISTS, f"vote id {cmd.vote_id} is already used", cmd.vote_id)
        vote = Vote.open(vote_id=cmd.vote_id, district=cmd.district, council_id=cmd.council_id,
                         matter=cmd.matter.model_dump(mode="json"), terms=cmd.terms, convener_id=cmd.actor.id,
                         convener_role=cmd.actor.role, now=ctx.clock.now())
        await ctx.save(cmd, vote)
        return cmd.vote_id

    # The bus takes the vote's lock, shared, with the transaction's BEGIN (a close waits for
    # the ballots in flight), then reads the vote and the voter's ballot with the command's
    # stored reply, in one statement: after the lock, it sees every close before it.
    @bus.handles(CastBallot, lock=lambda cmd: vote_lock(Vote.create_id(cmd.district, cmd.vote_id)),
                 reads=_ballot_reads)
    async def cast_ballot(cmd: CastBallot, ctx: CommandContext) -> str:
        """Accept the actor's ballot: once per voter (replaced where the vote allows it),
        only while the vote is open. Returns the vote id, never anything of the choice."""
        voter = cmd.actor.id
        vote, ballot = await ctx.find_each(*_ballot_reads(cmd))
        if vote is None:
            raise _no_vote(cmd.district, cmd.vote_id)
        now = ctx.clock.now()
        vote.check_ballot(voter, cmd.choice, cmd.approvals, now)
        choice = str(cmd.choice)
        approvals = list(cmd.approvals) if cmd.approvals is not None else None
        if ballot is None:
            ballot = Ballot.cast(vote=vote, voter_id=voter, ballot_id=cmd.ballot_id, choice=choice,
                                 approvals=approvals, now=now)
        elif await _resent(ctx, box, vote, ballot, cmd, choice, approvals):
            return cmd.vote_id
        else:
            ballot.replace(vote=vote, ballot_id=cmd.ballot_id, choice=choice, approvals=approvals, now=now)
        await box.cast(ctx.conn, vote, voter, cmd.ballot_id, choice, approvals, first=ballot.version == 1)
        await ctx.save(cmd, ballot)
        return cmd.vote_id

    @bus.handles(CloseVote)
    async def close_vote(cmd: CloseVote, ctx: CommandContext) -> str:
        """Close and count a vote: by its convener at any time, by the platform when it is due."""
        await box.lock_for_close(ctx.conn, Vote.create_id(cmd.district, cmd.vote_id))
        vote = await ctx.find(Vote, cmd.district, cmd.vote_id)
        if vote is None:
            raise _no_vote(cmd.district, cmd.vote_id)
        ctx.authorise_party(cmd, {Party.COUNCIL: vote.council_id}, cmd.vote_id)
        now = ctx.clock.now()
        closed_by = vote.closure(cmd.actor.id, cmd.actor.role, now, await box.turnout(ctx.conn, vote.id))
        if vote.secret:
            await box.mix(ctx.conn, vote.id)
            ballots = None
        else:
            ballots = await box.open_ballots(ctx.conn, vote.id)
        board = participants = None
        if vote.verifiable:  # published with the close, under its lock: exactly what was counted
            board, participants = await box.board(ctx.conn, vote.id), await box.participant_ids(ctx.conn, vote.id)
        vote.close(await box.tally(ctx.conn, vote.id, vote.secret), closed_by, now, ballots, board=board,
                   participants=participants)
        await ctx.save(cmd, vote)
        return cmd.vote_id

    return bus


def _ballot_reads(cmd: CastBallot) -> list[tuple[type, str]]:
    """What a ballot reads: its vote, and its voter's ballot on it."""
    return [(Vote, Vote.create_id(cmd.district, cmd.vote_id)),
            (Ballot, Ballot.create_id(cmd.district, cmd.vote_id, cmd.actor.id))]


def _no_vote(district: str, vote_id: str) -> Rejected:
    """``not_found`` for a vote missing in ``district`` (also for another district's)."""
    return Rejected(RejectionReason.NOT_FOUND, f"no vote {vote_id} in {district}", vote_id)


async def _resent(ctx: CommandContext, box: BallotBox, vote: Vote, ballot: Ballot, cmd: CastBallot, choice: str,
                  approvals: list[str] | None) -> bool:
    """Whether ``cmd`` repeats the voter's current ballot exactly (a resent command)."""
    if not vote.secret:
        return ballot.same_as(cmd.ballot_id, choice, approvals)
    recorded = await box.secret_choice(ctx.conn, vote, cmd.actor.id, cmd.ballot_id)
    return recorded is not None and (recorded.choice, recorded.approvals) == (choice, approvals)


async def close_due(bus: CommandBus, district: str, vote_id: str) -> Reply:
    """The timer's close of one vote: ``CloseVote`` by the platform, which the vote accepts
    once its closing time has come, or everyone voted (:meth:`Vote.closure`)."""
    return await bus.dispatch(CloseVote(district=district, actor=bus.system_actor, vote_id=vote_id),
                              command_id=f"timer:{uuid.uuid4()}", correlation_id=f"timer-{vote_id}-close",
                              principal=bus.platform)


async def close_due_votes(bus: CommandBus, clock: Clock, items: JobItems | None = None) -> int:
    """Close every vote that is due (closing time passed, or everyone voted).

    Due work is derived from the ``votes`` table, so a closing time that passed while
    the service was down is acted on after restart; the close is recorded as an event
    under the vote's exclusive lock, so a vote never closes twice. Each vote is one of
    ``items``: one that cannot be closed is recorded and skipped, not retried for ever.
    """
    items = items or JobItems(bus.store.pool, JOB)
    closed = 0
    for row in await projections.due_votes(bus.store.pool, clock.now()):
        reply = await items.run(f"close/{row['district']}/{row['vote_id']}",
                                functools.partial(close_due, bus, row["district"], row["vote_id"]))
        closed += isinstance(reply, CommandAccepted)
    TIMERS_FIRED.labels("voting.close").inc(closed)
    return closed


async def mix_pending_choices(pool: asyncpg.Pool, items: JobItems | None = None,
                              box: BallotBox | None = None) -> int:
    """Mix full batches of secret choices of open votes (see :mod:`.ballot_box`)."""
    items, box = items or JobItems(pool, JOB), box or PostgresBallotBox()
    mixed = 0
    for vote_id in await box.votes_to_mix(pool):
        mixed += await items.run(f"mix/{vote_id}", functools.partial(_mix, pool, box, vote_id)) or 0
    return mixed


async def _mix(pool: asyncpg.Pool, box: BallotBox, vote_id: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        # Exclusive, briefly: no ballot is half-written while its choice moves.
        await box.lock_for_close(conn, vote_id)
        return await box.mix(conn, vote_id, MIX_BATCH)


JOB = "voting.closing-timer"


def closing_timer(bus: CommandBus, clock: Clock, interval: float = 0.2, policy: RetryPolicy = RetryPolicy()):
    """The background job: close due votes and mix secret choices, until stopped."""
    items: JobItems | None = None

    async def tick() -> int:
        nonlocal items
        items = items or JobItems(bus.store.pool, JOB, policy)  # the pool exists once the service started
        await close_due_votes(bus, clock, items)
        await mix_pending_choices(bus.store.pool, items)
        return 0  # what is due is bounded: the next tick waits ``interval``

    return every(interval, tick, JOB, policy)
