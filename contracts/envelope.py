"""CloudEvents 1.0 envelope in the Kafka binary content mode.

The one place that maps between Kafka messages and Yishi envelopes: the relay writes
with :meth:`Envelope.to_kafka`, every consumer reads with :meth:`Envelope.from_kafka`.
Attributes travel as ``ce_*`` headers, the JSON body is the message value, and the
message key is the stream (aggregate) id, so one aggregate's events stay ordered.

Extensions (CloudEvents attribute names are lowercase alphanumerics):
``ce_district``, ``ce_correlationid``, ``ce_causationid``, ``ce_schemaversion``, and the
distributed-tracing extension ``ce_traceparent`` / ``ce_tracestate`` (W3C Trace Context of
the command that caused the event; in :attr:`Envelope.extra` when read).

A command also carries its sender's access token in the plain ``authorization`` header
(``Bearer <JWT>``, as over HTTP); it is not a CloudEvents attribute, is never stored and
is removed before a message is dead-lettered.

A body must be a JSON object within :mod:`contracts.jsonlimits`; the reason a body is
refused names the path of the offending value where it can.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from contracts import jsonlimits
from contracts.jsonlimits import JSONLimitError

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
_FORMAT = JSONFormat()
_REQUIRED_EXTENSIONS = ("district", "correlationid", "schemaversion")
AUTHORIZATION_HEADER = "authorization"


def _rfc3339(when: datetime) -> str:
    return rfc3339_text(when.astimezone(timezone.utc).isoformat())


def binary_headers(
    *, id: str, source: str, type: str, subject: str, time: str, district: str, correlation_id: str,
    schema_version: int, causation_id: str | None = None, extra: Mapping[str, str] | None = None,
    traceparent: str | None = None, tracestate: str | None = None,
) -> list[tuple[str, bytes]]:
    """The ``ce_*`` headers of a binary-mode CloudEvent; ``time`` is RFC 3339 text.

    Built directly rather than through the SDK's ``to_binary``: the relay calls this once
    per published event and the SDK's validation triples its cost. The unit tests parse
    the result with the SDK's ``from_binary`` to keep the two in agreement.
    """
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time.encode()),
        ("content-type", b"application/json"),
        ("ce_district", district.encode()),
        ("ce_correlationid", correlation_id.encode()),
        ("ce_schemaversion", str(schema_version).encode()),
    ]
    if causation_id:
        headers.append(("ce_causationid", causation_id.encode()))
    if traceparent:
        headers.append(("ce_traceparent", traceparent.encode()))
        if tracestate:
            headers.append(("ce_tracestate", tracestate.encode()))
    if extra:
        headers.extend((f"ce_{k}", v.encode()) for k, v in extra.items())
    return headers


def rfc3339_text(iso: str) -> str:
    """An ISO 8601 timestamp as CloudEvents writes it (``Z`` for UTC)."""
    return iso[:-6] + "Z" if iso.endswith("+00:00") else iso


class EnvelopeError(ValueError):
    """A Kafka message that is not a valid Yishi CloudEvent; the message says why.

    ``envelope`` is the message with its headers read, when only its body is at fault, so
    that a command can still be answered (its district and correlation id are known)."""

    def __init__(self, message: str, envelope: "Envelope | None" = None) -> None:
        super().__init__(message)
        self.envelope = envelope


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event or command as it travels over Kafka."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    district: str
    correlation_id: str
    schema_version: int
    data: bytes
    causation_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False, compare=False)
    """The sender's bearer token (commands only)."""

    def payload(self) -> dict[str, Any]:
        """The JSON body as a dict (already checked to be a JSON object)."""
        return json.loads(self.data)

    def to_kafka(self) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
        """``(key, headers, value)`` for a Kafka producer; the key is the subject."""
        headers = binary_headers(
            id=self.id, source=self.source, type=self.type, subject=self.subject, time=_rfc3339(self.time),
            district=self.district, correlation_id=self.correlation_id, schema_version=self.schema_version,
            causation_id=self.causation_id, extra=self.extra,
        )
        if self.token:
            headers.append((AUTHORIZATION_HEADER, f"Bearer {self.token}".encode()))
        return self.subject.encode(), headers, self.data

    @classmethod
    def from_kafka(
        cls,
        headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
        value: bytes | None,
        key: bytes | None = None,
    ) -> "Envelope":
        """Parse and check a Kafka message; raise :class:`EnvelopeError` with the reason."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        try:
            hdrs = {k: (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}
            event = from_binary(KafkaMessage(headers=hdrs, key=None, value=b""), _FORMAT, CloudEvent)
        except (BaseCloudEventException, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise EnvelopeError(f"not a CloudEvent: {exc}") from exc
        attrs = event.get_attributes()
        if attrs.get("specversion") != SPECVERSION:
            raise EnvelopeError(f"unsupported ce_specversion {attrs.get('specversion')!r}")
        missing = [name for name in ("subject", "time", *_REQUIRED_EXTENSIONS) if not attrs.get(name)]
        if missing:
            raise EnvelopeError("missing header(s): " + ", ".join(f"ce_{m}" for m in missing))
        try:
            schema_version = int(attrs["schemaversion"])
        except ValueError:
            raise EnvelopeError(f"ce_schemaversion is not an integer: {attrs['schemaversion']!r}") from None
        when = attrs["time"]
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        known = {"id", "source", "type", "specversion", "subject", "time", "datacontenttype",
                 "district", "correlationid", "causationid", "schemaversion", "partitionkey"}
        envelope = cls(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            subject=attrs["subject"],
            time=when,
            district=attrs["district"],
            correlation_id=attrs["correlationid"],
            causation_id=attrs.get("causationid"),
            schema_version=schema_version,
            data=bytes(value or b""),
            extra={k: v for k, v in attrs.items() if k not in known and isinstance(v, str)},
            token=_bearer(hdrs.get(AUTHORIZATION_HEADER)),
        )
        if not value:
            raise EnvelopeError("empty message body", envelope)
        try:
            body = jsonlimits.loads(value)
        except JSONLimitError as exc:
            raise EnvelopeError(f"body is not JSON within the limits: {exc}", envelope) from exc
        if not isinstance(body, dict):
            raise EnvelopeError("body is not a JSON object", envelope)
        return envelope


def _bearer(header: bytes | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if there is one."""
    if not header:
        return None
    scheme, _, token = header.decode("utf-8", "replace").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
