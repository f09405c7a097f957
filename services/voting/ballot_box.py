"""The ballot box: every accepted ballot as the count takes it. Write-side state, NOT a
rebuildable read model.

A secret ballot's stream records participation only (:meth:`Ballot.cast
<services.voting.domain.Ballot.cast>`); its choice exists here and nowhere else, not in
the event log, not on Kafka. So these tables cannot be rebuilt from the log: they are
the service's own record, kept (and backed up) with its event store, and the handlers
decide with them:

* ``participants`` — who has voted (public, like a paper register): turnout, and
  "everyone has voted".
* ``open_ballots`` — open votes only: who voted how, the live tally, what the close
  publishes (these two could be derived from the log, but the close counts from them
  in its transaction, and a ballot writes its place in one statement).
* ``pending_choices`` / ``secret_choices`` — secret votes only: the anonymous choice
  beside the hash of the voter's receipt (:func:`receipt_hash`), never a voter id nor a
  time. A ballot's transaction writes its choice to ``pending_choices``; :meth:`mix
  <BallotBox.mix>` moves pending choices in shuffled batches to ``secret_choices`` in a
  transaction of its own, so the row that survives carries neither the ballot's
  transaction id (``xmin``) nor its order. A receipt is used once: the box refuses a
  second ballot under it before anything is saved (:meth:`BallotBox.cast`). A
  verifiable vote's choice carries its tracking code too (:func:`new_tracking_code`,
  random, a new one for a replacement): the close publishes the codes with the choices
  (:meth:`BallotBox.board`), and only the voter, by their receipt, reads which is theirs.

Every table keys a vote by its stream id (``Vote.id``), scoped by district.

Concurrency between ballots and the close is serialised per vote, without a global
lock: a ballot holds the vote's lock (:func:`vote_lock`) shared, taken by the command bus
as the ballot's handler declares, the close holds it exclusively while it counts
(:meth:`~BallotBox.lock_for_close`).

Two implementations of one interface (one contract suite, ``tests/contract/test_ballot_box.py``):
:class:`PostgresBallotBox`, the service's, on the command's connection, and
:class:`MemoryBallotBox`, for handler tests on :class:`yishi.memory.MemoryEventStore`.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from contracts.common import RejectionReason
from contracts.voting import BoardEntry
from yishi.db import advisory_key
from yishi.rules import Rejected
from yishi.store import ConcurrencyError
from services.voting.domain import Ballot, Tally, Vote

# Tables: services/voting/migrations (Alembic branch voting).

#: Secret choices are mixed during a vote once this many are pending; the close mixes the rest.
MIX_BATCH = 25


def receipt_hash(district: str, vote_id: str, voter_id: str, ballot_id: str) -> bytes:
    """What is stored of a secret ballot's receipt (its ``ballot_id``): a hash only, of
    the receipt with its voter. Only the voter finds their choice by it: anyone else
    asking with the same ballot id (staff, an auditor) hashes another voter id and finds
    nothing, and no stored row names the voter."""
    return hashlib.sha256(f"yishi-receipt/v2/{district}/{vote_id}/{voter_id}/{ballot_id}".encode()).digest()


def vote_lock(vote_id: str) -> str:
    """The name of the advisory lock (:func:`yishi.db.advisory_key`) of the vote whose
    stream is ``vote_id``: held shared by each ballot (declared to the command bus,
    :meth:`yishi.commands.CommandBus.handles`), exclusively by the close."""
    return f"yishi.vote/{vote_id}"


def new_tracking_code() -> str:
    """A secret ballot's tracking code (``contracts.voting.TrackingCode``): random, never
    derived from the voter or their receipt, so the board links no code to anyone, and
    never in the ballot's reply (replies are stored and published): its voter reads it by
    their receipt. 80 bits: two ballots of a vote share one with odds near 10^-16 at 10^4."""
    return secrets.token_hex(10)


def _code(vote: Vote) -> str | None:
    """A new tracking code for a secret ballot of ``vote`` if it is verifiable."""
    return new_tracking_code() if vote.verifiable else None


@dataclass(frozen=True, slots=True)
class Choice:
    """A ballot's choice as the box holds it (a verifiable vote's secret one with its code)."""

    choice: str
    approvals: list[str] | None
    tracking_code: str | None = None


class BallotBox(ABC):
    """Where accepted ballots wait to be counted. Every method works on ``conn``, the
    caller's transaction (a pool will do for the queries): what a refused command wrote
    is rolled back with it. The rules are here, once; the storage is the subclass's."""

    async def cast(self, conn: Any, vote: Vote, voter_id: str, ballot_id: str, choice: str,
                   approvals: list[str] | None, *, first: bool) -> None:
        """Put ``voter_id``'s ballot in the box: their ``first`` on ``vote``, else the
        replacement of their ballot. Called before the ballot is saved, it refuses a
        secret ballot whose receipt (``ballot_id``) is taken (``already_exists``), and a
        secret replacement sent with another receipt than its first (``invalid_state``);
        nothing of a refused ballot is kept (what a statement wrote is rolled back with
        the command). Raises :class:`ConcurrencyError` when a first ballot finds its voter
        already registered: another of theirs was saved since the caller read their
        ballot stream, and the command is tried again."""
        if not vote.secret:
            put = await self._put_open(conn, vote.id, voter_id, ballot_id, Choice(choice, approvals), first=first)
        elif first:
            registered, put = await self._put_secret(conn, vote.id, voter_id, self.receipt(vote, voter_id, ballot_id),
                                                     Choice(choice, approvals, _code(vote)))
            if registered and not put:
                raise Rejected(RejectionReason.ALREADY_EXISTS, "this ballot_id is already used; choose a random one",
                               vote.vote_id)
        else:
            put = await self._replace_secret(conn, vote.id, self.receipt(vote, voter_id, ballot_id),
                                             Choice(choice, approvals, _code(vote)))
            if not put:
                raise Rejected(RejectionReason.INVALID_STATE,
                               "a secret ballot is replaced by sending it again with its first ballot_id", vote.vote_id)
        if not put:
            raise ConcurrencyError(Ballot.create_id(vote.district, vote.vote_id, voter_id), 0)

    @staticmethod
    def receipt(vote: Vote, voter_id: str, ballot_id: str) -> bytes:
        """The key of ``voter_id``'s secret choice on ``vote`` (:func:`receipt_hash`)."""
        return receipt_hash(vote.district, vote.vote_id, voter_id, ballot_id)

    async def secret_choice(self, conn: Any, vote: Vote, voter_id: str, ballot_id: str) -> Choice | None:
        """The choice ``voter_id`` cast on secret ``vote`` with receipt ``ballot_id``, mixed or pending."""
        return await self.recorded(conn, vote.id, self.receipt(vote, voter_id, ballot_id))

    # -- the storage -----------------------------------------------------------

    @abstractmethod
    async def lock_for_close(self, conn: Any, vote_id: str) -> None:
        """Hold the vote's lock (:func:`vote_lock`) exclusively until the transaction ends:
        every ballot committed before is counted, every later one sees the vote closed."""

    @abstractmethod
    async def _put_open(self, conn: Any, vote_id: str, voter_id: str, ballot_id: str, choice: Choice, *,
                        first: bool) -> bool:
        """Record an open ballot: a ``first`` one with its voter added to the register,
        unless they are there already (then nothing, and False); else the voter's
        replacement."""

    @abstractmethod
    async def _put_secret(self, conn: Any, vote_id: str, voter_id: str, receipt: bytes,
                          choice: Choice) -> tuple[bool, bool]:
        """Add the voter to the register and put their first choice under ``receipt``:
        (voter added, choice put). Nothing is put for a voter already registered, nor
        under a receipt already taken."""

    @abstractmethod
    async def _replace_secret(self, conn: Any, vote_id: str, receipt: bytes, choice: Choice) -> bool:
        """Replace the choice under ``receipt`` (pending or mixed) with a pending one;
        False, changing nothing, when there is none."""

    @abstractmethod
    async def recorded(self, conn: Any, vote_id: str, receipt: bytes) -> Choice | None:
        """The secret choice stored under ``receipt``, mixed or still pending."""

    @abstractmethod
    async def open_choice(self, conn: Any, vote_id: str, ballot_id: str) -> Choice | None:
        """The choice of an open vote's ballot, by its ballot id."""

    @abstractmethod
    async def turnout(self, conn: Any, vote_id: str) -> int:
        """How many electors have voted."""

    @abstractmethod
    async def open_ballots(self, conn: Any, vote_id: str) -> list[dict[str, Any]]:
        """Who voted how on an open vote, by voter id."""

    @abstractmethod
    async def tally(self, conn: Any, vote_id: str, secret: bool) -> Tally:
        """Count the ballots recorded so far (secret ones once mixed: mix before counting)."""

    @abstractmethod
    async def mix(self, conn: Any, vote_id: str, at_least: int = 1) -> int:
        """Move the vote's pending secret choices, if at least ``at_least``, to the mixed
        ones in random order, in the caller's transaction. Returns how many."""

    @abstractmethod
    async def votes_to_mix(self, conn: Any) -> list[str]:
        """Open secret votes with a full batch (:data:`MIX_BATCH`) of choices waiting to be mixed."""

    @abstractmethod
    async def board(self, conn: Any, vote_id: str) -> list[BoardEntry]:
        """A verifiable vote's mixed choices with their tracking codes, in code order (mix first)."""

    @abstractmethod
    async def participant_ids(self, conn: Any, vote_id: str) -> list[str]:
        """Who has voted, by voter id in id order."""


def _tally(choices: Any) -> Tally:
    counts = {"in_favour": 0, "against": 0, "abstain": 0}
    approvals: dict[str, int] = {}
    for choice, chosen in choices:
        counts[choice] += 1
        for option in chosen or ():
            approvals[option] = approvals.get(option, 0) + 1
    return Tally(**counts, approvals=approvals)


_REGISTER_VOTER = ("WITH registered AS (INSERT INTO participants (vote_id, voter_id) VALUES ($1, $2) "
                   "ON CONFLICT DO NOTHING RETURNING 1) ")
"""The voter added to the register, in the statement recording their first ballot (one
round trip): a data-modifying WITH runs whether or not the statement reads it. The
ballot is recorded only if the voter was added: one already there has another ballot."""


class PostgresBallotBox(BallotBox):
    """The ballot box in the voting service's schema, on the command's connection."""

    async def lock_for_close(self, conn: Any, vote_id: str) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", advisory_key(vote_lock(vote_id)))

    async def _put_open(self, conn: Any, vote_id: str, voter_id: str, ballot_id: str, choice: Choice, *,
                        first: bool) -> bool:
        if not first:
            await conn.execute(
                "UPDATE open_ballots SET ballot_id = $3, choice = $4, approvals = $5 WHERE vote_id = $1 AND voter_id = $2",
                vote_id, voter_id, ballot_id, choice.choice, choice.approvals)
            return True
        return bool(await conn.fetchval(
            _REGISTER_VOTER + "INSERT INTO open_ballots (vote_id, voter_id, ballot_id, choice, approvals) "
            "SELECT $1, $2, $3::text, $4::text, $5::text[] WHERE EXISTS (SELECT FROM registered) RETURNING true",
            vote_id, voter_id, ballot_id, choice.choice, choice.approvals))

    async def _put_secret(self, conn: Any, vote_id: str, voter_id: str, receipt: bytes,
                          choice: Choice) -> tuple[bool, bool]:
        row = await conn.fetchrow(
            _REGISTER_VOTER + ", put AS (INSERT INTO pending_choices (receipt, vote_id, choice, approvals, "
            "tracking_code) SELECT $3::bytea, $1, $4::text, $5::text[], $6::text WHERE EXISTS (SELECT FROM registered) "
            "ON CONFLICT DO NOTHING RETURNING 1) "
            "SELECT EXISTS (SELECT FROM registered) AS registered, EXISTS (SELECT FROM put) AS put",
            vote_id, voter_id, receipt, choice.choice, choice.approvals, choice.tracking_code)
        return row["registered"], row["put"]

    async def _replace_secret(self, conn: Any, vote_id: str, receipt: bytes, choice: Choice) -> bool:
        # The old choice leaves wherever it is; the new one waits to be mixed like any other.
        removed = await conn.fetchval(
            "WITH p AS (DELETE FROM pending_choices WHERE receipt = $1 AND vote_id = $2 RETURNING 1), "
            "s AS (DELETE FROM secret_choices WHERE receipt = $1 AND vote_id = $2 RETURNING 1) "
            "SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM s)", receipt, vote_id)
        if not removed:
            return False
        await conn.execute("INSERT INTO pending_choices (receipt, vote_id, choice, approvals, tracking_code) "
                           "VALUES ($1, $2, $3, $4, $5)", receipt, vote_id, choice.choice, choice.approvals,
                           choice.tracking_code)
        return True

    async def recorded(self, conn: Any, vote_id: str, receipt: bytes) -> Choice | None:
        row = await conn.fetchrow(
            "SELECT choice, approvals, tracking_code FROM secret_choices WHERE vote_id = $1 AND receipt = $2 UNION ALL "
            "SELECT choice, approvals, tracking_code FROM pending_choices WHERE vote_id = $1 AND receipt = $2",
            vote_id, receipt)
        return _choice(row)

    async def open_choice(self, conn: Any, vote_id: str, ballot_id: str) -> Choice | None:
        return _choice(await conn.fetchrow(
            "SELECT choice, approvals FROM open_ballots WHERE vote_id = $1 AND ballot_id = $2", vote_id, ballot_id))

    async def turnout(self, conn: Any, vote_id: str) -> int:
        return await conn.fetchval("SELECT count(*) FROM participants WHERE vote_id = $1", vote_id)

    async def open_ballots(self, conn: Any, vote_id: str) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            "SELECT voter_id, choice, approvals FROM open_ballots WHERE vote_id = $1 ORDER BY voter_id", vote_id)
        return [{"voter_id": r["voter_id"], "choice": r["choice"],
                 "approvals": list(r["approvals"]) if r["approvals"] is not None else None} for r in rows]

    async def tally(self, conn: Any, vote_id: str, secret: bool) -> Tally:
        table = "secret_choices" if secret else "open_ballots"
        rows = await conn.fetch(f"SELECT choice, approvals FROM {table} WHERE vote_id = $1", vote_id)
        return _tally((r["choice"], r["approvals"]) for r in rows)

    async def mix(self, conn: Any, vote_id: str, at_least: int = 1) -> int:
        pending = await conn.fetchval("SELECT count(*) FROM pending_choices WHERE vote_id = $1", vote_id)
        if pending < at_least:
            return 0
        return int((await conn.execute(
            "WITH moved AS (DELETE FROM pending_choices WHERE vote_id = $1 "
            "RETURNING receipt, choice, approvals, tracking_code) "
            "INSERT INTO secret_choices (receipt, vote_id, choice, approvals, tracking_code) "
            "SELECT receipt, $1, choice, approvals, tracking_code FROM moved ORDER BY random()", vote_id)).split()[-1])

    async def votes_to_mix(self, conn: Any) -> list[str]:
        rows = await conn.fetch("SELECT vote_id FROM pending_choices GROUP BY vote_id HAVING count(*) >= $1",
                                MIX_BATCH)
        return [r["vote_id"] for r in rows]

    async def board(self, conn: Any, vote_id: str) -> list[BoardEntry]:
        rows = await conn.fetch("SELECT tracking_code, choice, approvals FROM secret_choices WHERE vote_id = $1 "
                                "ORDER BY tracking_code COLLATE \"C\"", vote_id)
        return [BoardEntry(tracking_code=r["tracking_code"], choice=r["choice"],
                           approvals=tuple(r["approvals"]) if r["approvals"] is not None else None) for r in rows]

    async def participant_ids(self, conn: Any, vote_id: str) -> list[str]:
        rows = await conn.fetch("SELECT voter_id FROM participants WHERE vote_id = $1 ORDER BY voter_id COLLATE \"C\"",
                                vote_id)
        return [r["voter_id"] for r in rows]


def _choice(row: Any) -> Choice | None:
    if row is None:
        return None
    return Choice(row["choice"], list(row["approvals"]) if row["approvals"] is not None else None,
                  row.get("tracking_code"))


class MemoryBallotBox(BallotBox):
    """The ballot box in memory, for handler tests that run one command at a time.

    ``conn`` is not looked at: a write is kept at once, even if the command's transaction
    is later rolled back, and the locks hold nothing. The handlers put a ballot in the box
    as their last step before saving, once every rule has passed, and the box's own
    refusals write nothing, so a refused command leaves nothing behind here either."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self.participants: dict[str, set[str]] = {}
        self.open: dict[str, dict[str, tuple[str, Choice]]] = {}  # vote → voter → (ballot id, choice)
        self.pending: dict[str, dict[bytes, Choice]] = {}  # vote → receipt → choice
        self.mixed: dict[str, dict[bytes, Choice]] = {}  # vote → receipt → choice, in mixed order

    async def lock_for_close(self, conn: Any, vote_id: str) -> None:
        """Nothing to hold: one command at a time."""

    async def _put_open(self, conn: Any, vote_id: str, voter_id: str, ballot_id: str, choice: Choice, *,
                        first: bool) -> bool:
        voters = self.participants.setdefault(vote_id, set())
        if first and voter_id in voters:
            return False
        voters.add(voter_id)
        self.open.setdefault(vote_id, {})[voter_id] = (ballot_id, choice)
        return True

    async def _put_secret(self, conn: Any, vote_id: str, voter_id: str, receipt: bytes,
                          choice: Choice) -> tuple[bool, bool]:
        voters, pending = self.participants.setdefault(vote_id, set()), self.pending.setdefault(vote_id, {})
        if voter_id in voters:
            return False, False
        if receipt in pending or receipt in self.mixed.get(vote_id, {}):
            return True, False  # PostgreSQL registers the voter; the refusal rolls that back
        voters.add(voter_id)
        pending[receipt] = choice
        return True, True

    async def _replace_secret(self, conn: Any, vote_id: str, receipt: bytes, choice: Choice) -> bool:
        removed = [box.pop(receipt) for box in (self.pending.get(vote_id, {}), self.mixed.get(vote_id, {}))
                   if receipt in box]
        if removed:
            self.pending.setdefault(vote_id, {})[receipt] = choice
        return bool(removed)

    async def recorded(self, conn: Any, vote_id: str, receipt: bytes) -> Choice | None:
        return self.mixed.get(vote_id, {}).get(receipt) or self.pending.get(vote_id, {}).get(receipt)

    async def open_choice(self, conn: Any, vote_id: str, ballot_id: str) -> Choice | None:
        return next((c for b, c in self.open.get(vote_id, {}).values() if b == ballot_id), None)

    async def turnout(self, conn: Any, vote_id: str) -> int:
        return len(self.participants.get(vote_id, ()))

    async def open_ballots(self, conn: Any, vote_id: str) -> list[dict[str, Any]]:
        return [{"voter_id": voter, "choice": c.choice, "approvals": c.approvals}
                for voter, (_, c) in sorted(self.open.get(vote_id, {}).items())]

    async def tally(self, conn: Any, vote_id: str, secret: bool) -> Tally:
        if secret:
            choices = self.mixed.get(vote_id, {}).values()
        else:
            choices = (c for _, c in self.open.get(vote_id, {}).values())
        return _tally((c.choice, c.approvals) for c in choices)

    async def mix(self, conn: Any, vote_id: str, at_least: int = 1) -> int:
        pending = self.pending.get(vote_id, {})
        if len(pending) < at_least:
            return 0
        moved = list(pending.items())
        self._random.shuffle(moved)
        self.mixed.setdefault(vote_id, {}).update(moved)
        pending.clear()
        return len(moved)

    async def votes_to_mix(self, conn: Any) -> list[str]:
        return [vote_id for vote_id, pending in self.pending.items() if len(pending) >= MIX_BATCH]

    async def board(self, conn: Any, vote_id: str) -> list[BoardEntry]:
        return sorted((BoardEntry(tracking_code=c.tracking_code, choice=c.choice,
                                  approvals=tuple(c.approvals) if c.approvals is not None else None)
                       for c in self.mixed.get(vote_id, {}).values()), key=lambda e: e.tracking_code)

    async def participant_ids(self, conn: Any, vote_id: str) -> list[str]:
        return sorted(self.participants.get(vote_id, ()))
