"""Settings of the portal service, from environment variables with the prefix
``YISHI_PORTAL_`` (see README.md's configuration table)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PortalSettings(BaseSettings):
    """What the district decides about its public pages."""

    model_config = SettingsConfigDict(env_prefix="YISHI_PORTAL_", extra="ignore")

    show_names: bool = Field(default=False, description="Show residents' ids on the public pages (true) or "
                             "mask them (false, the default): who acted is then told by role and a masked id.")
    embed_ancestors: str = Field(default="*", description="The sites that may frame the roadmap widget "
                                 "(/embed/...), as CSP frame-ancestors sources, space-separated; other pages "
                                 "deny framing.")
