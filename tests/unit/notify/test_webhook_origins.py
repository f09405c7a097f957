"""Subscribed webhooks may only go to the configured origins (YISHI_NOTIFY_WEBHOOK_ORIGINS), the
ones the deployment's egress allows; bulletin boards are configured, so always allowed."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from contracts.notify import Channel, FailureReason
from services.notify.channels import Message, SendFailed, build_senders
from services.notify.settings import NotifySettings


def message(address: str) -> Message:
    return Message("d-1", "n-1", "r-1", address, "en", "proposal.published", "Subject", "Body", None)


def senders(settings: NotifySettings, sent: list[str]) -> dict:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return build_senders(settings, client, lambda: datetime.now(timezone.utc))


async def test_a_subscribed_webhook_outside_the_origins_fails_for_good():
    sent: list[str] = []
    channel = senders(NotifySettings(webhook_secret="s", webhook_origins="https://hooks.example, https://b.example:8443",
                                     bulletin_board_urls="https://board.example/notices"), sent)
    await channel[Channel.WEBHOOK].send(message("https://HOOKS.example:443/district/gulou"))
    await channel[Channel.WEBHOOK].send(message("https://b.example:8443/x"))
    await channel[Channel.NOTICE_BOARD].send(message("https://board.example/notices"))
    for address in ("https://evil.example/x", "http://hooks.example/x", "https://b.example/x",
                    "https://169.254.169.254/latest/meta-data"):
        with pytest.raises(SendFailed) as failed:
            await channel[Channel.WEBHOOK].send(message(address))
        assert failed.value.permanent and failed.value.reason is FailureReason.INVALID_ADDRESS
    assert sent == ["https://hooks.example/district/gulou", "https://b.example:8443/x", "https://board.example/notices"]


async def test_without_origins_any_webhook_goes():
    sent: list[str] = []
    await senders(NotifySettings(webhook_secret="s"), sent)[Channel.WEBHOOK].send(message("https://any.example/x"))
    assert sent == ["https://any.example/x"]


@pytest.mark.parametrize("origin", ["https://hooks.example/path", "hooks.example", "https://hooks.example:443"])
def test_origins_are_origins(origin):
    with pytest.raises(ValueError, match="not an origin"):
        NotifySettings(webhook_origins=origin)
