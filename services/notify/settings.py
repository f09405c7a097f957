"""Settings of the notify service: channel endpoints, credentials and delivery policy,
from environment variables with the prefix ``YISHI_NOTIFY_`` (see README.md)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contracts.notify import Channel, Language


class NotifySettings(BaseSettings):
    """Where each channel delivers and how hard the service tries."""

    model_config = SettingsConfigDict(env_prefix="YISHI_NOTIFY_", extra="ignore")

    smtp_host: str | None = Field(default=None, description="SMTP server; unset disables email.")
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "noreply@yishi.example"
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key for every webhook; unset disables webhook channels.")
    sms_gateway_url: str | None = Field(default=None, description="SMS gateway (a webhook receiver).")
    wechat_gateway_url: str | None = Field(default=None, description="WeChat gateway (a webhook receiver).")
    bulletin_board_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Bulletin-board webhooks that receive public notices (公示).")
    bulletin_board_language: Language = Language.ZH_CN
    webhook_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins (https://host[:port]) subscribed webhooks may use, "
        "comma-separated; a delivery to any other fails as an invalid address. Empty: any (development). "
        "With the gateways and boards, they are all the webhooks notify's egress must allow.")
    max_attempts: int = Field(default=5, ge=1, description="Tries before a delivery is dead-lettered.")
    backoff_base_s: float = Field(default=30.0, gt=0)
    backoff_max_s: float = Field(default=3600.0, gt=0)
    claim_lease_s: float = Field(default=300.0, gt=0, description="How long a claimed send may take "
                                 "before another worker may try again.")
    send_timeout_s: float = Field(default=10.0, gt=0)
    worker_interval_s: float = Field(default=0.5, gt=0, description="Delivery worker poll interval.")
    vote_reminder_lead_s: float = Field(default=86_400.0, gt=0,
                                        description="How long before a vote closes non-voters are reminded.")
    rate_per_minute: dict[Channel, int] = Field(
        default_factory=lambda: {Channel.EMAIL: 600, Channel.SMS: 60, Channel.WECHAT: 600,
                                 Channel.WEBHOOK: 1200, Channel.NOTICE_BOARD: 60},
        description='Per-channel send limit, JSON: {"email": 600, "sms": 60}.')

    @field_validator("bulletin_board_urls", "webhook_origins", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("webhook_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != origin_of(origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], nothing after)")
        return value


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-case, the default port left out."""
    parts = urlsplit(url)
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port and port != default else "")
