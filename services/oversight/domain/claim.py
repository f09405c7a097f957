"""Claims: a name that only one record may take, such as the fund of a community's
year or the fund an allocation id belongs to.

A claim is a stream of its own, keyed by the name, created in the same transaction as
the record that takes it. Its creation is appended at version 0, so of two commands
taking one name concurrently exactly one can commit (the other meets the store's
``ConcurrencyError``, is retried by the bus and then finds the claim): the rule holds on
the write side, without reading a read model that could lag.
"""

from __future__ import annotations

import uuid

from eventsourcing.domain import Aggregate, event

from services.oversight.domain.streams import stream_id

FUND_OF_YEAR = "fund-of-year"
"""A community's fund for one year: key ``community/year``, owner the fund id."""
FUND_OF_ALLOCATION = "fund-of-allocation"
"""The fund an allocation id belongs to: key the allocation id, owner the fund id."""


class Claim(Aggregate):
    """``key`` of ``kind`` taken by ``owner_id`` (a public id), in one district."""

    @staticmethod
    def create_id(district: str, kind: str, key: str) -> uuid.UUID:
        return stream_id(district, f"claim-{kind}", key)

    @event("Taken")
    def __init__(self, district: str, kind: str, key: str, owner_id: str) -> None:
        self.district = district
        self.kind = kind
        self.key = key
        self.owner_id = owner_id


def year_key(community_id: str, year: int) -> str:
    """The :data:`FUND_OF_YEAR` key of a community's year."""
    return f"{community_id}/{year}"
