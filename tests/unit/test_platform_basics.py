"""Names, settings and the clock: no I/O."""

from __future__ import annotations

from datetime import timedelta

import pytest

from yishi.clock import ManualClock
from yishi.names import InvalidName, commands_topic, dead_letter_topic, events_topic, source
from yishi.settings import Settings


def test_topics_are_per_district_and_service():
    assert events_topic("gulou", "voting") == "gulou.voting.events"
    assert commands_topic("chaoyang", "proposals") == "chaoyang.proposals.commands"
    assert dead_letter_topic("gulou.voting.events") == "gulou.voting.events.dlq"
    assert source("gulou", "oversight") == "/yishi/gulou/oversight"


@pytest.mark.parametrize("bad", ["", "Gulou", "gu.lou", "1st", "a" * 41, "gulou*"])
def test_bad_district_names_are_refused(bad):
    with pytest.raises(InvalidName, match="invalid district"):
        events_topic(bad, "voting")


def test_unknown_service_is_refused():
    with pytest.raises(InvalidName, match="unknown service"):
        events_topic("gulou", "billing")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("YISHI_DISTRICTS", "gulou, chaoyang")
    monkeypatch.setenv("YISHI_HTTP_PORT", "9001")
    monkeypatch.setenv("YISHI_RELAY_BATCH_SIZE", "250")
    settings = Settings()
    assert settings.districts == ["gulou", "chaoyang"]
    assert (settings.http_port, settings.relay_batch_size) == (9001, 250)
    assert settings.database_url is None  # embedded stack by default


def test_settings_reject_bad_values(monkeypatch):
    monkeypatch.setenv("YISHI_DISTRICTS", "gulou,Bad District")
    with pytest.raises(ValueError, match="invalid district"):
        Settings()
    monkeypatch.setenv("YISHI_DISTRICTS", "gulou")
    monkeypatch.setenv("YISHI_RELAY_BATCH_SIZE", "0")
    with pytest.raises(ValueError):
        Settings()


def test_manual_clock_moves_only_forward():
    clock = ManualClock()
    start = clock.now()
    assert clock.advance(timedelta(days=3)) == start + timedelta(days=3)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))


def test_kafka_security_from_settings():
    from yishi.kafka import client_options

    assert client_options(Settings()) == {}
    options = client_options(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="yishi-voting",
                                      kafka_sasl_password="s3cret"))
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "yishi-voting" and options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"] is not None
    with pytest.raises(ValueError, match="SASL_USERNAME"):
        client_options(Settings(kafka_security_protocol="SASL_PLAINTEXT"))
