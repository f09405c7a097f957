"""Notify's command handlers and the fan-out every notice goes through.

:class:`Notifier` turns one notice (a template, its parameters, its targets) into a
``Notification`` and one ``Delivery`` per recipient, channel and address, rendered in
each recipient's language; the handler saves them in the command's transaction, with the
deliveries' rows (:func:`services.notify.projections.project`, the bus's hook). Who is
reached, and how, is asked of an :class:`~services.notify.audience.Audience`. Ids are
derived from the source, so the same source can never fan out twice.

Besides the public commands, the platform's own :class:`GiveNotice` is what another
service's event (:mod:`services.notify.consumers`) or the vote reminder's timer
(:mod:`services.notify.worker`) asks for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, time

from eventsourcing.domain import Aggregate
from pydantic import AwareDatetime, Field

from contracts.common import Command, RejectionReason, Role, Value
from contracts.permissions import STAFF as PERMISSION_STAFF
from contracts.notify import (
    Channel,
    Recipient,
    RecipientKind,
    RemoveDefaultContact,
    RequestNotification,
    SetDefaultContact,
    Subscribe,
    Unsubscribe,
)
from services.notify import projections
from services.notify.audience import Audience, Target
from services.notify.domain import DefaultContact, Delivery, Notification, Subscription, after_quiet_hours
from services.notify.settings import NotifySettings
from services.notify.templates import TemplateError, Templates
from yishi.clock import Clock
from yishi.commands import CommandBus, CommandContext, Projection
from yishi.repository import Repository
from yishi.rules import Rejected

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


class Followed(Value):
    """Which followers a notice also reaches: the subscriptions that follow its event type,
    within their council and proposal filters."""

    council_id: str | None = None
    proposal_id: str | None = None


class GiveNotice(Command):
    """Internal: the notice another service's event (or the vote reminder's timer) asks for.
    Its audience is named here and resolved when it is handled, through the
    :class:`~services.notify.audience.Audience`; the same source always names the same
    ``notification_id``, so it never fans out twice."""

    notification_id: str
    template: str
    params: dict[str, str] = Field(default_factory=dict)
    regarding: tuple[str, str]
    """The event's type and subject."""
    people: tuple[str, ...] = ()
    """Addressed by name: their subscriptions, else their entry in the directory."""
    members_of: str | None = None
    """A council whose members are addressed too."""
    people_of_task: str | None = None
    """A task whose implementer's people and resolution's inspectors are addressed too."""
    via_implementer_of: str | None = None
    """A task: an addressed person reached by neither who accepted it for its implementer
    is reached at the implementer organisation's entry."""
    followers: Followed | None = None
    public: bool = False
    """Also the bulletin boards (公示)."""
    expires_at: AwareDatetime | None = None
    required: tuple[Recipient, ...] = ()
    """As for :meth:`Notifier.notify`."""


def board_targets(settings: NotifySettings) -> list[Target]:
    """The configured bulletin boards, for public notices (公示)."""
    return [Target(RecipientKind.SYSTEM, f"board-{i + 1}", Channel.NOTICE_BOARD, url,
                   settings.bulletin_board_language) for i, url in enumerate(settings.bulletin_board_urls)]


class Notifier:
    """Records notices and their deliveries; asks ``audience`` who is reached how."""

    def __init__(self, audience: Audience, templates: Templates, settings: NotifySettings,
                 channels: Iterable[Channel]) -> None:
        self.audience = audience
        self.templates = templates
        self.settings = settings
        self.channels = frozenset(channels)

    async def notify(self, ctx: CommandContext, command: Command, *, notification_id: str, template: str,
                     params: Mapping[str, str], regarding: tuple[str, str] | None, targets: Iterable[Target],
                     expires_at: datetime | None = None, required: Iterable[Recipient] = ()) -> None:
        """Record the notice ``command`` asks for and its deliveries (nothing when there is
        nobody to reach or the notice was recorded before: the same notification id never
        fans out twice). A template that does not fit is refused (``invalid_command``).

        ``required`` are the recipients the notice is for (a reminder's): one of them with
        no target is recorded as a failure (``NotificationFailed``, ``no_recipient``),
        never dropped in silence; anyone else without a target is simply not addressed."""
        if await ctx.find(Notification, command.district, notification_id) is not None:
            return
        try:
            recorded = self.fan_out(district=command.district, notification_id=notification_id, template=template,
                                    params=params, regarding=regarding, targets=targets, now=ctx.clock.now(),
                                    expires_at=expires_at, required=required)
        except TemplateError as exc:
            raise Rejected(RejectionReason.INVALID_COMMAND, str(exc), notification_id) from None
        if recorded:
            await ctx.save(command, *recorded)

    def fan_out(self, *, district: str, notification_id: str, template: str, params: Mapping[str, str],
                regarding: tuple[str, str] | None, targets: Iterable[Target], now: datetime,
                expires_at: datetime | None = None, required: Iterable[Recipient] = ()) -> list[Aggregate]:
        """The notification and its deliveries, one per recipient, channel (one this
        deployment delivers on) and address; none when there is nobody to reach."""
        unique: dict[tuple[str, str, str], Target] = {}
        for t in targets:
            if t.channel in self.channels:
                unique.setdefault((t.recipient_id, t.channel, t.address), t)
        reached = {t.recipient_id for t in unique.values()}
        unreached = {r.id: r for r in required if r.id not in reached}
        if not unique and not unreached:
            return []
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
        return [notification, *deliveries]


def build_bus(repository: Repository, clock: Clock, notifier: Notifier, *,
              project: Projection | None = projections.project) -> CommandBus:
    """The notify commands, one handler each; ``project`` keeps the read models of what
    they save (the tables by default)."""
    bus = CommandBus("notify", repository, clock, project=project)
    audience = notifier.audience

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
        existing = await ctx.find(Subscription, cmd.district, cmd.subscription_id)
        if existing is not None:
            if existing.terms == terms and existing.active:
                return cmd.subscription_id
            raise Rejected(RejectionReason.ALREADY_EXISTS, "subscription id already used", cmd.subscription_id)
        await ctx.save(cmd, Subscription(district=cmd.district, subscription_id=cmd.subscription_id, terms=terms))
        return cmd.subscription_id

    @bus.handles(Unsubscribe)
    async def unsubscribe(cmd: Unsubscribe, ctx: CommandContext) -> str:
        subscription = await ctx.load(Subscription, cmd.district, cmd.subscription_id)
        _authorise_for(cmd.actor, Recipient.model_validate(subscription.terms["subscriber"]))
        subscription.cancel()
        await ctx.save(cmd, subscription)
        return cmd.subscription_id

    @bus.handles(SetDefaultContact)
    async def set_default_contact(cmd: SetDefaultContact, ctx: CommandContext) -> str:
        _check_channel(cmd.channel, cmd.address, cmd.party_id)
        terms = cmd.model_dump(mode="json", include={"channel", "address", "language"})
        contact = await ctx.find(DefaultContact, cmd.district, cmd.party_id)
        if contact is None:
            contact = DefaultContact(district=cmd.district, party_id=cmd.party_id, terms=terms)
        elif not contact.change(terms):
            return cmd.party_id
        await ctx.save(cmd, contact)
        return cmd.party_id

    @bus.handles(RemoveDefaultContact)
    async def remove_default_contact(cmd: RemoveDefaultContact, ctx: CommandContext) -> str:
        contact = await ctx.find(DefaultContact, cmd.district, cmd.party_id)
        if contact is None:
            raise Rejected(RejectionReason.NOT_FOUND, f"{cmd.party_id} has no default contact", cmd.party_id)
        contact.remove()
        await ctx.save(cmd, contact)
        return cmd.party_id

    @bus.handles(RequestNotification)
    async def request_notification(cmd: RequestNotification, ctx: CommandContext) -> str:
        people: set[str] = set()
        systems: set[str] = set()
        for r in cmd.recipients:
            if r.kind is RecipientKind.PERSON:
                people.add(r.id)
            elif r.kind is RecipientKind.COUNCIL:
                people.update(await audience.council_members(ctx.conn, cmd.district, r.id))
            elif r.kind is RecipientKind.SYSTEM:
                systems.add(r.id)
        found = (await audience.contacts_of(ctx.conn, cmd.district, people)
                 + await audience.systems(ctx.conn, cmd.district, systems))
        targets = [t for t in found if t.channel in cmd.channels]
        if Channel.NOTICE_BOARD in cmd.channels and any(r.kind is RecipientKind.COMMUNITY for r in cmd.recipients):
            targets += board_targets(notifier.settings)
        await notifier.notify(ctx, cmd, notification_id=cmd.notification_id, template=cmd.template,
                              params=cmd.params,
                              regarding=(cmd.regarding.type, cmd.regarding.subject) if cmd.regarding else None,
                              targets=targets)
        return cmd.notification_id

    # -- the platform's own, asked for by other services' events and the vote reminder --

    @bus.handles(GiveNotice, internal=True)
    async def give_notice(cmd: GiveNotice, ctx: CommandContext) -> str:
        conn, district = ctx.conn, cmd.district
        people = list(cmd.people)
        if cmd.members_of is not None:
            people += await audience.council_members(conn, district, cmd.members_of)
        if cmd.people_of_task is not None:
            people += await audience.task_audience(conn, district, cmd.people_of_task)
        targets = await audience.contacts_of(conn, district, people)
        if cmd.via_implementer_of is not None:
            reached = {t.recipient_id for t in targets}
            for person in sorted(set(people) - reached):
                targets += await audience.organisation_contact(conn, district, cmd.via_implementer_of, person)
        if cmd.followers is not None:
            targets += await audience.followers_of(conn, district, cmd.regarding[0], cmd.followers.council_id,
                                                   cmd.followers.proposal_id)
        if cmd.public:
            targets += board_targets(notifier.settings)
        await notifier.notify(ctx, cmd, notification_id=cmd.notification_id, template=cmd.template,
                              params=cmd.params, regarding=cmd.regarding, targets=targets,
                              expires_at=cmd.expires_at, required=cmd.required)
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

