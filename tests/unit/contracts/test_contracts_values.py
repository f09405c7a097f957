"""The value types at the input edge: every bad value of OUTSIDE-IN.md's Values list that
applies to a command is refused naming its field, good CJK and emoji text is accepted,
and events carrying the same values are still read (history replays as written)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from contracts import examples, jsonlimits, registry
from contracts.envelope import Envelope
from contracts.oversight import EstablishFund, FundEstablished
from contracts.proposals import ProposalPublished, ProposalRaised, PublishProposal, RaiseProposal
from contracts.registry import InvalidPayload, Kind

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)


def command_json(model, **fields) -> str:
    return json.dumps(examples.sample(model).model_dump(mode="json") | fields, ensure_ascii=False)


def refused(model, text: str) -> set[tuple]:
    """The locations of the errors validating ``text`` as a ``model`` (as a command topic does)."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(text)
    return {error["loc"] for error in caught.value.errors()}


@pytest.mark.parametrize("title", [
    "车棚\u0000", "\u200b\u200d", "\u200b", " \u3000\t", "\u2060\ufeff", "充电棚\u202egnp.exe", "\u2066充电棚\u2069",
    "第一行\n第二行", "\u3164", "",
])
def test_bad_titles_are_refused(title):
    assert refused(RaiseProposal, command_json(RaiseProposal, title=title)) == {("title",)}


def test_a_lone_surrogate_is_refused_by_the_model_and_by_the_json_reader():
    with pytest.raises(ValidationError) as caught:
        RaiseProposal.model_validate(examples.sample(RaiseProposal).model_dump() | {"title": "x\ud800"})
    assert caught.value.errors()[0]["loc"] == ("title",)
    with pytest.raises(jsonlimits.JSONLimitError) as caught:
        jsonlimits.loads(r'{"title": "x\ud800"}')
    assert caught.value.errors[0][0] == ("title",)


@pytest.mark.parametrize("title", ["在3号院增设电动自行车充电棚", "充电棚 🚲⚡👩‍👩‍👧", "Café « 3号院 »", "ئۇيغۇرچە"])
def test_good_titles_are_accepted(title):
    assert RaiseProposal.model_validate_json(command_json(RaiseProposal, title=title)).title == title


@pytest.mark.parametrize(("summary", "ok"), [
    ("居民说：\u2067شرق\u2069。\n第二行", True),  # an isolated right-to-left quotation
    ("甲\u202b乙\u202c丙", True),
    ("甲\u2067乙", False),  # left open
    ("甲\u2067乙\n丙\u2069", False),  # closed only on the next line
    ("甲\u202e乙\u2069", False),  # closed by the wrong kind
    ("甲\u0007乙", False),
    ("\u200b\n\u200d", False),
    ("x" * 20_001, False),
])
def test_texts_allow_balanced_bidi_controls_and_line_breaks_only(summary, ok):
    text = command_json(RaiseProposal, summary=summary)
    if ok:
        assert RaiseProposal.model_validate_json(text).summary == summary
    else:
        assert refused(RaiseProposal, text) == {("summary",)}


@pytest.mark.parametrize("literal", [
    str(2**63), str(-(2**63) - 1), str(10**12 + 1), "1e30", "0.5", "1.0", '"100"', "true", "null", "-1",
])
def test_bad_amounts_are_refused(literal):
    text = command_json(EstablishFund).replace('"amount_fen": 0', f'"amount_fen": {literal}')
    assert refused(EstablishFund, text) == {("amount_fen",)}


@pytest.mark.parametrize("literal", ["0", "-0", str(10**12), "30000000"])
def test_good_amounts_are_accepted(literal):
    text = command_json(EstablishFund).replace('"amount_fen": 0', f'"amount_fen": {literal}')
    assert EstablishFund.model_validate_json(text).amount_fen == int(literal)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000])
def test_numbers_that_are_not_json_are_refused_where_they_stand(literal):
    with pytest.raises(jsonlimits.JSONLimitError) as caught:
        jsonlimits.loads(f'{{"terms": {{"amount_fen": {literal}}}}}')
    assert caught.value.errors[0][0] == ("terms", "amount_fen")


def test_nesting_is_limited():
    assert jsonlimits.loads("[" * jsonlimits.MAX_DEPTH + "]" * jsonlimits.MAX_DEPTH)
    for depth in (jsonlimits.MAX_DEPTH + 1, 2_000, 100_000):
        with pytest.raises(jsonlimits.JSONLimitError, match="nested deeper than 64"):
            jsonlimits.loads('{"a": ' + "[" * depth + "]" * depth + "}")
    # Brackets inside strings are no nesting.
    assert jsonlimits.loads(json.dumps({"title": "[" * 1000}))


@pytest.mark.parametrize("when", [
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    "1999-12-31T23:59:59Z", "2000-01-01T13:00:00+14:00", "2200-01-01T00:00:00Z", "2026-05-01T09:00:00", "2026-05-01T23:59:60Z",
])
def test_times_outside_the_window_or_without_a_zone_are_refused(when):
    assert refused(PublishProposal, command_json(PublishProposal, notice_ends_at=when)) == {("notice_ends_at",)}


@pytest.mark.parametrize("when", ["2026-05-01T09:00:00+14:00", "2000-01-01T00:00:00Z", "2199-12-31T23:59:59Z",
                                  "2000-01-01T15:00:00+14:00"])
def test_times_inside_the_window_are_accepted(when):
    assert PublishProposal.model_validate_json(command_json(PublishProposal, notice_ends_at=when))


def test_nested_values_are_checked_in_commands():
    request_vote = registry.spec("RequestVote").model
    terms = examples.sample(request_vote).model_dump(mode="json")["terms"]
    too_many = terms | {"electorate": terms["electorate"] | {"size": 10**18, "roll": None}}
    assert refused(request_vote, command_json(request_vote, terms=too_many)) == {("terms", "electorate", "size")}
    invisible = terms | {"question": "\u200b"}
    assert refused(request_vote, command_json(request_vote, terms=invisible)) == {("terms", "question")}


def envelope(model_type, body: dict) -> Envelope:
    return Envelope(id="m-1", source="/yishi/gulou/proposals", type=model_type.__name__, subject="s-1", time=T0,
                    district="gulou", correlation_id="c-1", schema_version=1, data=json.dumps(body).encode())


def test_a_command_topic_rejects_the_value_naming_the_field():
    body = examples.sample(RaiseProposal).model_dump(mode="json") | {"title": "车棚\u0000"}
    with pytest.raises(InvalidPayload) as caught:
        registry.decode(envelope(RaiseProposal, body), Kind.COMMAND)
    assert caught.value.errors[0][0] == "title"


def test_events_with_such_values_are_still_read():
    """History written before these checks (or by a producer without them) replays."""
    raised = examples.sample(ProposalRaised).model_dump(mode="json") | {"title": "\u200b", "summary": "甲\u202e乙"}
    published = examples.sample(ProposalPublished).model_dump(mode="json") | {"notice_ends_at": "9999-12-31T23:59:59Z"}
    fund = examples.sample(FundEstablished).model_dump(mode="json") | {"amount_fen": 2**63}
    assert registry.decode(envelope(ProposalRaised, raised)).title == "\u200b"
    assert registry.decode(envelope(ProposalPublished, published)).notice_ends_at.year == 9999
    assert registry.decode(envelope(FundEstablished, fund)).amount_fen == 2**63


def test_an_envelope_whose_body_is_beyond_the_json_limits_is_not_read():
    from contracts.envelope import EnvelopeError

    headers, good = envelope(RaiseProposal, {"district": "gulou"}).to_kafka()[1:]
    assert Envelope.from_kafka(headers, good)
    for value in (b"[" * 100_000 + b"]" * 100_000, b'{"a": ' + b"9" * 5000 + b"}", b'{"a": NaN}'):
        with pytest.raises(EnvelopeError, match="not JSON"):
            Envelope.from_kafka(headers, value)


def test_a_subscription_names_a_known_time_zone():
    """An unknown zone would fail every delivery to that person, and the notice of the
    people after them: refused when subscribing, still read in recorded history."""
    from contracts.notify import QuietHours, Subscribe

    body = examples.sample(Subscribe).model_dump(mode="json")
    for zone in ("Mars/Olympus", "../etc/passwd", "UTC+8"):
        body["quiet_hours"]["timezone"] = zone
        with pytest.raises(ValidationError, match="unknown time zone"):
            Subscribe.model_validate(body)
    body["quiet_hours"]["timezone"] = "Asia/Urumqi"
    assert Subscribe.model_validate(body).quiet_hours.timezone == "Asia/Urumqi"
    assert QuietHours(start="22:00", end="07:00", timezone="Mars/Olympus").timezone == "Mars/Olympus"


@pytest.mark.parametrize("title", ["\u0301", "\ufe0f\ufe0f", "\u034f", "\u20dd"])
def test_a_title_of_combining_marks_alone_is_invisible(title):
    body = examples.sample(RaiseProposal).model_dump(mode="json") | {"title": title}
    with pytest.raises(ValidationError, match="visible character"):
        RaiseProposal.model_validate(body)
    assert RaiseProposal.model_validate(body | {"title": "cafe\u0301 \u5145\u7535\u68da"}).title
