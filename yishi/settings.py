"""Configuration from environment variables (prefix ``YISHI_``), via pydantic-settings."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "YISHI_"
# The only YISHI_* variables that are not settings, read by the embedded stack of
# `yishi run` and the tests (yishi/embedded/) and by the developer scripts (scripts/).
NOT_SETTINGS = frozenset({"YISHI_EMBEDDED_KAFKA", "YISHI_KAFKA_CLASSPATH_FILE",
                          "YISHI_LOCK_TOOLS", "YISHI_INDEX_JSON_API"})


class Settings(BaseSettings):
    """Settings shared by every Yishi process.

    With ``database_url`` and ``kafka_bootstrap`` unset, the CLI starts the embedded
    stack and fills them in for the processes it launches.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN; each service uses its own schema in it."
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle that signed the brokers' certificates.")
    service: str = Field(default="", description="Service name: proposals, voting, oversight, notify.")
    districts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gulou"],
        description="Districts served by this deployment, comma-separated (e.g. gulou,chaoyang).",
    )
    db_schema: str | None = Field(
        default=None, description="Database schema of the service (default: the service name)."
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    log_json: bool = Field(default=True, description="JSON logs (true) or console logs (false).")
    db_pool_min: int = 1
    db_pool_max: int = 10
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_idle_wait_s: float = Field(default=0.5, gt=0, description="Poll interval when the log is idle: the "
                                     "fallback, as commits wake the relay (LISTEN/NOTIFY).")
    relay_takeover_grace_s: float = Field(
        default=5.0, gt=0, description="How long a relay that takes the lock over waits before it claims the "
        "cursor, so that its predecessor can store its last batch's; a batch must be published within half of it.")
    consumer_group_prefix: str = "yishi"
    consumer_commit_interval_s: float = Field(
        default=0.1, gt=0, le=10, description="How often consumers commit the offsets of the messages they are done "
        "with (one commit for all since the last); a crash redelivers at most this much, which the inbox recognises.")
    consumer_batch_max: int = Field(
        default=100, ge=1, le=1000, description="Most messages an event consumer handles together in one inbox "
        "transaction: those already fetched when it takes the next (so never a wait for more); 1 handles each alone.")
    poison_max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts in all at a message (or background-job item) whose "
        "handling fails deterministically before it is dead-lettered (or skipped); see yishi/failures.py.")
    poison_retry_delay_s: float = Field(default=0.2, ge=0, le=60, description="Pause after the first "
                                        "deterministic failure of a message, doubled after each further one.")
    transient_backoff_initial_s: float = Field(default=0.1, gt=0, description="Pause after a transient failure "
                                               "(connection, serialization, broker), doubled while it recurs.")
    transient_backoff_max_s: float = Field(default=30.0, gt=0, description="Longest pause between retries of a "
                                           "transient failure; such failures are retried without limit.")
    signing_key_file: str | None = Field(
        default=None, description="Ed25519 private key (PEM, PKCS#8) that signs log checkpoints; unset: a "
        "development key kept under $XDG_STATE_HOME/yishi/keys (see yishi/audit/checkpoints.py).")
    checkpoint_interval_s: float = Field(default=60.0, gt=0, description="Least time between signed checkpoints.")
    log_origin: str | None = Field(
        default=None, description="The origin line of the service's signed Merkle log checkpoints (C2SP "
        "tlog-checkpoint) and the name its note signatures carry; unset: yishi.<districts joined by ,>/<service>.")
    witness_urls: str | None = Field(
        default=None, description="Witnesses that cosign the service's checkpoints (C2SP tlog-witness): "
        "comma-separated 'URL VKEY' pairs, VKEY the witness's cosignature/v1 key (yishi witness keygen); "
        "asked again every checkpoint interval (yishi/witness/submit.py).")
    health_interval_s: float = Field(default=5.0, gt=0, description="How often a service pings Kafka "
                                     "(yishi_kafka_up) and measures its relay's lag and unsigned checkpoints.")
    max_body_bytes: int = Field(default=256 * 1024, ge=1, description="Largest HTTP request body accepted; "
                                "larger ones are refused with 413 before any parsing.")

    auth_issuer: str | None = Field(
        default=None, description="The OIDC provider whose access tokens every API requires (its `iss`). "
        "Required to run a service; `yishi run` starts a development provider when unset.")
    auth_audience: str = Field(default="yishi", description="The `aud` tokens must carry.")
    auth_jwks_url: str | None = Field(
        default=None, description="The provider's JWKS document (an http(s) URL); unset: found through "
        "the issuer's /.well-known/openid-configuration.")
    auth_jwks_cache_s: int = Field(default=300, ge=1, description="How long fetched signing keys are kept; "
                                   "a token with an unknown key id refreshes them (see the cooldown).")
    auth_jwks_refresh_cooldown_s: float = Field(
        default=30, ge=0, description="Least time between refreshes forced by unknown key ids (so forged "
        "key ids cannot make every request fetch the keys).")
    auth_leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "EdDSA"], description="Accepted signature algorithms.")
    auth_district_claim: str = Field(default="district", description="Claim (dotted path) naming the "
                                     "credentials' district.")
    auth_roles_claim: str = Field(default="roles", description="Claim (dotted path, e.g. realm_access.roles) "
                                  "listing the caller's roles.")
    auth_seats_claim: str = Field(default="seats", description="Claim listing the council seats held.")
    auth_acts_for_claim: str = Field(default="acts_for", description="Claim listing the implementer "
                                     "organisations and councils a scoped role acts for (contracts.permissions).")
    command_rate_limit: str = Field(
        default="20/second;600/minute", description="Commands one caller may send over HTTP to one service "
        "instance (the `limits` notation; several limits separated by ';'). Exceeded: 429 with Retry-After. "
        "Counted per replica: a caller may send the setting × the number of replicas in all.")
    clock_factor: float = Field(
        default=1.0, ge=1, le=10_000_000, description="How many times as fast as real time the platform's "
        "clock runs, for staging and training (1: the wall clock); see yishi/clock.py.")
    clock_epoch: AwareDatetime | None = Field(
        default=None, description="When the rehearsal clock starts running fast (it tells the wall clock's "
        "time then); the same for every service. Required with a factor; `yishi run` sets it to its start.")
    clock_rehearsal_issuers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Issuers (besides development ones on .localhost or loopback) "
        "under which a rehearsal clock may run, comma-separated: staging or training providers.")

    @model_validator(mode="after")
    def _refuse_unknown_variables(self) -> "Settings":
        check_environment()
        return self

    @field_validator("command_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("log_origin")
    @classmethod
    def _check_origin(cls, value: str | None) -> str | None:
        # It names the note signatures too: C2SP signed-note key names hold no '+' nor space.
        if value is not None and (not value or any(c == "+" or c.isspace() or ord(c) < 0x20 for c in value)):
            raise ValueError("the log origin must be non-empty, without '+', spaces or control characters")
        return value

    @field_validator("districts", "auth_algorithms", "clock_rehearsal_issuers", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("districts")
    @classmethod
    def _check_districts(cls, value: list[str]) -> list[str]:
        from yishi.names import check_district

        return [check_district(d) for d in value]


def known_variables() -> frozenset[str]:
    """Every ``YISHI_*`` variable something reads: the fields of :class:`Settings` and of
    each service's own settings (``services/NAME/settings.py``, e.g. ``YISHI_NOTIFY_*``),
    and :data:`NOT_SETTINGS`."""
    from yishi.names import RUNNABLE

    classes: list[type[BaseSettings]] = [Settings]
    for service in RUNNABLE:
        try:
            module = importlib.import_module(f"services.{service}.settings")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{service}.settings":
                raise
            continue
        classes += [c for c in vars(module).values()
                    if isinstance(c, type) and issubclass(c, BaseSettings) and c.__module__ == module.__name__]
    return NOT_SETTINGS | {c.model_config["env_prefix"].upper() + name.upper() for c in classes
                           for name in c.model_fields}


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse ``YISHI_*`` variables that nothing reads (a misspelt setting would otherwise
    pass silently and leave its default in force)."""
    environ = os.environ if environ is None else environ
    names = {name.upper() for name in environ if name.upper().startswith(PREFIX)}
    unknown = sorted(names - known_variables())
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}: no such YISHI_* variable "
                         "(see yishi/settings.py and the services' settings.py)")
