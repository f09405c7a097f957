"""Names shared by every service: districts, Kafka topics, database schemas, sources."""

from __future__ import annotations

import re
from functools import lru_cache

SERVICES = ("proposals", "voting", "oversight", "notify")
"""The services that own aggregates and publish: each has its topics and its contracts."""
READERS = ("portal",)
"""Services that own no aggregate and publish nothing: they read the others' public events
from Kafka into their read models. No topic or contract of their own."""
RUNNABLE = SERVICES + READERS
"""Every service ``yishi serve`` and ``yishi run`` start, and ``yishi migrate`` migrates."""
_DISTRICT = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


class InvalidName(ValueError):
    """A district or service name that cannot be used in topics and schemas."""


def check_district(district: str) -> str:
    """Return ``district`` if it is a valid district slug (lowercase ascii, digits, hyphens)."""
    if not _DISTRICT.match(district):
        raise InvalidName(
            f"invalid district {district!r}: use 1-40 lowercase letters, digits or hyphens, starting with a letter"
        )
    return district


def check_runnable(service: str) -> str:
    """Return ``service`` if ``yishi serve`` can run it (a service or a reader)."""
    if service not in RUNNABLE:
        raise InvalidName(f"unknown service {service!r}: expected one of {', '.join(RUNNABLE)}")
    return service


def check_service(service: str) -> str:
    """Return ``service`` if it is one of the platform's services."""
    if service not in SERVICES:
        raise InvalidName(f"unknown service {service!r}: expected one of {', '.join(SERVICES)}")
    return service


@lru_cache(maxsize=1024)
def events_topic(district: str, service: str) -> str:
    """The topic a service publishes its integration events to, e.g. ``gulou.voting.events``."""
    return f"{check_district(district)}.{check_service(service)}.events"


@lru_cache(maxsize=1024)
def commands_topic(district: str, service: str) -> str:
    """The topic a service reads commands from, e.g. ``gulou.voting.commands``."""
    return f"{check_district(district)}.{check_service(service)}.commands"


@lru_cache(maxsize=1024)
def replies_topic(district: str, service: str) -> str:
    """The topic a service writes command replies (accepted/rejected) to."""
    return f"{check_district(district)}.{check_service(service)}.replies"


def topic_district(topic: str) -> str:
    """The district a topic belongs to (the first part of every topic name)."""
    return topic.split(".", 1)[0]


def dead_letter_topic(topic: str) -> str:
    """Where messages from ``topic`` that cannot be processed are parked, with the reason."""
    return f"{topic}.dlq"


@lru_cache(maxsize=1024)
def source(district: str, service: str) -> str:
    """CloudEvents ``source`` attribute of a service in a district."""
    return f"/yishi/{check_district(district)}/{check_service(service)}"
