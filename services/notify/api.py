"""HTTP queries of the notify service: subscriptions, the directory of default contacts
and delivery history (OpenAPI documented). Unknown ids, and ids of another district, are answered 404."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BaseModel

from contracts.notify import Channel, Language, QuietHours, RecipientKind
from contracts.permissions import STAFF
from services.notify import projections
from services.notify.domain import DeliveryStatus
from yishi.auth import Principal, authenticate
from yishi.pagination import Page, PageQuery, page_query


class SubscriptionView(BaseModel):
    """A subscription as it stands."""

    subscription_id: str
    subscriber_kind: RecipientKind
    subscriber_id: str
    channel: Channel
    address: str
    language: Language
    event_types: list[str]
    council_ids: list[str]
    proposal_ids: list[str]
    quiet_hours: QuietHours | None
    active: bool


class DefaultContactView(BaseModel):
    """A party's entry in the district's directory of default contacts."""

    party_id: str
    channel: Channel
    address: str
    language: Language


class Attempt(BaseModel):
    """One step of a delivery's history."""

    attempt: int
    at: datetime
    outcome: str
    reason: str | None = None
    detail: str | None = None
    retry_at: datetime | None = None


class DeliveryView(BaseModel):
    """One message to one recipient on one channel, with its attempts."""

    delivery_id: str
    notification_id: str
    recipient_kind: RecipientKind
    recipient_id: str
    channel: Channel
    address: str
    language: Language
    template: str
    regarding_type: str | None
    regarding_subject: str | None
    status: DeliveryStatus
    attempts: int
    requested_at: datetime
    next_attempt_at: datetime | None
    history: list[Attempt]


def _subscription(row: asyncpg.Record) -> SubscriptionView:
    data: dict[str, Any] = dict(row)
    data.pop("district")
    data["quiet_hours"] = json.loads(data["quiet_hours"]) if data["quiet_hours"] else None
    return SubscriptionView(**data)


def _delivery(row: asyncpg.Record) -> DeliveryView:
    data: dict[str, Any] = dict(row)
    data["delivery_id"] = str(data["delivery_id"])
    data["history"] = json.loads(data["history"])
    return DeliveryView(**{k: v for k, v in data.items() if k in DeliveryView.model_fields})


_OWN_ONLY: dict[int | str, dict] = {403: {"description": "Only staff may see other people's records."}}


def _may_see(principal: Principal, person_id: str) -> bool:
    """Personal notification records: the person's own, or staff's (contracts.permissions.STAFF)."""
    return person_id == principal.subject or not principal.roles.isdisjoint(STAFF)


def build_router(pool: Callable[[], asyncpg.Pool]) -> APIRouter:
    """The query routes; ``pool()`` returns the service's pool once it has started."""
    router = APIRouter(tags=["queries"])

    @router.get("/{district}/subscriptions/{subscription_id}", response_model=SubscriptionView,
                responses={404: {"description": "No such subscription in this district."}})
    async def get_subscription(district: str, subscription_id: str,
                               principal: Principal = Depends(authenticate)) -> SubscriptionView:
        """One subscription (the subscriber's own, or any for staff)."""
        row = await projections.subscription(pool(), district, subscription_id)
        if row is None or not _may_see(principal, row["subscriber_id"]):
            raise HTTPException(404, "no such subscription")
        return _subscription(row)

    @router.get("/{district}/subscriptions", response_model=Page[SubscriptionView], responses=_OWN_ONLY)
    async def list_subscriptions(district: str, subscriber_id: str = Query(max_length=80),
                                 query: PageQuery = Depends(page_query(str)),
                                 principal: Principal = Depends(authenticate)) -> dict:
        """A subscriber's subscriptions, active and cancelled, by id, a page at a time (one's
        own, or anyone's for staff)."""
        if not _may_see(principal, subscriber_id):
            raise HTTPException(403, "only staff may list other people's subscriptions")
        rows = await projections.find_subscriptions(pool(), district, subscriber_id, after=query.after_value,
                                                    limit=query.fetch)
        return query.page([_subscription(r) for r in rows], lambda s: (s.subscription_id,))

    @router.get("/{district}/default-contacts/{party_id}", response_model=DefaultContactView,
                responses={404: {"description": "No default contact for this party in this district."}})
    async def get_default_contact(district: str, party_id: str,
                                  principal: Principal = Depends(authenticate)) -> DefaultContactView:
        """A party's default contact (the party's own, or any for staff)."""
        row = await projections.default_contact(pool(), district, party_id)
        if row is None or not _may_see(principal, party_id):
            raise HTTPException(404, "no default contact")
        return DefaultContactView(**{k: v for k, v in dict(row).items() if k != "district"})

    @router.get("/{district}/deliveries/{delivery_id}", response_model=DeliveryView,
                responses={404: {"description": "No such delivery in this district."}})
    async def get_delivery(district: str, delivery_id: str,
                           principal: Principal = Depends(authenticate)) -> DeliveryView:
        """One delivery and every attempt made (to oneself, or any for staff)."""
        try:
            key = uuid.UUID(delivery_id)
        except ValueError:
            raise HTTPException(404, "no such delivery") from None
        row = await projections.delivery(pool(), district, key)
        if row is None or not _may_see(principal, row["recipient_id"]):
            raise HTTPException(404, "no such delivery")
        return _delivery(row)

    @router.get("/{district}/deliveries", response_model=Page[DeliveryView], responses=_OWN_ONLY)
    async def list_deliveries(district: str, recipient_id: str | None = Query(default=None, max_length=80),
                              notification_id: str | None = Query(default=None, max_length=80),
                              status: DeliveryStatus | None = None,
                              query: PageQuery = Depends(page_query(AwareDatetime, uuid.UUID)),
                              principal: Principal = Depends(authenticate)) -> dict:
        """Delivery history, newest first (then by id), a page at a time, filtered by
        recipient, notification or status. Staff see everyone's; others must ask for their
        own (``recipient_id``)."""
        if recipient_id is None and principal.roles.isdisjoint(STAFF) or \
                recipient_id is not None and not _may_see(principal, recipient_id):
            raise HTTPException(403, "only staff may list other people's deliveries")
        rows = await projections.find_deliveries(
            pool(), district, recipient_id=recipient_id, notification_id=notification_id,
            status=status.value if status else None, after=query.after, limit=query.fetch)
        page = query.page(rows, lambda r: (r["requested_at"], r["delivery_id"]))
        return {**page, "items": [_delivery(r) for r in page["items"]]}

    return router
