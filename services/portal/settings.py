"""Settings of the portal service, from environment variables with the prefix
``YISHI_PORTAL_`` (see README.md's configuration table)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PortalSettings(BaseSettings):
    """What the district decides about its public pages."""

    model_config = SettingsConfigDict(env_prefix="YISHI_PORTAL_", extra="ignore")

    show_names: bool = Field(default=False, description="Show residents' ids on the public pages (true) or "
                             "mask them (false, the default): who acted is then told by role and a masked id.")
    embed_ancestors: str = Field(default="*", description="The sites that may frame the roadmap widget "
                                 "(/embed/...), as CSP frame-ancestors sources, space-separated; other pages "
                                 "deny framing.")
    # Signing in (services/portal/signin.py) and where its forms send their commands.
    oidc_discovery_url: str | None = Field(default=None, description="The district provider's OpenID discovery "
                                           "document; unset: YISHI_AUTH_ISSUER's /.well-known/openid-configuration.")
    oidc_client_id: str = Field(default="yishi-portal", description="The portal's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="Its secret, for a confidential client; "
                                                 "unset: a public client (PKCE alone).")
    oidc_scope: str = Field(default="openid", description="The scopes asked for at sign-in.")
    session_secret: SecretStr | None = Field(default=None, description="Key signing the session cookie; unset: "
                                             "one drawn at start (sessions end with the process; set it for "
                                             "replicas).")
    session_https_only: bool = Field(default=False, description="Send the session cookie over HTTPS only (set "
                                     "it in production).")
    service_urls: dict[str, str] = Field(default_factory=dict, description='Where the forms send commands, JSON: '
                                         '{"proposals": "http://proposals:8000", "voting": …, "oversight": …}.')
