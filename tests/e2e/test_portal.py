"""The portal among the platform's processes: the demo story is told through the services'
public APIs, and the portal, which reads only their public events from Kafka, shows what it
produced on public pages, without a token, to the other district none of it."""

from __future__ import annotations

import httpx
from rich.console import Console

from tests.support.auth import acting
from yishi import demo

say = Console(width=160)  # the story's output, shown when a test fails


async def test_the_roadmap_shows_the_resolution_the_story_produced(platform):
    district, other = platform.districts
    trail = await demo.tell(platform.urls, say, district=district, inbox=platform.inbox, timeout=60, auth=acting())
    resolution_id = trail["resolution_id"]
    async with httpx.AsyncClient(base_url=platform.urls["portal"], timeout=10) as anonymous:
        roadmap = await anonymous.get(f"/{district}/communities/{demo.COMMUNITY}", headers={"Accept-Language": "en"})
        assert roadmap.status_code == 200
        row = roadmap.text[roadmap.text.index(f'data-resolution="{resolution_id}"'):]
        row = row[:row.index("</li>")]
        assert "Rated" in row  # inspected, then rated by the residents
        assert 'aria-valuenow="100"' in row
        assert "鼓楼绿色家园服务中心" in row  # the implementer

        timeline = await anonymous.get(f"/{district}/resolutions/{resolution_id}", headers={"Accept-Language": "en"})
        assert timeline.status_code == 200
        told = [m for m in ("Raised the proposal", "Seconded", "Objected", "Spoke", "Vote closed: adopted",
                            "Decided: adopted", "Resolution registered", "Assigned to", "The task stalled",
                            "Completed the task", "Inspected", "Satisfaction rated") if m not in timeline.text]
        assert told == []
        # Residents and members are masked: none of the story's people is named by id.
        people = [member for _, _, member in demo.MEMBERS] + [demo.RESIDENT.id, demo.EXPERT.id, demo.SUPERVISOR.id]
        assert [p for p in people if p in timeline.text] == []
        assert demo.WORKER.id in timeline.text  # staff are named

        assert (await anonymous.get(f"/{other}/communities/{demo.COMMUNITY}")).status_code == 404
        assert (await anonymous.get(f"/{other}/resolutions/{resolution_id}")).status_code == 404
