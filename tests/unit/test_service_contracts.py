"""Every type a service consumes or serves is in the contracts registry, owned by the
service it is read from; built from each service's real wiring (no I/O)."""

from __future__ import annotations

import pytest

from contracts import registry
from contracts.registry import Kind
from yishi.cli import load_spec
from yishi.names import RUNNABLE, SERVICES
from yishi.runtime import create_app
from yishi.settings import Settings


def wiring(service: str):
    settings = Settings(service=service, database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                        auth_issuer="https://issuer.test")
    return create_app(load_spec(service), settings).state.ctx


@pytest.mark.parametrize("service", RUNNABLE)
def test_consumed_events_are_registered_events_of_their_source(service):
    ctx = wiring(service)
    for name, (source, types) in ctx.subscriptions.items():
        assert types, f"{service}.{name} handles nothing"
        for type_name in types:
            spec = registry.spec(type_name, Kind.EVENT)
            assert spec.service == source, f"{service}.{name}: {type_name} is published by {spec.service}"


@pytest.mark.parametrize("service", SERVICES)
def test_served_commands_are_registered_commands_of_the_service(service):
    ctx = wiring(service)
    assert ctx.command_types, f"{service} serves no commands"
    for type_name in ctx.command_types:
        assert registry.spec(type_name, Kind.COMMAND).service == service


def test_every_registered_command_is_served_by_its_owner():
    served = {name for service in SERVICES for name in wiring(service).command_types}
    commands = {name for name, spec in registry.REGISTRY.items() if spec.kind is Kind.COMMAND}
    assert commands - served == set(), "commands no service handles"


def test_registry_says_who_consumes_what():
    consumed = {(type_name, service) for service in RUNNABLE
                for _, types in wiring(service).subscriptions.values() for type_name in types}
    declared = {(name, consumer) for name, spec in registry.REGISTRY.items() for consumer in spec.consumers}
    assert consumed == declared
