"""The rehearsal clock (item 14 of issue 15): the platform run with ``YISHI_CLOCK_FACTOR``
tells every service the same fast time, a council's seven-day notice runs out in seconds
over the public API, and a service refuses to start on it under a production issuer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from rich.console import Console

from contracts.common import Electorate, ElectorateKind, VoteMatter, VoteMatterKind, VoteTerms
from contracts.proposals import (
    ConsultationForm,
    DeliberationStep,
    MakeStatement,
    PublishProposal,
    RaiseProposal,
    RequestVote,
    SecondMotion,
    SpeakerRole,
)
from tests.support.auth import acting, auth_env
from yishi.demo import MEMBERS, WORKER, Api, DemoFailed, form_councils, member

FACTOR = 60_480.0
"""Seven days in ten seconds."""
PLATFORM_ENV = {"YISHI_CLOCK_FACTOR": str(FACTOR), "YISHI_CLOCK_EPOCH": datetime.now(timezone.utc).isoformat()}
"""Settings of this module's platform (tests/e2e/conftest.py)."""
NOTICE = timedelta(days=7)
SLACK = timedelta(hours=12)
"""Added to deadlines taken from ``GET /clock``: the clock runs on (0.7 s of real time here)
while the command travels."""
quiet = Console(quiet=True)


async def test_every_service_tells_the_same_rehearsal_time(platform):
    district = platform.districts[0]
    async with httpx.AsyncClient(auth=acting(), timeout=10) as client:
        clocks = {name: (await client.get(f"{url}/{district}/clock")).json() for name, url in platform.urls.items()}
        assert (await client.get(f"{platform.urls['voting']}/{district}/clock",
                                 headers={"authorization": "Bearer x"})).status_code == 401
    assert {(c["factor"], c["epoch"]) for c in clocks.values()} == {(FACTOR, PLATFORM_ENV["YISHI_CLOCK_EPOCH"])}
    nows = sorted(datetime.fromisoformat(c["now"]) for c in clocks.values())
    assert nows[0] - datetime.now(timezone.utc) > timedelta(days=1)  # the platform started seconds ago: days ahead
    assert nows[-1] - nows[0] < timedelta(days=1)  # four answers a few milliseconds apart


async def test_a_seven_day_notice_elapses_in_seconds_over_the_public_api(platform):
    district, tag = platform.districts[0], uuid.uuid4().hex[:6]
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api:
        councils = await form_councils(api, tag, quiet, notice_period_days=7)
        proposal_id, vote_id = f"prop-{tag}", f"vote-{tag}"
        await api.send(RaiseProposal(district=district, actor=member("member-wang"), proposal_id=proposal_id,
                                     council_id=councils.community, title="充电棚", summary="建设充电棚。"))
        with pytest.raises(DemoFailed, match="notice period of 7 days"):  # measured on the platform's clock
            await api.send(PublishProposal(district=district, actor=WORKER, proposal_id=proposal_id,
                                           form=ConsultationForm.COUNCIL,
                                           notice_ends_at=await api.now() + timedelta(days=6)))
        notice_ends = await api.now() + NOTICE + SLACK
        await api.send(PublishProposal(district=district, actor=WORKER, proposal_id=proposal_id,
                                       form=ConsultationForm.COUNCIL, notice_ends_at=notice_ends))
        started = time.monotonic()
        await api.send(SecondMotion(district=district, actor=member("member-li"), proposal_id=proposal_id))
        await api.send(MakeStatement(district=district, actor=member("member-wang"), proposal_id=proposal_id,
                                     statement_id=f"{proposal_id}-st-1", step=DeliberationStep.MOTION,
                                     speaker_role=SpeakerRole.PROPOSER, text="集中充电更安全。"))
        roll = tuple(sorted(m for _, _, m in MEMBERS))
        request = RequestVote(district=district, actor=WORKER, vote_id=vote_id, council_id=councils.community,
                              matter=VoteMatter(kind=VoteMatterKind.PROPOSAL, id=proposal_id),
                              terms=VoteTerms(question="是否同意?", closes_at=notice_ends + timedelta(days=365),
                                              electorate=Electorate(kind=ElectorateKind.COUNCIL_MEMBERS,
                                                                    scope_id=councils.community, size=len(roll),
                                                                    roll=roll),
                                              method="show_of_hands", majority="simple", quorum_percent=60,
                                              secrecy="open"))
        with pytest.raises(DemoFailed, match="notice period runs until"):
            await api.send(request)
        # Retried while refused invalid_state, within the Api's 60 s of real time: not seven days.
        await api.send(request, retry_while={"invalid_state"})
        elapsed = time.monotonic() - started
        print(f"seven-day notice: the vote was accepted {elapsed:.1f} s (real time) after publication")
        proposal = await api.until("the vote's request", "proposals", f"proposals/{proposal_id}",
                                   lambda p: p["votes"])
        assert datetime.fromisoformat(proposal["notice_ends_at"]) == notice_ends
        vote = await api.until("the vote's opening", "voting", f"votes/{vote_id}")
        assert vote["status"] == "open" and datetime.fromisoformat(vote["opened_at"]) >= notice_ends


def test_a_service_refuses_the_rehearsal_clock_under_a_production_issuer():
    base = {k: v for k, v in os.environ.items() if not k.startswith("YISHI_")}
    production = "https://auth.gulou.gov.cn/realms/yishi"
    env = {**base, **auth_env(), **PLATFORM_ENV, "YISHI_AUTH_ISSUER": production,
           "YISHI_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "YISHI_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    serve = [sys.executable, "-m", "yishi.cli", "serve", "voting"]
    refused = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert f"refusing a rehearsal clock (YISHI_CLOCK_FACTOR=60480) with the production issuer {production}" \
        in refused.stderr
    allowed = subprocess.run(serve, env={**env, "YISHI_CLOCK_REHEARSAL_ISSUERS": production},
                             capture_output=True, text=True, timeout=60)
    # Listed, it starts, and gets as far as the (absent) database.
    assert allowed.returncode == 1 and "Connect call failed ('127.0.0.1', 9)" in allowed.stderr, allowed.stderr
