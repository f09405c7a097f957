"""Bilingual message templates (zh-CN and en) per notice, rendered with ``string.Template``.

Each template key declares the parameters the service supplies for it. The catalogue is
checked when the service is built (``main.spec``): a missing language, a missing key or a
placeholder the service never supplies is an error at start-up, never at send time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Template

from contracts.notify import Language

PARAMS: Mapping[str, frozenset[str]] = {
    "proposal.published": frozenset({"title", "proposal_id", "notice_ends_at"}),
    "vote.opened": frozenset({"question", "vote_id", "closes_at"}),
    "vote.closing_soon": frozenset({"question", "vote_id", "closes_at"}),
    "vote.closed": frozenset({"question", "vote_id", "outcome", "turnout_percent"}),
    "resolution.registered": frozenset({"title", "resolution_id"}),
    "task.stalled": frozenset({"task_id", "stalled_after_days"}),
    # reminder_id is not shown; it lets oversight match the notice to its reminder.
    "task.reminder_due": frozenset({"task_id", "kind", "due_at", "reminder_id"}),
    "session.invited": frozenset({"session_id", "title", "proposal_id", "starts_at", "where"}),
    "session.reminder": frozenset({"session_id", "starts_at", "where"}),
    "session.minutes_published": frozenset({"session_id", "held_at", "attendance", "decisions"}),
}
"""Every template the service renders, with the parameters it supplies."""

CATALOGUE: Mapping[str, Mapping[Language, tuple[str, str]]] = {
    "proposal.published": {
        Language.ZH_CN: ("议题公示:${title}", "议题“${title}”(${proposal_id})已公示,公示期至 ${notice_ends_at}。"),
        Language.EN: ("Proposal published: ${title}",
                      "The proposal \"${title}\" (${proposal_id}) is on public notice until ${notice_ends_at}."),
    },
    "vote.opened": {
        Language.ZH_CN: ("表决开始:${question}", "表决 ${vote_id} 已开始,请于 ${closes_at} 前投票。"),
        Language.EN: ("Vote open: ${question}", "Vote ${vote_id} is open; please vote before ${closes_at}."),
    },
    "vote.closing_soon": {
        Language.ZH_CN: ("表决即将结束:${question}", "您尚未投票。表决 ${vote_id} 将于 ${closes_at} 结束。"),
        Language.EN: ("Vote closing soon: ${question}",
                      "You have not voted yet. Vote ${vote_id} closes at ${closes_at}."),
    },
    "vote.closed": {
        Language.ZH_CN: ("表决结果:${question}", "表决 ${vote_id} 已结束,结果:${outcome},参与率 ${turnout_percent}%。"),
        Language.EN: ("Vote result: ${question}",
                      "Vote ${vote_id} has closed. Outcome: ${outcome}; turnout ${turnout_percent}%."),
    },
    "resolution.registered": {
        Language.ZH_CN: ("决议登记:${title}", "决议 ${resolution_id}“${title}”已登记,进入落实与监督。"),
        Language.EN: ("Resolution registered: ${title}",
                      "Resolution ${resolution_id} \"${title}\" is registered for delivery and supervision."),
    },
    "task.stalled": {
        Language.ZH_CN: ("任务停滞:${task_id}", "任务 ${task_id} 已 ${stalled_after_days} 天没有进展报告,请尽快跟进。"),
        Language.EN: ("Task stalled: ${task_id}",
                      "No progress has been reported on task ${task_id} for ${stalled_after_days} days."),
    },
    "task.reminder_due": {
        Language.ZH_CN: ("任务提醒:${task_id}", "任务 ${task_id} 提醒(${kind}),期限 ${due_at}。"),
        Language.EN: ("Task reminder: ${task_id}", "Reminder (${kind}) for task ${task_id}, due ${due_at}."),
    },
    "session.invited": {
        Language.ZH_CN: ("协商邀请:${title}",
                         "诚邀您参加 ${starts_at} 的协商会议(${session_id},地点:${where}),"
                         "就议题“${title}”(${proposal_id})发言。您的发言限于该议题,会议结束即止。"),
        Language.EN: ("Invitation to a consultation: ${title}",
                      "You are invited to the consultation session ${session_id} at ${starts_at} (${where}) "
                      "to speak on \"${title}\" (${proposal_id}). You may speak on that item only, "
                      "until the session closes."),
    },
    "session.reminder": {
        Language.ZH_CN: ("明日协商会议:${starts_at}", "提醒:协商会议 ${session_id} 将于 ${starts_at} 举行,地点:${where}。"),
        Language.EN: ("Consultation session tomorrow: ${starts_at}",
                      "Reminder: the consultation session ${session_id} takes place at ${starts_at} (${where})."),
    },
    "session.minutes_published": {
        Language.ZH_CN: ("会议纪要公布:${session_id}",
                         "${held_at} 协商会议 ${session_id} 的纪要已公布:出席 ${attendance} 人次,议决事项 ${decisions} 项。"),
        Language.EN: ("Minutes published: ${session_id}",
                      "The minutes of the consultation session ${session_id} held at ${held_at} are published: "
                      "attendance ${attendance} person-times, ${decisions} matters decided."),
    },
}


class TemplateError(ValueError):
    """The catalogue cannot render what the service sends, or a request names a bad template."""


@dataclass(frozen=True)
class Templates:
    """A checked catalogue: every key in ``params`` exists in every language and uses
    only the parameters declared for it."""

    catalogue: Mapping[str, Mapping[Language, tuple[str, str]]]
    params: Mapping[str, frozenset[str]]

    def __post_init__(self) -> None:
        problems = []
        for key, supplied in sorted(self.params.items()):
            for language in Language:
                texts = self.catalogue.get(key, {}).get(language)
                if texts is None:
                    problems.append(f"{key} [{language}]: missing")
                    continue
                for text in texts:
                    unknown = _placeholders(text) - supplied
                    if unknown:
                        problems.append(f"{key} [{language}]: unknown placeholders {sorted(unknown)}")
        if problems:
            raise TemplateError("notification templates are incomplete: " + "; ".join(problems))

    def render(self, key: str, language: Language, params: Mapping[str, str]) -> tuple[str, str]:
        """Subject and body of ``key`` in ``language``; TemplateError for an unknown key or missing params."""
        texts = self.catalogue.get(key, {}).get(language)
        if texts is None:
            raise TemplateError(f"no template {key!r} in {language}")
        try:
            return tuple(Template(t).substitute(params) for t in texts)  # type: ignore[return-value]
        except KeyError as exc:
            raise TemplateError(f"template {key!r} needs parameter {exc.args[0]!r}") from None


def _placeholders(text: str) -> set[str]:
    return {m.group("named") or m.group("braced") for m in Template.pattern.finditer(text)
            if m.group("named") or m.group("braced")}


def default_templates() -> Templates:
    """The service's own catalogue, checked."""
    return Templates(CATALOGUE, PARAMS)
