"""Contracts of the notify service: notifications and their delivery."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import Command, Event, Id, Text, TypeName, Value


class Channel(StrEnum):
    """Where a notification is delivered."""

    WECHAT = "wechat"
    SMS = "sms"
    EMAIL = "email"
    IN_APP = "in_app"
    NOTICE_BOARD = "notice_board"  # the community's public notice board (公示栏)


class RecipientKind(StrEnum):
    """Whether a recipient is one person or everyone in a group."""

    PERSON = "person"
    COUNCIL = "council"
    COMMUNITY = "community"


class Recipient(Value):
    """A person or a group to notify."""

    kind: RecipientKind
    id: Id


class Regarding(Value):
    """The event a notification is about, so a reader can follow it up."""

    type: TypeName
    subject: Id


class FailureReason(StrEnum):
    """Why a delivery failed."""

    UNREACHABLE = "unreachable"
    REJECTED_BY_CHANNEL = "rejected_by_channel"
    UNSUBSCRIBED = "unsubscribed"
    INVALID_ADDRESS = "invalid_address"
    EXPIRED = "expired"  # not delivered before it stopped mattering


Template = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,79}$"), Field(examples=["proposal.published"])]
Params = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=40), Field(examples=["title"])],
    Annotated[str, StringConstraints(max_length=2000), Field(examples=["在3号院增设电动自行车充电棚"])],
]


class NotificationRequested(Event):
    """A notification was requested, to be rendered from a template per channel."""

    notification_id: Id
    recipients: tuple[Recipient, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: Template
    params: Params = Field(default_factory=dict)
    regarding: Regarding | None = None


class NotificationDelivered(Event):
    """A notification reached one recipient on one channel."""

    notification_id: Id
    recipient_id: Id
    channel: Channel
    attempt: Annotated[int, Field(gt=0)]


class NotificationFailed(Event):
    """A delivery attempt failed; ``will_retry`` says whether another attempt follows."""

    notification_id: Id
    recipient_id: Id
    channel: Channel
    attempt: Annotated[int, Field(gt=0)]
    reason: FailureReason
    detail: Text | None = None
    will_retry: bool


class RequestNotification(Command):
    """Ask for a notification to be sent."""

    notification_id: Id
    recipients: tuple[Recipient, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: Template
    params: Params = Field(default_factory=dict)
    regarding: Regarding | None = None
