"""The district statistics and a community's yearly review count records, not guesses:
activities are consultation sessions held (a session counts once its minutes are
published; by form), participants are attendance person-times (a proxy is one, a person
recorded twice at one session is one). What the statistics guessed before (closed votes
and deliberated proposals; raising, seconding, objecting, statements and ballots) stays
under its own names. Over the real PostgreSQL and broker, the events published as the
proposals service would."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

from contracts import proposals as p
from contracts import sessions as s
from services.oversight.main import spec
from tests.integration.oversight.test_oversight_service import actor, deliberation, envelope, publish
from tests.support.service import eventually, new_district, running
from yishi.clock import ManualClock
from yishi.kafka import ensure_topics
from yishi.names import events_topic

T0 = datetime(2026, 3, 15, 1, tzinfo=timezone.utc)
WORKER = actor("worker-0102", "community_worker")
SYSTEM = actor("yishi-proposals", "system")
COMMUNITY, STREET, BUILDING = "council-xikang", "council-ninghai-street", "council-xikang-5"


def councils(d: str) -> list:
    """The community's council (formed in deliberation()), a building council below it, the street's above."""
    return [envelope(p.CouncilFormed(district=d, actor=WORKER, occurred_at=T0, council_id=BUILDING,
                                     name="西康5号楼理事会", level="building", area_id="xikang-5",
                                     parent_council_id=COMMUNITY,
                                     seats=[{"seat_id": "seat-b1", "kind": "resident_representative"}]),
                     "proposals", BUILDING)]


def held(d: str, session_id: str, council_id: str, form: str, held_at: datetime, people: list[tuple]) -> list:
    """A session's attendance (person, proxy_for) and its minutes."""
    events = [envelope(s.AttendanceRecorded(district=d, actor=WORKER, occurred_at=held_at, session_id=session_id,
                                            council_id=council_id, person_id=person, by="worker",
                                            proxy_for=proxy_for), "proposals", session_id)
              for person, proxy_for in people]
    events.append(envelope(s.SessionMinutesPublished(
        district=d, actor=WORKER, occurred_at=held_at + timedelta(hours=3), session_id=session_id,
        council_id=council_id, form=form, held_at=held_at, chair="chair-0001", agenda=(), attendance=len(people),
        proxies=sum(1 for _, proxy in people if proxy), statements=(), votes=(), decisions=(), text=None),
        "proposals", session_id))
    return events


async def test_statistics_count_sessions_held_by_form_and_attendance_person_times(servers):
    d = new_district()
    await ensure_topics(servers.kafka_bootstrap, [events_topic(d, "proposals"), events_topic(d, "voting")])
    async with running(spec(reminder_interval=3600), servers, district=d, clock=ManualClock(T0)) as r:
        steps, _ = deliberation(d)  # the community council, the street's, and one proposal deliberated and voted
        day_1 = held(d, "sess-1", COMMUNITY, "consultation_day", T0, [("m-1", None), ("m-2", None),
                                                                      ("household-of-m-3", "m-3")])
        again = dataclasses.replace(day_1[0], id=str(uuid.uuid4()))  # m-1 recorded twice: one person-time
        await publish(servers.kafka_bootstrap, *steps, *councils(d), *day_1, again,
                      *held(d, "sess-2", COMMUNITY, "consultation_day", T0 + timedelta(days=31),
                            [("m-1", None), ("m-2", None)]),
                      *held(d, "sess-3", BUILDING, "council_of_directors", T0 + timedelta(days=40), [("b-1", None)]),
                      *held(d, "sess-4", STREET, "invitation", T0 + timedelta(days=45), [("expert-0007", None)]),
                      *held(d, "sess-0", COMMUNITY, "consultation_day", datetime(2025, 12, 15, 1, tzinfo=timezone.utc),
                            []))
        # A session under way, its minutes not published: its attendance counts, the session not yet.
        await publish(servers.kafka_bootstrap, envelope(s.AttendanceRecorded(
            district=d, actor=SYSTEM, occurred_at=T0 + timedelta(days=50), session_id="sess-5", council_id=COMMUNITY,
            person_id="m-1", by="self", proxy_for=None), "proposals", "sess-5"))

        async def all_in():
            stats = (await r.client.get(f"/{d}/statistics")).json()
            return stats if stats["activities"] == 5 and stats["participant_times"] == 8 \
                and stats["votes_closed"] == 1 else None

        stats = await eventually(all_in, timeout=60)
        assert stats == {"proposals": 1, "activities": 5, "participant_times": 8, "resolutions": 0,
                         "resolutions_completed": 0, "spent_fen": 0,
                         "sessions_by_form": {"consultation_day": 3, "council_of_directors": 1, "invitation": 1},
                         "votes_closed": 1, "proposals_deliberated": 1, "contributions": 6}

        review = (await r.client.get(f"/{d}/communities/xikang/reviews/2026")).json()
        # The community's councils (its own and the building's below it), not the street's; 2026 only.
        assert (review["sessions_held"], review["sessions_by_form"], review["participant_times"]) == (
            3, {"consultation_day": 2, "council_of_directors": 1}, 7)
        last_year = (await r.client.get(f"/{d}/communities/xikang/reviews/2025")).json()
        assert (last_year["sessions_held"], last_year["sessions_by_form"], last_year["participant_times"]) == (
            1, {"consultation_day": 1}, 0)
