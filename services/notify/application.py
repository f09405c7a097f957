"""Notify's command handlers and the fan-out every notice goes through.

:class:`Notifier` turns one notice (a template, its parameters, its targets) into a
``Notification`` and one ``Delivery`` per recipient, channel and address, rendered in
each recipient's language, in the caller's transaction. Ids are derived from the source,
so the same source can never fan out twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time

import asyncpg

from contracts.common import RejectionReason, Role
from contracts.permissions import STAFF as PERMISSION_STAFF
from contracts.notify import (
    Channel,
    Language,
    Recipient,
    RecipientKind,
    RemoveDefaultContact,
    RequestNotification,
    SetDefaultContact,
    Subscribe,
    Unsubscribe,
)
from services.notify import projections
from services.notify.domain import DefaultContact, Delivery, Notification, Subscription, after_quiet_hours, \
    notification_uuid, subscription_uuid
from services.notify.settings import NotifySettings
from services.notify.templates import TemplateError, Templates
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext
from yishi.repository import Repository
from yishi.rules import Rejected
from yishi.store import Metadata

SYSTEM_ACTOR = "yishi-notify"
STAFF = PERMISSION_STAFF | {Role.SYSTEM}
"""Roles that may manage other people's subscriptions (who may send notices is in the
permission table)."""

FOLLOWABLE = frozenset({"ProposalPublished", "VoteOpened", "VoteClosed", "ResolutionRegistered", "TaskStalled",
                        "ReminderDue"})
"""Event types a subscription may follow (the ones notify turns into notices)."""

_ADDRESS = {
    Channel.EMAIL: re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    Channel.WEBHOOK: re.compile(r"^https?://\S+$"),
    Channel.SMS: re.compile(r"^\+?[0-9]{5,20}$"),
    Channel.WECHAT: re.compile(r"^[A-Za-z0-9_-]{6,64}$"),
}


@dataclass(frozen=True)
class Target:
    """One recipient on one channel and address, in one language."""

    kind: RecipientKind
    recipient_id: str
    channel: Channel
    address: str
    language: Language
    quiet_hours: Mapping | None = None


def targets_from(rows: Iterable[asyncpg.Record]) -> list[Target]:
    """Targets from subscription rows."""
    return [Target(RecipientKind(r["subscriber_kind"]), r["subscriber_id"], Channel(r["channel"]), r["address"],
                   Language(r["language"]), json.loads(r["quiet_hours"]) if r["quiet_hours"] else None)
            for r in rows]


def board_targets(settings: NotifySettings) -> list[Target]:
    """The configured bulletin boards, for public notices (公示)."""
    return [Target(RecipientKind.SYSTEM, f"board-{i + 1}", Channel.NOTICE_BOARD, url,
                   settings.bulletin_board_language) for i, url in enumerate(settings.bulletin_board_urls)]


class Notifier:
    """Records notices and their deliveries."""

    def __init__(self, repository: Repository, templates: Templates, settings: NotifySettings, clock: Clock,
                 channels: Iterable[Channel]) -> None:
        self.repository = repository
        self.templates = templates
        self.settings = settings
        self.clock = clock
        self.channels = frozenset(channels)

    def meta(self, district: str, correlation_id: str, causation_id: str | None) -> Metadata:
        """Metadata of what the service records by itself (reactions and timers)."""
        return Metadata(actor=SYSTEM_ACTOR, actor_role=Role.SYSTEM.value, district=district,
                        correlation_id=correlation_id, causation_id=causation_id, occurred_at=self.clock.now())

    async def notify(self, conn: asyncpg.Connection, *, district: str, notification_id: str, template: str,
                     params: Mapping[str, str], regarding: tuple[str, str] | None, targets: Iterable[Target],
                     meta: Metadata, expires_at: datetime | None = None,
                     required: Iterable[Recipient] = ()) -> int:
        """Record the notice and its deliveries; returns how many deliveries were created
        (0 when there is nobody to reach or the notice was recorded before).

        ``required`` are the recipients the notice is for (a reminder's): one of them with
        no target is recorded as a failure (``NotificationFailed``, ``no_recipient``),
        never dropped in silence; anyone else without a target is simply not addressed."""
        unique: dict[tuple[str, str, str], Target] = {}
        for t in targets:
            if t.channel in self.channels:
                unique.setdefault((t.recipient_id, t.channel, t.address), t)
        reached = {t.recipient_id for t in unique.values()}
        unreached = {r.id: r for r in required if r.id not in reached}
        if (not unique and not unreached) or await self.repository.exists(
                notification_uuid(district, notification_id), conn=conn):
            return 0
        now = self.clock.now()
        deliveries = []
        for t in unique.values():
            subject, body = self.templates.render(template, t.language, params)
            not_before = now
            if t.quiet_hours and t.kind is RecipientKind.PERSON:
                q = t.quiet_hours
                not_before = after_quiet_hours(now, time.fromisoformat(q["start"]), time.fromisoformat(q["end"]),
                                               q["timezone"])
            deliveries.append(Delivery(
                district=district, notification_id=notification_id, recipient_id=t.recipient_id,
                channel=t.channel.value, address=t.address, recipient_kind=t.kind.value, language=t.language.value,
                template=template, subject=subject, body=body, regarding=list(regarding) if regarding else None,
                requested_at=now, not_before=not_before, expires_at=expires_at,
                max_attempts=self.settings.max_attempts))
        notification = Notification(
            district=district, notification_id=notification_id, template=template, params=dict(params),
            recipients=sorted({(t.kind.value, t.recipient_id) for t in unique.values()}
                              | {(r.kind.value, r.id) for r in unreached.values()}),
            channels=sorted({t.channel.value for t in unique.values()}),
            regarding=list(regarding) if regarding else None)
        for recipient_id in sorted(unreached):
            notification.no_recipient(recipient_id)
        await self.repository.save(notification, *deliveries, meta=meta, conn=conn)
        for d in deliveries:
            await projections.save_delivery(conn, d)
        return len(deliveries)


def build_bus(repository: Repository, clock: Clock, notifier: Notifier) -> CommandBus:
    """The notify commands, one handler each."""
    bus = CommandBus("notify", repository, clock)

    @bus.handles(Subscribe)
    async def subscribe(cmd: Subscribe, ctx: CommandContext) -> str:
        _authorise_for(cmd.actor, cmd.subscriber)
        _check_channel(cmd.channel, cmd.address, cmd.subscription_id)
        if cmd.subscriber.kind not in (RecipientKind.PERSON, RecipientKind.SYSTEM):
            raise Rejected(RejectionReason.INVALID_COMMAND, "a subscriber is a person or a system",
                           cmd.subscription_id)
        unknown = set(cmd.event_types) - FOLLOWABLE
        if unknown:
            raise Rejected(RejectionReason.INVALID_COMMAND, f"cannot follow {sorted(unknown)}; "
                           f"followable: {sorted(FOLLOWABLE)}", cmd.subscription_id)
        terms = cmd.model_dump(mode="json", include={"subscriber", "channel", "address", "language", "event_types",
                                                     "council_ids", "proposal_ids", "quiet_hours"})
        stream = subscription_uuid(cmd.district, cmd.subscription_id)
        if await ctx.repository.exists(stream, conn=ctx.conn):
            existing = await ctx.repository.get(Subscription, stream, conn=ctx.conn)
            if existing.terms == terms and existing.active:
                return cmd.subscription_id
            raise Rejected(RejectionReason.ALREADY_EXISTS, "subscription id already used", cmd.subscription_id)
        subscription = Subscription(district=cmd.district, subscription_id=cmd.subscription_id, terms=terms)
        await ctx.save(cmd, subscription)
        await projections.save_subscription(ctx.conn, subscription)
        return cmd.subscription_id

    @bus.handles(Unsubscribe)
    async def unsubscribe(cmd: Unsubscribe, ctx: CommandContext) -> str:
        stream = subscription_uuid(cmd.district, cmd.subscription_id)
        if not await ctx.repository.exists(stream, conn=ctx.conn):
            raise Rejected(RejectionReason.NOT_FOUND, "no such subscription", cmd.subscription_id)
        subscription = await ctx.repository.get(Subscription, stream, conn=ctx.conn)
        _authorise_for(cmd.actor, Recipient.model_validate(subscription.terms["subscriber"]))
        subscription.cancel()
        await ctx.save(cmd, subscription)
        await projections.save_subscription(ctx.conn, subscription)
        return cmd.subscription_id

    @bus.handles(SetDefaultContact)
    async def set_default_contact(cmd: SetDefaultContact, ctx: CommandContext) -> str:
        _check_channel(cmd.channel, cmd.address, cmd.party_id)
        terms = cmd.model_dump(mode="json", include={"channel", "address", "language"})
        stream = DefaultContact.create_id(cmd.district, cmd.party_id)
        if await ctx.repository.exists(stream, conn=ctx.conn):
            contact = await ctx.repository.get(DefaultContact, stream, conn=ctx.conn)
            if not contact.change(terms):
                return cmd.party_id
        else:
            contact = DefaultContact(district=cmd.district, party_id=cmd.party_id, terms=terms)
        await ctx.save(cmd, contact)
        await projections.save_default_contact(ctx.conn, contact)
        return cmd.party_id

    @bus.handles(RemoveDefaultContact)
    async def remove_default_contact(cmd: RemoveDefaultContact, ctx: CommandContext) -> str:
        stream = DefaultContact.create_id(cmd.district, cmd.party_id)
        if not await ctx.repository.exists(stream, conn=ctx.conn):
            raise Rejected(RejectionReason.NOT_FOUND, f"{cmd.party_id} has no default contact", cmd.party_id)
        contact = await ctx.repository.get(DefaultContact, stream, conn=ctx.conn)
        contact.remove()
        await ctx.save(cmd, contact)
        await projections.save_default_contact(ctx.conn, contact)
        return cmd.party_id

    @bus.handles(RequestNotification)
    async def request_notification(cmd: RequestNotification, ctx: CommandContext) -> str:
        people: set[str] = set()
        systems: set[str] = set()
        for r in cmd.recipients:
            if r.kind is RecipientKind.PERSON:
                people.add(r.id)
            elif r.kind is RecipientKind.COUNCIL:
                people.update(await projections.council_members(ctx.conn, cmd.district, r.id))
            elif r.kind is RecipientKind.SYSTEM:
                systems.add(r.id)
        rows = await projections.contacts_of(ctx.conn, cmd.district, people)
        rows += await ctx.conn.fetch(
            "SELECT * FROM subscriptions WHERE district = $1 AND active AND subscriber_kind = 'system' "
            "AND subscriber_id = ANY($2::text[])", cmd.district, list(systems))
        targets = [t for t in targets_from(rows) if t.channel in cmd.channels]
        if Channel.NOTICE_BOARD in cmd.channels and any(r.kind is RecipientKind.COMMUNITY for r in cmd.recipients):
            targets += board_targets(notifier.settings)
        try:
            await notifier.notify(
                ctx.conn, district=cmd.district, notification_id=cmd.notification_id, template=cmd.template,
                params=cmd.params, regarding=(cmd.regarding.type, cmd.regarding.subject) if cmd.regarding else None,
                targets=targets, meta=ctx.meta(cmd.actor, cmd.district))
        except TemplateError as exc:
            raise Rejected(RejectionReason.INVALID_COMMAND, str(exc), cmd.notification_id) from None
        return cmd.notification_id

    def _check_channel(channel: Channel, address: str, subject: str) -> None:
        """A channel this deployment delivers on, and an address of its form."""
        if channel not in notifier.channels or channel is Channel.NOTICE_BOARD:
            raise Rejected(RejectionReason.INVALID_COMMAND, f"channel {channel} cannot be subscribed to here",
                           subject)
        pattern = _ADDRESS.get(channel)
        if pattern is not None and not pattern.match(address):
            raise Rejected(RejectionReason.INVALID_COMMAND, f"not a valid {channel} address", subject)

    return bus


def _authorise_for(actor, subscriber: Recipient) -> None:
    """People manage their own subscriptions; staff and systems manage anyone's."""
    if actor.role in STAFF:
        return
    if subscriber.kind is RecipientKind.PERSON and actor.id == subscriber.id:
        return
    raise Rejected(RejectionReason.NOT_AUTHORISED, "only the subscriber or staff may change this subscription")

