"""One error shape: every error answer of every service is RFC 9457 problem details with
the platform's reason code and the offending fields, as real clients meet them."""

from __future__ import annotations

from contracts.common import Actor, Role
from contracts.voting import BallotChoice, CastBallot
from services.voting.main import spec as voting_spec
from tests.support.auth import bearer
from tests.support.service import running

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, reason: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"urn:yishi:problem:{reason}" and body["reason"] == reason
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def test_errors_are_problem_details(servers):
    async with running(voting_spec(), servers, command_rate_limit="1/minute") as r:
        d = r.district
        ballot = CastBallot(district=d, actor=Actor(id="m1", role=Role.COUNCIL_MEMBER, seat_id="s1"),
                            vote_id="nowhere", ballot_id="b1", choice=BallotChoice.IN_FAVOUR).model_dump(mode="json")

        unknown = await r.client.post(f"/{d}/commands/CastBallot", json={**ballot, "colour": "red"})
        body = assert_problem(unknown, 422, "invalid_command")
        assert [(e["field"], e["type"]) for e in body["errors"]] == [("body.colour", "extra_forbidden")]

        rejected = await r.client.post(f"/{d}/commands/CastBallot", json=ballot)
        body = assert_problem(rejected, 404, "not_found")
        # The problem is the recorded CommandRejected reply too.
        assert body["command_type"] == "CastBallot" and body["message"] == body["detail"]
        assert body["district"] == d and body["actor"]["id"] == "m1" and body["correlation_id"]

        assert_problem(await r.client.get(f"/{d}/votes/nowhere"), 404, "not_found")
        assert_problem(await r.client.get(f"/{d}/votes/{'x' * 300}"), 422, "invalid_request")
        anonymous = await r.client.get(f"/{d}/votes/nowhere", auth=None)
        assert_problem(anonymous, 401, "unauthenticated")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")

        limited = await r.client.post(f"/{d}/commands/CastBallot", json=ballot)
        assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1

        unreadable = await r.client.post(f"/{d}/commands/CastBallot", content=b"\xff\xfe",
                                         headers={"content-type": "application/json",
                                                  **bearer("m2", d, "council_member", seats=("s2",))})
        assert unreadable.status_code in (400, 422) and unreadable.headers["content-type"] == PROBLEM


async def test_an_unknown_field_at_any_depth_is_refused_as_problem_details(servers):
    """A misspelt field in a nested value (the vote's terms, its electorate, the actor) is
    refused like one at the top: 422 problem details naming every offending field, and
    nothing is opened; it is never silently dropped."""
    from datetime import timedelta

    from tests.integration.voting.test_concurrency import open_command

    async with running(voting_spec(), servers) as r:
        d = r.district
        body = open_command(d, "v-typo", r.clock.now() + timedelta(days=1), 3).model_dump(mode="json")
        body["actor"]["colour"] = "red"
        body["terms"]["quorum_pct"] = 10  # for quorum_percent
        body["terms"]["electorate"]["members"] = 60
        refused = await r.client.post(f"/{d}/commands/OpenVote", json=body)
        problem = assert_problem(refused, 422, "invalid_command")
        assert [(e["field"], e["type"]) for e in problem["errors"]] == [
            ("body.actor.colour", "extra_forbidden"), ("body.terms.electorate.members", "extra_forbidden"),
            ("body.terms.quorum_pct", "extra_forbidden")]
        assert "body.terms.quorum_pct" in problem["detail"]
        assert_problem(await r.client.get(f"/{d}/votes/v-typo"), 404, "not_found")
        assert await r.ctx.pool.fetchval("SELECT count(*) FROM events WHERE district = $1", d) == 0


async def test_a_district_not_served_here_is_not_found(servers):
    """A valid token of a district this deployment does not serve: its commands are not
    stored (no consumer here would ever read their events) and its reads find nothing."""
    from datetime import timedelta

    from tests.integration.voting.test_concurrency import open_command

    async with running(voting_spec(), servers) as r:
        command = open_command("haidian", "v-elsewhere", r.clock.now() + timedelta(days=1), 3)
        refused = await r.client.post("/haidian/commands/OpenVote", json=command.model_dump(mode="json"))
        assert_problem(refused, 404, "not_found")
        assert_problem(await r.client.get("/haidian/votes/v-elsewhere"), 404, "not_found")
        assert await r.ctx.pool.fetchval("SELECT count(*) FROM events WHERE district = 'haidian'") == 0
