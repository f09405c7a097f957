"""Delivery channels: email over SMTP and signed webhooks (district systems, SMS and WeChat
gateways, bulletin boards), plus per-channel rate limits.

Webhook requests are signed per the Standard Webhooks specification, with its library
(``standardwebhooks``): ``webhook-id`` (the delivery id, the same on every attempt),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,`` + base64
HMAC-SHA256 of ``"{id}.{timestamp}." + body``), so a receiver verifies them with the
spec's ready-made verifiers, which also reject replays older than five minutes. The
secret is the bytes of the configured one; as a Standard Webhooks secret it is written
``whsec_`` + their base64. ``Idempotency-Key`` (the delivery id) lets a receiver drop a
repeat sent after a restart.

For one release the old headers are sent too: ``X-Yishi-Timestamp`` (the same
timestamp) and ``X-Yishi-Signature`` (``sha256=`` + hex HMAC-SHA256 of
``"{timestamp}." + body``), checked by :func:`verify`; they go in the next release.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage

import aiosmtplib
import httpx
from standardwebhooks import Webhook

from contracts.notify import Channel, FailureReason
from services.notify.settings import NotifySettings, origin_of

SIGNATURE_HEADER = "X-Yishi-Signature"
TIMESTAMP_HEADER = "X-Yishi-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Message:
    """What a channel sends: one rendered delivery."""

    delivery_id: str
    notification_id: str
    recipient_id: str
    address: str
    language: str
    template: str
    subject: str
    body: str
    regarding: list[str] | None


class SendFailed(Exception):
    """A send did not go through; ``permanent`` failures are not retried."""

    def __init__(self, reason: FailureReason, detail: str, *, permanent: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.permanent = permanent


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The old signature header's value for ``body`` sent at ``timestamp`` (deprecated:
    the Standard Webhooks headers replace it after this release)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, now: datetime, tolerance_s: float = 300) -> bool:
    """Receiver side of the old header: the signature matches and the timestamp is within
    ``tolerance_s`` of ``now`` (new receivers use ``standardwebhooks.Webhook.verify``)."""
    try:
        age = abs(now.timestamp() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


class EmailSender:
    """Sends through an SMTP server; ``Message-ID`` is derived from the delivery id."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    async def send(self, message: Message) -> None:
        s = self.settings
        mail = EmailMessage()
        mail.set_content(message.body)  # first: it replaces every Content-* header
        mail["From"] = s.mail_from
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Message-ID"] = f"<{message.delivery_id}@yishi.notify>"
        mail["Content-Language"] = message.language
        mail["X-Yishi-Delivery"] = message.delivery_id
        try:
            await aiosmtplib.send(
                mail, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls, timeout=s.send_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise SendFailed(FailureReason.INVALID_ADDRESS, str(exc)[:2000], permanent=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(FailureReason.REJECTED_BY_CHANNEL, f"{exc.code} {exc.message}"[:2000],
                             permanent=500 <= exc.code < 600) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(FailureReason.UNREACHABLE, repr(exc)[:2000]) from exc


class WebhookSender:
    """POSTs a signed JSON body; ``url_of`` picks the endpoint and ``body_of`` the payload."""

    def __init__(self, client: httpx.AsyncClient, secret: bytes, clock_now: Callable[[], datetime],
                 url_of: Callable[[Message], str], body_of: Callable[[Message], dict]) -> None:
        self.client = client
        self.secret = secret
        self.webhook = Webhook(secret)
        self.now = clock_now
        self.url_of = url_of
        self.body_of = body_of

    async def send(self, message: Message) -> None:
        body = json.dumps(self.body_of(message), ensure_ascii=False, separators=(",", ":")).encode()
        seconds = int(self.now().timestamp())
        timestamp = str(seconds)
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: message.delivery_id,
                   "webhook-id": message.delivery_id, "webhook-timestamp": timestamp,
                   "webhook-signature": self.webhook.sign(message.delivery_id,
                                                          datetime.fromtimestamp(seconds, timezone.utc),
                                                          body.decode()),
                   TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self.secret, timestamp, body)}
        try:
            response = await self.client.post(self.url_of(message), content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendFailed(FailureReason.UNREACHABLE, repr(exc)[:2000]) from exc
        if response.is_success:
            return
        retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
        raise SendFailed(FailureReason.REJECTED_BY_CHANNEL, f"HTTP {response.status_code}: {response.text[:500]}",
                         permanent=not retryable)


def notice_body(message: Message) -> dict:
    """Payload for systems and bulletin boards: the whole rendered notice."""
    return {"delivery_id": message.delivery_id, "notification_id": message.notification_id,
            "recipient_id": message.recipient_id, "template": message.template, "language": message.language,
            "subject": message.subject, "body": message.body,
            "regarding": {"type": message.regarding[0], "subject": message.regarding[1]} if message.regarding else None}


def gateway_body(message: Message) -> dict:
    """Payload for SMS and WeChat gateways: who to text and what."""
    return {"delivery_id": message.delivery_id, "to": message.address, "language": message.language,
            "text": f"{message.subject}\n{message.body}"}


def build_senders(settings: NotifySettings, client: httpx.AsyncClient, clock_now: Callable[[], datetime]) -> dict:
    """The senders of every configured channel; a channel without settings has none."""
    senders: dict[Channel, object] = {}
    if settings.smtp_host:
        senders[Channel.EMAIL] = EmailSender(settings)
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value().encode()
        allowed = {origin_of(u) for u in settings.bulletin_board_urls} | set(settings.webhook_origins)

        def subscribed(message: Message) -> str:
            if settings.webhook_origins and origin_of(message.address) not in allowed:
                raise SendFailed(FailureReason.INVALID_ADDRESS, f"{origin_of(message.address)} is not in "
                                 "YISHI_NOTIFY_WEBHOOK_ORIGINS", permanent=True)
            return message.address

        by_address = WebhookSender(client, secret, clock_now, subscribed, notice_body)
        senders[Channel.WEBHOOK] = by_address
        senders[Channel.NOTICE_BOARD] = by_address  # the board's URL is the delivery's address
        for channel, url in ((Channel.SMS, settings.sms_gateway_url), (Channel.WECHAT, settings.wechat_gateway_url)):
            if url:
                senders[channel] = WebhookSender(client, secret, clock_now, lambda m, url=url: url, gateway_body)
    return senders


class RateLimiter:
    """A token bucket per channel: ``per_minute`` sends, in bursts of up to that many.

    Measured on a monotonic clock (``now``), because limits protect real gateways.
    """

    def __init__(self, per_minute: dict[Channel, int], now: Callable[[], float] = time.monotonic) -> None:
        self.rate = {c: n / 60.0 for c, n in per_minute.items()}
        self.capacity = dict(per_minute)
        self.now = now
        self.tokens = {c: float(n) for c, n in per_minute.items()}
        self.stamp = {c: now() for c in per_minute}

    def try_acquire(self, channel: Channel) -> bool:
        """Take one send from ``channel``'s budget; False when it is spent (try later)."""
        if channel not in self.rate:
            return True
        now = self.now()
        self.tokens[channel] = min(self.capacity[channel],
                                   self.tokens[channel] + (now - self.stamp[channel]) * self.rate[channel])
        self.stamp[channel] = now
        if self.tokens[channel] >= 1:
            self.tokens[channel] -= 1
            return True
        return False
