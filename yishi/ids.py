"""Ids the platform chooses for a caller that leaves a command's new id out.

A command field marked :data:`contracts.common.NewId` names what the command creates
(a council, a proposal, a statement …). A caller may choose it, as an integration that
retries across restarts does; left out (or null), the command bus fills it in before the
handler runs (:func:`choose_ids`) and the reply names it (``CommandAccepted.ids``).

The id is drawn from the service's injected :class:`IdSource` with a *seed* made of the
command's identity (district, caller, type, idempotency key: see
:class:`yishi.commands.CommandIdentity`) and the field: a resend under the same key, a
retry after a concurrent change and a redelivered Kafka message all get the same id, so
the thing is never created twice under two names. A field whose mark derives its id
from the command (a resolution's from its proposal) gets that id instead.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Protocol, TypeVar

from contracts.common import Command, new_id_fields

C = TypeVar("C", bound=Command)


class IdSource(Protocol):
    """Turns a kind (``proposal``) and a seed into an id; the same seed, the same id."""

    def new_id(self, kind: str, seed: str) -> str: ...


class DerivedIds:
    """Production's ids: ``{kind}-`` and 24 hex digits of the seed's SHA-256 (96 bits:
    no two commands of a district meet by chance)."""

    def new_id(self, kind: str, seed: str) -> str:
        return f"{kind}-{hashlib.sha256(seed.encode()).hexdigest()[:24]}"


class SequentialIds:
    """Tests' ids: ``proposal-1``, ``proposal-2`` … per kind in the order first asked
    for, and the same id again for a seed seen before."""

    def __init__(self) -> None:
        self._given: dict[str, str] = {}
        self._count: defaultdict[str, int] = defaultdict(int)

    def new_id(self, kind: str, seed: str) -> str:
        if seed not in self._given:
            self._count[kind] += 1
            self._given[seed] = f"{kind}-{self._count[kind]}"
        return self._given[seed]


def choose_ids(command: C, identity: str, source: IdSource) -> tuple[C, dict[str, str]]:
    """``command`` with every omitted new id filled in from ``source``, seeded by the
    command's ``identity`` (a stable digest of it), and the ids chosen by field."""
    chosen = {name: mark.derive(command) if mark.derive else source.new_id(name.removesuffix("_id"),
                                                                          f"{identity}\x1f{name}")
              for name, mark in new_id_fields(type(command)).items() if getattr(command, name) is None}
    return (command.model_copy(update=chosen) if chosen else command), chosen
