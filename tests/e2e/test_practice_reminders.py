"""A stalled task, as the practices run it, over the four services as processes: the
reminder reaches the implementer through the district's directory of default contacts
(a webhook per organisation) without anyone subscribing; a reminder that reaches no one
is recorded as failed and shows on the task; the task's status and the community's
roadmap show the stall and the escalation (with its level) until progress resumes; the
audit trail says who was reminded."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

from rich.console import Console
from standardwebhooks import Webhook

from contracts.common import Actor, Role
from contracts.notify import Channel, RemoveDefaultContact, SetDefaultContact
from contracts.oversight import (
    AcceptTask,
    AssignTask,
    Implementer,
    ImplementerKind,
    PolicyScope,
    RegisterResolution,
    ReportProgress,
    SetReminderPolicy,
)
from tests.support.auth import acting
from yishi import demo
from yishi.demo import OFFICIAL, STAFF, SUPERVISOR, WORKER, Api

say = Console(width=160)
ADMIN = Actor(id="admin-gulou-01", role=Role.DISTRICT_ADMIN)
ORG = "org-green-home"


async def test_stalled_task_reminds_its_implementer_by_default_webhook_and_shows_its_escalation(platform):
    district = platform.districts[1]
    tag = uuid.uuid4().hex[:6]
    async with Api(platform.urls, district, timeout=60, auth=acting()) as api:
        councils = await demo.form_councils(api, tag, say)
        resolution_id, task_id = f"res-{tag}", f"task-{tag}"
        await api.send(RegisterResolution(district=district, actor=WORKER, resolution_id=resolution_id,
                                          proposal_id=f"prop-{tag}", council_id=councils.community,
                                          title="3号院充电棚", text="建设集中充电棚"))
        await api.until("the resolution's community", "oversight", f"resolutions/{resolution_id}",
                        lambda r: r["community_id"] == "xikang")
        # The district keeps the implementer's default channel: nobody subscribes.
        await api.send(SetDefaultContact(district=district, actor=ADMIN, party_id=ORG, channel=Channel.WEBHOOK,
                                         address=platform.inbox.url))
        # A contact set and removed again is no contact: the street council is reached by nobody.
        await api.send(SetDefaultContact(district=district, actor=WORKER, party_id=councils.street,
                                         channel=Channel.WEBHOOK, address=platform.inbox.url + "/street"))
        await api.send(RemoveDefaultContact(district=district, actor=WORKER, party_id=councils.street))
        await api.send(SetReminderPolicy(district=district, actor=WORKER, scope=PolicyScope.RESOLUTION,
                                         scope_id=resolution_id, not_accepted_days=30, stall_days=1,
                                         deadline_warning_days=7, escalate_after_days=1,
                                         supervisor_id=SUPERVISOR.id))
        await api.send(AssignTask(district=district, actor=WORKER, task_id=task_id, resolution_id=resolution_id,
                                  implementer=Implementer(kind=ImplementerKind.SOCIAL_ORGANISATION, id=ORG,
                                                          name="鼓楼绿色家园服务中心"),
                                  description="建设充电棚", acceptance_standards=("40个充电位全部可用",),
                                  due_at=datetime.now(timezone.utc) + timedelta(days=60)))
        await api.send(AcceptTask(district=district, actor=STAFF, task_id=task_id))
        await api.send(ReportProgress(district=district, actor=STAFF, task_id=task_id, percent_complete=40,
                                      summary="地基和棚架完成。"))

        # No news for a policy day, then two more: the implementer, the supervisor, the street council.
        task = await api.until("the escalation", "oversight", f"tasks/{task_id}",
                               lambda t: t["status"] == "escalated" and len(t["reminders"]) == 3
                               and all(r["delivery"] != "pending" for r in t["reminders"]))
        assert (task["escalation_level"], task["escalated_to"]) == ("street", councils.street)
        assert task["stalled_at"] is not None
        by_step = {r["step"]: r for r in task["reminders"]}
        assert [(by_step[s]["kind"], by_step[s]["recipient_id"]) for s in (1, 2, 3)] == [
            ("stalled", STAFF.id), ("stalled", SUPERVISOR.id), ("stalled", councils.street)]
        # The implementer's staff had no subscription: the organisation's default webhook took it.
        assert (by_step[1]["delivery"], by_step[1]["channel"], by_step[1]["failure_reason"]) == (
            "delivered", "webhook", None)
        # Nobody has a contact for the supervisor or the street council: recorded, shown, not silent.
        assert [(by_step[s]["delivery"], by_step[s]["failure_reason"]) for s in (2, 3)] == [
            ("failed", "no_recipient"), ("failed", "no_recipient")]

        subscriptions = await api.get("notify", "subscriptions", subscriber_id=STAFF.id)
        assert subscriptions["items"] == []
        delivered = (await api.get("notify", "deliveries", recipient_id=STAFF.id, status="delivered"))["items"]
        reminders = [d for d in delivered if d["regarding_type"] == "ReminderDue"]
        assert len(reminders) == 1 and reminders[0]["address"] == platform.inbox.url
        received = [(h, b) for h, b in platform.inbox.received
                    if json.loads(b).get("delivery_id") == reminders[0]["delivery_id"]]
        assert len(received) == 1
        headers, body = received[0]
        secret = "whsec_" + base64.b64encode(platform.webhook_secret.encode()).decode()
        notice = Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
        assert (notice["recipient_id"], notice["template"], notice["regarding"]["type"]) == (
            STAFF.id, "task.reminder_due", "ReminderDue")
        assert task_id in notice["body"]

        # The roadmap shows the task escalated, with the level.
        roadmap = await api.get("oversight", "communities/xikang/roadmap")
        entry = next(e for e in roadmap["resolutions"] if e["resolution_id"] == resolution_id)
        assert (entry["tasks"], entry["tasks_stalled"], entry["tasks_escalated"]) == (1, 0, 1)
        assert entry["stalled_tasks"] == [{"task_id": task_id, "status": "escalated", "escalation_level": "street",
                                           "escalated_to": councils.street}]

        # The audit trail says who was reminded, and whether it reached them.
        trail = await api.until("the reminders in the audit trail", "oversight",
                                f"resolutions/{resolution_id}/audit",
                                lambda t: sum(s["type"] == "ReminderDue" for s in t["steps"]) == 3)
        reminded = [(s["recipient_id"], s["body"]["escalation_step"]) for s in trail["steps"]
                    if s["type"] == "ReminderDue"]
        assert sorted(reminded, key=lambda r: r[1]) == [(STAFF.id, 1), (SUPERVISOR.id, 2), (councils.street, 3)]

        # Progress resumes (under a policy that will not stall it again within the test).
        await api.send(SetReminderPolicy(district=district, actor=OFFICIAL, scope=PolicyScope.RESOLUTION,
                                         scope_id=resolution_id, not_accepted_days=30, stall_days=3650,
                                         deadline_warning_days=7, escalate_after_days=30,
                                         supervisor_id=SUPERVISOR.id))
        await api.send(ReportProgress(district=district, actor=STAFF, task_id=task_id, percent_complete=60,
                                      summary="充电桩安装完成。"))
        task = await api.until("the task back on track", "oversight", f"tasks/{task_id}",
                               lambda t: t["percent"] == 60)
        assert (task["status"], task["escalation_level"], task["escalated_to"], task["stalled_at"]) == (
            "accepted", None, None, None)
        roadmap = await api.get("oversight", "communities/xikang/roadmap")
        entry = next(e for e in roadmap["resolutions"] if e["resolution_id"] == resolution_id)
        assert (entry["tasks_stalled"], entry["tasks_escalated"], entry["stalled_tasks"]) == (0, 0, [])
