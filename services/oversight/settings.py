"""Settings of the oversight service, from environment variables with the prefix
``YISHI_OVERSIGHT_``."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OversightSettings(BaseSettings):
    """How the reminder scheduler counts time."""

    model_config = SettingsConfigDict(env_prefix="YISHI_OVERSIGHT_", extra="ignore")

    policy_day_s: float = Field(
        default=86_400.0, gt=0,
        description="Seconds in one day of a reminder policy. Only a demonstration or an acceptance test "
                    "shortens it, so that a stall of `stall_days` shows within seconds.")

    @property
    def policy_day(self) -> timedelta:
        """One policy day."""
        return timedelta(seconds=self.policy_day_s)
