"""Atom feeds (RFC 4287) of a community's roadmap and of one resolution, written by
feedgen: one entry per step of the timeline, newest first, so a follower's reader shows
each step of progress as it comes."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from fastapi.responses import Response
from feedgen.feed import FeedGenerator

from services.portal import messages
from services.portal.views import Step


def atom(url: str, title: str, lang: str, steps: list[Step], site: str, district: str) -> Response:
    """The feed at ``url`` of ``steps``, in ``lang``; each entry links to its resolution's
    page on ``site`` (else to the feed's page)."""
    feed = FeedGenerator()
    feed.id(url)
    feed.title(title)
    feed.language(lang)
    feed.link(href=url, rel="self")
    page = url.removesuffix("/feed.atom")
    feed.link(href=page, rel="alternate")
    feed.author({"name": messages.translate(lang, "site.name")})
    feed.updated(max((s.at for s in steps), default=None) or _epoch())
    for s in steps:  # feedgen puts the last added first
        entry = feed.add_entry()
        entry.id(f"urn:yishi:{district}:event:{s.event_id}")  # the event's id: the same in every feed
        label = messages.describe(lang, s.kind, s.figures)
        who = messages.translate(lang, f"role.{s.who.role}") + (f" {s.who.name}" if s.who.name else "")
        entry.title(label)
        entry.updated(s.at)
        entry.author({"name": who})
        entry.link(href=f"{site}/{district}/resolutions/{quote(s.resolution_id, safe='')}" if s.resolution_id
                   else page, rel="alternate")
        if s.text:
            entry.content(s.text, type="text")
    return Response(feed.atom_str(pretty=True), media_type="application/atom+xml; charset=utf-8")


def _epoch() -> datetime:
    return datetime(2020, 1, 1, tzinfo=timezone.utc)
