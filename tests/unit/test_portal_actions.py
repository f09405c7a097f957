"""The portal's forms as the services' public commands (services/portal/actions.py): the
command each form sends, in which capacity, with the person's token and the form's key,
and the service's answer — accepted or refused — as the outcome the person is told. The
service is a stub answering as the command edge does (yishi/command_http.py)."""

from __future__ import annotations

import json

import httpx

from services.portal import actions
from services.portal.actions import Person

URLS = {"proposals": "http://proposals.test", "voting": "http://voting.test", "oversight": "http://oversight.test"}
RESIDENT = Person("resident-zhou", "gulou", ("resident",))
MEMBER = Person("member-li", "gulou", ("resident", "council_member"), seats=("seat-so-01",))


def stub(status: int, body: dict, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"
                                                          if status >= 400 else "application/json"})
    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_ballot_is_sent_to_voting_with_the_persons_token_and_the_forms_key():
    seen: list[httpx.Request] = []
    async with stub(200, {"ids": {}}, seen) as client:
        outcome = await actions.send(client, URLS, "vote", {"vote_id": "vote-1", "choice": "in_favour"}, RESIDENT,
                                     "TOKEN", "gulou", "key-1")
    (request,) = seen
    assert str(request.url) == "http://voting.test/gulou/commands/CastBallot"
    assert request.headers["authorization"] == "Bearer TOKEN" and request.headers["idempotency-key"] == "key-1"
    assert json.loads(request.content) == {"district": "gulou", "actor": {"id": "resident-zhou", "role": "resident"},
                                           "vote_id": "vote-1", "ballot_id": "ballot-key-1", "choice": "in_favour"}
    assert outcome.accepted and outcome.ballot_id == "ballot-key-1"


async def test_a_council_member_seconds_from_their_seat_and_a_resident_is_sent_as_a_resident():
    assert actions.command_body("second", {"proposal_id": "p-1"}, MEMBER, "gulou", "k")["actor"] == {
        "id": "member-li", "role": "council_member", "seat_id": "seat-so-01"}
    assert actions.command_body("second", {"proposal_id": "p-1"}, RESIDENT, "gulou", "k")["actor"] == {
        "id": "resident-zhou", "role": "resident"}  # the service refuses it; the portal does not judge
    assert MEMBER.may("SecondMotion") and not RESIDENT.may("SecondMotion") and RESIDENT.may("CastBallot")


def test_an_inspection_names_the_supervisor_as_inspector_and_leaves_out_an_empty_task():
    supervisor = Person("sup-wu", "gulou", ("supervisor",))
    body = actions.command_body("inspect", {"resolution_id": "res-1", "task_id": "", "aspects": ["progress",
                                "quality"], "finding": "satisfactory", "notes": "ok"}, supervisor, "gulou", "k")
    assert body == {"district": "gulou", "actor": {"id": "sup-wu", "role": "supervisor"}, "resolution_id": "res-1",
                    "inspector_ids": ["sup-wu"], "aspects": ["progress", "quality"], "finding": "satisfactory",
                    "notes": "ok"}
    assert actions.command_body("progress", {"task_id": "t-1", "percent_complete": "60", "summary": "s"},
                                Person("staff-sun", "gulou", ("implementer",)), "gulou", "k")["percent_complete"] == 60


async def test_a_refusal_is_told_by_its_reason():
    seen: list[httpx.Request] = []
    problem = {"type": "about:blank", "status": 409, "title": "Conflict", "detail": "already voted",
               "reason": "duplicate", "command_type": "CastBallot"}
    async with stub(409, problem, seen) as client:
        outcome = await actions.send(client, URLS, "vote", {"vote_id": "v", "choice": "against"}, RESIDENT, "T",
                                     "gulou", "k")
    assert not outcome.accepted and outcome.reason == "duplicate" and outcome.detail == "already voted"
    async with stub(401, {"status": 401, "detail": "expired"}, seen) as client:
        assert (await actions.send(client, URLS, "second", {}, RESIDENT, "T", "gulou", "k")).reason == \
            "unauthenticated"


async def test_an_unreachable_service_is_told_as_unavailable():
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:
        outcome = await actions.send(client, URLS, "raise", {"council_id": "c", "title": "t", "summary": "s"},
                                     RESIDENT, "T", "gulou", "k")
    assert not outcome.accepted and outcome.reason == "unavailable"
    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:  # a service not configured
        outcome = await actions.send(client, {}, "vote", {}, RESIDENT, "T", "gulou", "k")
    assert not outcome.accepted and outcome.reason == "unavailable"


def test_every_refusal_reason_and_every_form_outcome_has_plain_words_in_both_languages():
    from contracts.common import RejectionReason
    from services.portal import messages

    reasons = [r.value for r in RejectionReason] + ["unauthenticated", "rate_limited", "unavailable"]
    for language in messages.LANGUAGES:
        catalogue = messages.CATALOGUE[language]
        assert [r for r in reasons if f"refused.{r}" not in catalogue] == []
        assert [a for a in actions.ACTIONS if f"done.{a}" not in catalogue] == []
        assert messages.refusal(language, "a_reason_of_tomorrow") == catalogue["refused.unknown_command"]
    assert messages.refusal("en", "duplicate") != messages.refusal("zh-CN", "duplicate")
