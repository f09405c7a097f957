"""Command handlers of the voting service (one per command), the closing timer and the
mixer of secret choices."""

from __future__ import annotations

import functools
import uuid

import asyncpg
import structlog

from contracts.common import Actor, CommandAccepted, RejectionReason, Role, VoteMatterKind
from contracts.permissions import Party
from contracts.voting import CastBallot, CloseVote, OpenVote
from yishi.auth import Principal
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext
from yishi.failures import RetryPolicy
from yishi.jobs import JobItems, every
from yishi.metrics import TIMERS_FIRED
from yishi.repository import AggregateNotFound, Repository
from yishi.rules import Rejected
from yishi.store import EventStore
from services.voting import projections
from services.voting.domain import Ballot, Vote, ballot_stream, vote_stream

log = structlog.get_logger("yishi.voting")

SYSTEM = Actor(id="yishi-voting", role=Role.SYSTEM)
PLATFORM = Principal.of_platform("voting")
"""The voting service itself, sending the commands its timer and reactions decide."""


def create_bus(store: EventStore, clock: Clock) -> CommandBus:
    """The voting service's command bus with its three handlers."""
    # Votes and ballots are short streams: snapshots would only cost writes.
    bus = CommandBus("voting", Repository(store, snapshot_every=None), clock)
    bus.handles(OpenVote)(open_vote)
    bus.handles(CastBallot)(cast_ballot)
    bus.handles(CloseVote)(close_vote)
    return bus


async def _find_vote(ctx: CommandContext, district: str, vote_id: str) -> Vote | None:
    """``district``'s vote ``vote_id``. Its stream is derived from both, so another
    district's vote with the same id is never found, and no vote id names any other
    stream (a reply's, a ballot's, a vote's own stream name)."""
    try:
        return await ctx.repository.get(Vote, vote_stream(district, vote_id), conn=ctx.conn)
    except AggregateNotFound:
        return None


async def _load_vote(ctx: CommandContext, cmd: CloseVote) -> Vote:
    """The vote ``cmd`` addresses, or ``not_found`` (also for another district's vote),
    once its caller is known to act for the vote's council (``acts_for``)."""
    vote = await _find_vote(ctx, cmd.district, cmd.vote_id)
    if vote is None:
        raise _no_vote(cmd.district, cmd.vote_id)
    ctx.authorise_party(cmd, {Party.COUNCIL: vote.council_id}, cmd.vote_id)
    return vote


def _no_vote(district: str, vote_id: str) -> Rejected:
    return Rejected(RejectionReason.NOT_FOUND, f"no vote {vote_id} in {district}", vote_id)


async def open_vote(cmd: OpenVote, ctx: CommandContext) -> str:
    """Open a vote; the same vote opened again on the same terms changes nothing.

    A vote deciding a proposal or a nomination opens only from its council's
    ``VoteRequested`` (the platform's own ``OpenVote``, see :mod:`.consumers`): the
    proposals service checks the request and waits for that vote's result. Sent
    directly, it would be counted and ignored, so it is refused; direct votes are on a
    ``question``."""
    if cmd.matter.kind != VoteMatterKind.QUESTION and not (ctx.principal and ctx.principal.platform):
        raise Rejected(RejectionReason.VOTE_REQUESTED_THROUGH_PROPOSALS,
                       f"a vote on {cmd.matter.kind} {cmd.matter.id} is requested with RequestVote (proposals "
                       "service), which checks it against the council's rules and takes its result; OpenVote opens "
                       "votes on a matter of kind question", cmd.vote_id)
    ctx.authorise_party(cmd, {Party.COUNCIL: cmd.council_id}, cmd.vote_id)
    existing = await _find_vote(ctx, cmd.district, cmd.vote_id)
    if existing is not None:
        if existing.terms == cmd.terms and existing.council_id == cmd.council_id:
            return cmd.vote_id
        raise Rejected(RejectionReason.ALREADY_EXISTS, f"vote id {cmd.vote_id} is already used", cmd.vote_id)
    vote = Vote.open(vote_id=cmd.vote_id, district=cmd.district, council_id=cmd.council_id,
                     matter=cmd.matter.model_dump(mode="json"), terms=cmd.terms, convener_id=cmd.actor.id,
                     convener_role=cmd.actor.role, now=ctx.clock.now())
    await ctx.save(cmd, vote)
    await projections.vote_opened(ctx.conn, vote)
    return cmd.vote_id


async def cast_ballot(cmd: CastBallot, ctx: CommandContext) -> str:
    """Accept the actor's ballot: once per voter (replaced where the vote allows it),
    only while the vote is open. Returns the vote id, never anything of the choice."""
    stream, voter = vote_stream(cmd.district, cmd.vote_id), cmd.actor.id
    await projections.lock_for_ballot(ctx.conn, stream)
    # The vote and the voter's ballot in one read, after the lock: it sees every close before it.
    vote, ballot = await ctx.repository.get_each((Vote, stream), (Ballot, ballot_stream(cmd.district, cmd.vote_id,
                                                                                        voter)), conn=ctx.conn)
    if vote is None:
        raise _no_vote(cmd.district, cmd.vote_id)
    now = ctx.clock.now()
    vote.check_ballot(voter, cmd.choice, cmd.approvals, now)
    choice = str(cmd.choice)
    approvals = list(cmd.approvals) if cmd.approvals is not None else None
    # A secret ballot's stream holds participation only; choice and receipt go elsewhere.
    recorded = (None, None, None) if vote.secret else (cmd.ballot_id, choice, approvals)
    receipt = projections.receipt_hash(cmd.district, cmd.vote_id, voter, cmd.ballot_id) if vote.secret else None
    if ballot is None:
        ballot = Ballot.cast(district=cmd.district, vote_id=cmd.vote_id, voter_id=voter, ballot_id=recorded[0],
                             choice=recorded[1], approvals=recorded[2], now=now)
    elif await _resent(ctx, vote, ballot, cmd, receipt, choice, approvals):
        return cmd.vote_id
    else:
        ballot.replace(changes_allowed=vote.changes_allowed, ballot_id=recorded[0], choice=recorded[1],
                       approvals=recorded[2], now=now)
    replaced = ballot.version > 1
    await ctx.save(cmd, ballot)
    if not await projections.ballot_cast(ctx.conn, vote, ballot, choice=choice, approvals=approvals,
                                         receipt=receipt, replaced=replaced):
        if replaced:
            raise Rejected(RejectionReason.INVALID_STATE,
                           "a secret ballot is replaced by sending it again with its first ballot_id", cmd.vote_id)
        raise Rejected(RejectionReason.ALREADY_EXISTS, "this ballot_id is already used; choose a random one",
                       cmd.vote_id)
    return cmd.vote_id


async def _resent(ctx: CommandContext, vote: Vote, ballot: Ballot, cmd: CastBallot, receipt: bytes | None,
                  choice: str, approvals: list[str] | None) -> bool:
    """Whether ``cmd`` repeats the voter's current ballot exactly (a resent command)."""
    if not vote.secret:
        return ballot.same_as(cmd.ballot_id, choice, approvals)
    row = await projections.recorded_choice(ctx.conn, vote.id, receipt)
    return row is not None and (row["choice"], row["approvals"]) == (choice, approvals)


async def close_vote(cmd: CloseVote, ctx: CommandContext) -> str:
    """Close and count a vote: by its convener at any time, by the platform when it is due."""
    await projections.lock_for_close(ctx.conn, vote_stream(cmd.district, cmd.vote_id))
    vote = await _load_vote(ctx, cmd)
    now = ctx.clock.now()
    closed_by = vote.closure(cmd.actor.id, cmd.actor.role, now, await projections.turnout(ctx.conn, vote.id))
    if vote.secret:
        await projections.mix(ctx.conn, vote.id)
        ballots = None
    else:
        ballots = await projections.open_ballots(ctx.conn, vote.id)
    vote.close(await projections.tally(ctx.conn, vote.id, vote.secret), closed_by, now, ballots)
    await ctx.save(cmd, vote)
    await projections.vote_closed(ctx.conn, vote)
    return cmd.vote_id


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
        reply = await items.run(f"close/{row['district']}/{row['vote_id']}", functools.partial(
            bus.dispatch, CloseVote(district=row["district"], actor=SYSTEM, vote_id=row["vote_id"]),
            command_id=f"timer:{uuid.uuid4()}", correlation_id=f"timer-{row['vote_id']}-close", principal=PLATFORM))
        closed += isinstance(reply, CommandAccepted)
    TIMERS_FIRED.labels("voting.close").inc(closed)
    return closed


async def mix_pending_choices(pool: asyncpg.Pool, items: JobItems | None = None) -> int:
    """Mix full batches of secret choices of open votes (see :mod:`projections`)."""
    items = items or JobItems(pool, JOB)
    mixed = 0
    for vote_id in await projections.secret_votes_to_mix(pool):
        mixed += await items.run(f"mix/{vote_id}", functools.partial(_mix, pool, vote_id)) or 0
    return mixed


async def _mix(pool: asyncpg.Pool, vote_id: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        # Exclusive, briefly: no ballot is half-written while its choice moves.
        await projections.lock_for_close(conn, vote_id)
        return await projections.mix(conn, vote_id, projections.MIX_BATCH)


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
