"""Templates are checked at start-up; webhook signatures; per-channel rate limits."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from contracts.notify import Channel, Language
from services.notify.channels import (
    SIGNATURE_HEADER, TIMESTAMP_HEADER, Message, RateLimiter, WebhookSender, notice_body, sign, verify,
)
from services.notify.main import spec
from services.notify.templates import CATALOGUE, PARAMS, Templates, TemplateError, default_templates


def test_every_template_renders_in_both_languages():
    templates = default_templates()
    for key, params in PARAMS.items():
        zh = templates.render(key, Language.ZH_CN, {p: f"<{p}>" for p in params})
        en = templates.render(key, Language.EN, {p: f"<{p}>" for p in params})
        assert zh != en and all("$" not in text for text in zh + en)


def test_a_missing_template_stops_start_up():
    broken = {k: dict(v) for k, v in CATALOGUE.items()}
    del broken["vote.closing_soon"][Language.EN]
    with pytest.raises(TemplateError, match=r"vote.closing_soon \[en\]: missing"):
        spec(templates=Templates(broken, PARAMS))


def test_a_placeholder_the_service_never_supplies_stops_start_up():
    broken = {k: dict(v) for k, v in CATALOGUE.items()}
    broken["vote.opened"][Language.ZH_CN] = ("表决:${question}", "请在 ${deadline} 前投票")
    with pytest.raises(TemplateError, match="deadline"):
        Templates(broken, PARAMS)


def test_rendering_reports_missing_parameters():
    with pytest.raises(TemplateError, match="title"):
        default_templates().render("proposal.published", Language.EN, {"proposal_id": "p"})


def test_signature_verifies_and_rejects_tampering_and_replays():
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    ts = str(int(now.timestamp()))
    signature = sign(b"k", ts, b'{"a":1}')
    assert verify(b"k", ts, b'{"a":1}', signature, now)
    assert not verify(b"k", ts, b'{"a":2}', signature, now)
    assert not verify(b"other", ts, b'{"a":1}', signature, now)
    assert not verify(b"k", ts, b'{"a":1}', signature, now.replace(minute=6), tolerance_s=300)  # a replay
    assert not verify(b"k", "soon", b'{"a":1}', signature, now)


async def test_a_receiver_verifies_a_delivery_with_the_standard_webhooks_library():
    """Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), so receivers
    use the spec's ready-made verifiers; the secret is ``whsec_`` + base64 of the
    configured secret's bytes. The old X-Yishi-* headers stay for one release."""
    secret = b"a-shared-secret"
    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    message = Message("delivery-1", "notification-1", "sys-1", "https://district.example/hook", "zh-CN",
                      "vote.closed", "表决结果", "通过", None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
        sender = WebhookSender(client, secret, lambda: datetime.now(timezone.utc), lambda m: m.address, notice_body)
        await sender.send(message)
    [request] = sent
    body, headers = request.content, dict(request.headers)

    receiver = Webhook("whsec_" + base64.b64encode(secret).decode())
    assert receiver.verify(body, headers) == json.loads(body) == notice_body(message)
    assert headers["webhook-id"] == "delivery-1" == headers["idempotency-key"]
    assert Webhook(secret).verify(body, headers, json_parse=False) is None  # raw key bytes work too
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body.replace("通过".encode(), "否决".encode()), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(b"another-secret").verify(body, headers)

    # The old header, still sent for one release: same timestamp, same secret.
    assert headers[TIMESTAMP_HEADER.lower()] == headers["webhook-timestamp"]
    assert verify(secret, headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()],
                  datetime.now(timezone.utc))


def test_rate_limit_per_channel_refills_over_time():
    clock = [0.0]
    limiter = RateLimiter({Channel.SMS: 2, Channel.EMAIL: 60}, now=lambda: clock[0])
    assert [limiter.try_acquire(Channel.SMS) for _ in range(3)] == [True, True, False]
    assert limiter.try_acquire(Channel.EMAIL)  # channels have separate budgets
    clock[0] += 30  # half a minute: one more SMS
    assert [limiter.try_acquire(Channel.SMS) for _ in range(2)] == [True, False]
    assert limiter.try_acquire(Channel.WEBHOOK)  # no limit configured
