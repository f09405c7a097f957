"""The proposals domain: councils and their seats, representative nominations, the
consultation catalogue, and proposals with their deliberation record.

Aggregates are pure and synchronous: the time comes in as an argument (``now``), other
aggregates a rule depends on (a proposal's council) are passed in, read only. Public
methods validate and raise :class:`yishi.rules.Rejected`; the private ``@event``
methods only record and apply, because their bodies run again on every replay.

Aggregate ids are derived from the district and the public id (:func:`stream_id`), so
the same public id in two districts names two different streams, and another
district's id is simply not found.

One module per aggregate: :mod:`.council`, :mod:`.nominations` (nominations and slates),
:mod:`.catalogue`, :mod:`.proposal`, and :mod:`.rules` for what they share. The public
names are re-exported here: import them from ``services.proposals.domain``.
"""

from __future__ import annotations

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import register_topic

from services.proposals.domain.catalogue import CatalogueCategory, CatalogueItem
from services.proposals.domain.council import Council
from services.proposals.domain.nominations import Nomination, NominationStatus, Slate
from services.proposals.domain.proposal import Proposal, ProposalStatus
from services.proposals.domain.rules import AT_LEAST_AS_STRICT, LEVELS, STEP_ROLES, STEPS, stream_id

__all__ = [
    "AT_LEAST_AS_STRICT",
    "LEVELS",
    "STEPS",
    "STEP_ROLES",
    "CatalogueCategory",
    "CatalogueItem",
    "Council",
    "Nomination",
    "NominationStatus",
    "Proposal",
    "ProposalStatus",
    "Slate",
    "stream_id",
]

AGGREGATES = (Council, Nomination, Slate, CatalogueCategory, CatalogueItem, Proposal)
"""Every aggregate of the proposals service."""


def legacy_topics() -> dict[str, type]:
    """The eventsourcing topic each aggregate and each of its event classes had while they
    all lived in one module, ``services.proposals.domain`` (``…domain:Proposal.Raised``,
    now ``…domain.proposal:Proposal.Raised``), and the class that now has it."""
    old: dict[str, type] = {}
    for aggregate in AGGREGATES:
        events = [v for v in vars(aggregate).values() if isinstance(v, type) and issubclass(v, CanMutateAggregate)]
        for cls in (aggregate, *events):
            old[f"{__name__}:{cls.__qualname__}"] = cls
    return old


# The library names a class by its module and qualified name, and stored events keep the
# names they were written under: in their topic, in a creation event's
# ``originator_topic`` and in a snapshot's ``topic``. Those written before the split
# name the classes' old module; registered here, they resolve to the same classes
# whether or not the name is also re-exported above, and new events get the new names.
for _topic, _cls in legacy_topics().items():
    register_topic(_topic, _cls)
