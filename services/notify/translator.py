"""Maps notify's private domain events to its public contracts; the rest stays private
(subscriptions, claims).

Every public event is keyed (Kafka key and ``ce_subject``) by its ``notification_id``:
a delivery has no public id of its own, and its notification's id is the same on all of
its events, so each delivery's outcomes stay in order (and on the partition of the
notification's ``NotificationRequested``; the deliveries of one notification share it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.common import Actor, Role
from contracts.notify import (
    Channel,
    FailureReason,
    NotificationDelivered,
    NotificationFailed,
    NotificationRequested,
    Recipient,
    Regarding,
)
from services.notify.domain import Delivery, Notification
from yishi.relay import Translator
from yishi.store import RecordedEvent
from yishi.translation import Public, common_fields, translator


def _public(event: Any, recorded: RecordedEvent) -> Public | None:
    """The public model of a notify domain event, keyed by its notification; None for the rest."""
    meta = recorded.metadata
    # Notify's public events name no seat: the actor as notify has always published it.
    common = common_fields(recorded, Actor(id=meta["actor"], role=Role(meta.get("actor_role") or Role.SYSTEM)))
    if isinstance(event, Notification.Created):
        model = NotificationRequested(
            **common, notification_id=event.notification_id,
            recipients=tuple(Recipient(kind=k, id=i) for k, i in event.recipients),
            channels=tuple(Channel(c) for c in event.channels), template=event.template, params=event.params,
            regarding=Regarding(type=event.regarding[0], subject=event.regarding[1]) if event.regarding else None)
    elif isinstance(event, Notification.NoRecipient):
        model = NotificationFailed(**common, notification_id=event.notification_id,
                                   recipient_id=event.recipient_id, channel=None, attempt=1,
                                   reason=FailureReason.NO_RECIPIENT,
                                   detail="no subscription and no default contact", will_retry=False)
    elif isinstance(event, Delivery.Delivered):
        model = NotificationDelivered(**common, notification_id=event.notification_id,
                                      recipient_id=event.recipient_id, channel=event.channel,
                                      attempt=event.attempt)
    elif isinstance(event, (Delivery.Failed, Delivery.DeadLettered)):
        model = NotificationFailed(**common, notification_id=event.notification_id,
                                   recipient_id=event.recipient_id, channel=event.channel, attempt=event.attempt,
                                   reason=event.reason, detail=event.detail,
                                   will_retry=isinstance(event, Delivery.Failed))
    else:
        return None
    return model, event.notification_id


def make_translator(to_domain_event: Callable[[RecordedEvent], Any]) -> Translator:
    """A relay translator; ``to_domain_event`` decodes stored rows (the repository's mapper)."""
    return translator(to_domain_event, _public)
