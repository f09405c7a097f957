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
:mod:`.catalogue`, :mod:`.proposal`, :mod:`.session` (calendars and sessions), and
:mod:`.rules` for what they share. The public names are re-exported here: import them
from ``services.proposals.domain``.
"""

from __future__ import annotations

from services.proposals.domain.catalogue import CatalogueCategory, CatalogueItem
from services.proposals.domain.council import Council
from services.proposals.domain.nominations import Nomination, NominationStatus, Slate
from services.proposals.domain.proposal import Proposal, ProposalStatus
from services.proposals.domain.session import Calendar, Session, SessionStatus, next_occurrence
from services.proposals.domain.rules import AT_LEAST_AS_STRICT, LEVELS, STEP_ROLES, STEPS, stream_id
from yishi.topics import register_moved

__all__ = [
    "AT_LEAST_AS_STRICT",
    "LEVELS",
    "STEPS",
    "STEP_ROLES",
    "Calendar",
    "CatalogueCategory",
    "CatalogueItem",
    "Council",
    "Nomination",
    "NominationStatus",
    "Proposal",
    "ProposalStatus",
    "Session",
    "SessionStatus",
    "Slate",
    "next_occurrence",
    "stream_id",
]

# Everything lived in one module, ``services.proposals.domain``, until it became this
# package: events stored then name that module (``…domain:Proposal.Raised``).
register_moved(__name__, Council, Nomination, Slate, CatalogueCategory, CatalogueItem, Proposal)
