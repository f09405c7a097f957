"""The district's consultation catalogue (协商目录): first-level categories and the
communities' second-level items under them."""

from __future__ import annotations

import uuid
from datetime import datetime

from eventsourcing.domain import Aggregate, event

from contracts.common import RejectionReason
from services.proposals.domain.rules import stream_id
from yishi.rules import Rejected


class CatalogueCategory(Aggregate):
    """A first-level category of the district's consultation catalogue (协商目录)."""

    @staticmethod
    def create_id(district: str, category_id: str) -> uuid.UUID:
        return stream_id("category", district, category_id)

    @event("Defined")
    def __init__(self, district: str, category_id: str, code: str, title: str, description: str, at: datetime) -> None:
        self.district = district
        self.category_id = category_id
        self.code = code
        self.title = title
        self.description = description
        self.defined_at = at


class CatalogueItem(Aggregate):
    """A community's second-level item under a category; retired items take no new
    proposals, and proposals filed under them keep pointing at them."""

    @staticmethod
    def create_id(district: str, item_id: str) -> uuid.UUID:
        return stream_id("item", district, item_id)

    @event("Added")
    def __init__(
        self,
        district: str,
        item_id: str,
        category_id: str,
        community_id: str,
        title: str,
        description: str,
        at: datetime,
    ) -> None:
        self.district = district
        self.item_id = item_id
        self.category_id = category_id
        self.community_id = community_id
        self.title = title
        self.description = description
        self.added_at = at
        self.retired = False
        self.retired_reason: str | None = None

    def retire(self, *, reason: str, now: datetime) -> None:
        """Take no more proposals under this item."""
        if self.retired:
            raise Rejected(RejectionReason.INVALID_STATE, f"item {self.item_id} is already retired", self.item_id)
        self._retired(item_id=self.item_id, category_id=self.category_id, reason=reason, at=now)

    def check_open(self) -> None:
        """Raise unless new proposals may be filed under this item."""
        if self.retired:
            raise Rejected(
                RejectionReason.INVALID_STATE,
                f"catalogue item {self.item_id} is retired and takes no new proposals",
                self.item_id,
            )

    @event("Retired")
    def _retired(self, item_id: str, category_id: str, reason: str, at: datetime) -> None:
        self.retired = True
        self.retired_reason = reason
