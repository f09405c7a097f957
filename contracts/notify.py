"""Contracts of the notify service: notifications and their delivery."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import time
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.common import Command, Event, Id, NewId, Storable, Text, TypeName, Value, on_input


class Channel(StrEnum):
    """Where a notification is delivered."""

    WECHAT = "wechat"
    SMS = "sms"
    EMAIL = "email"
    IN_APP = "in_app"
    NOTICE_BOARD = "notice_board"  # the community's public notice board (公示栏)
    WEBHOOK = "webhook"  # a district system's HTTPS endpoint, signed with HMAC-SHA256


class RecipientKind(StrEnum):
    """Whether a recipient is one person or everyone in a group."""

    PERSON = "person"
    COUNCIL = "council"
    COMMUNITY = "community"
    SYSTEM = "system"  # a district system or bulletin board reached by webhook


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
    NO_RECIPIENT = "no_recipient"  # nobody to send it to: no subscription and no default contact


Template = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,79}$"), Field(examples=["proposal.published"])]
Params = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=40), Storable, Field(examples=["title"])],
    Annotated[str, StringConstraints(max_length=2000), Storable, Field(examples=["在3号院增设电动自行车充电棚"])],
]


class NotificationRequested(Event):
    """A notification was requested, to be rendered from a template per channel."""

    notification_id: Id
    recipients: tuple[Recipient, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(
        description="Empty when no recipient could be reached (a ``NotificationFailed`` with reason "
                    "``no_recipient`` follows for each).")
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
    """A delivery attempt failed; ``will_retry`` says whether another attempt follows.

    Reason ``no_recipient``: the recipient had no subscription and no default contact, so
    nothing was sent at all (no channel; attempt 1; no retry)."""

    notification_id: Id
    recipient_id: Id
    channel: Channel | None = Field(default=None, description="Absent for reason ``no_recipient``.")
    attempt: Annotated[int, Field(gt=0)]
    reason: FailureReason
    detail: Text | None = None
    will_retry: bool


class RequestNotification(Command):
    """Ask for a notification to be sent."""

    notification_id: NewId = None
    recipients: tuple[Recipient, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: Template
    params: Params = Field(default_factory=dict)
    regarding: Regarding | None = None


class Language(StrEnum):
    """Language a recipient reads notifications in."""

    ZH_CN = "zh-CN"
    EN = "en"


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _known_zone(value: str) -> str:
    # Refused when subscribing, not when a notice is due: an unknown zone would fail every
    # delivery to this person, and with it the notice of everyone after them.
    if value not in _zones():
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai")
    return value


KnownZone = on_input(_known_zone)
"""In commands, an IANA time zone this machine knows."""


class QuietHours(Value):
    """Local hours in which a person is not disturbed; deliveries wait until ``end``.

    ``start`` after ``end`` spans midnight (22:00-07:00).
    """

    start: time = Field(examples=["22:00:00"])
    end: time = Field(examples=["07:00:00"])
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=60), Storable, KnownZone] = Field(
        default="Asia/Shanghai", examples=["Asia/Shanghai"], description="An IANA time zone name.")


Address = Annotated[
    str,
    StringConstraints(min_length=3, max_length=2048, pattern=r"^\S+$"),
    Storable,
    Field(description="Email address, phone number, WeChat openid or https URL, by channel.",
          examples=["resident-0042@example.cn"]),
]


class Subscribe(Command):
    """Subscribe a person or a district system to notifications on one channel.

    A person receives everything addressed to them (as a council member, elector,
    implementer, …) on every channel they subscribed; ``event_types`` adds events they
    follow, narrowed to ``council_ids`` and ``proposal_ids`` when given.
    """

    subscription_id: NewId = None
    subscriber: Recipient = Field(description="A person or a system (kind ``person`` or ``system``).")
    channel: Channel
    address: Address
    language: Language = Language.ZH_CN
    event_types: tuple[TypeName, ...] = ()
    council_ids: tuple[Id, ...] = ()
    proposal_ids: tuple[Id, ...] = ()
    quiet_hours: QuietHours | None = None


class Unsubscribe(Command):
    """End a subscription; nothing more is sent through it."""

    subscription_id: Id


class SetDefaultContact(Command):
    """Set the default contact of a person, an organisation or a council (replaces it).

    The district's directory of default contacts is how the platform reaches a party
    that subscribed to nothing. Notices addressed to a party that has no subscription of its own go to its default
    contact; a task's reminders for the implementer's staff go to the implementer
    organisation's contact when the person has neither (services/notify/README.md).
    """

    party_id: Id = Field(description="A person, an organisation (an implementer's id) or a council.")
    channel: Channel = Field(description="Email, SMS, WeChat or webhook (a signed HTTPS endpoint).")
    address: Address
    language: Language = Language.ZH_CN


class RemoveDefaultContact(Command):
    """Take a party out of the district's directory of default contacts."""

    party_id: Id
