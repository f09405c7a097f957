"""Every word the portal shows, in Chinese (zh-CN, the default) and English: the one
message catalogue. Templates hold no visible text of their own; they call ``t(key)``.
Which language a reader gets: the ``lang`` cookie the switch sets, else the best of
``Accept-Language``, else Chinese (:func:`choose`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")
LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"
COOKIE = "lang"

_M: dict[str, tuple[str, str]] = {
    # key: (zh-CN, en)
    "site.name": ("议事公开", "Yishi public record"),
    "site.tagline": ("社区议事与成果运用，公开可查", "Community deliberation and its outcomes, in the open"),
    "nav.label": ("主导航", "Main navigation"),
    "nav.home": ("首页", "Home"),
    "nav.notices": ("公示", "Notices"),
    "nav.votes": ("表决结果", "Vote results"),
    "nav.statistics": ("统计", "Statistics"),
    "lang.label": ("语言", "Language"),
    "lang.zh-CN": ("中文", "中文"),
    "lang.en": ("English", "English"),
    "skip": ("跳到正文", "Skip to content"),
    "footer.public": ("本站只显示公开信息；居民姓名按本区设置隐去。", "Only public information is shown here; "
                      "residents' names are masked as the district decides."),
    "footer.feed": ("订阅更新（Atom）", "Follow updates (Atom)"),
    "district.title": ("{district} 区议事公开", "District {district}: public record"),
    "district.communities": ("社区成果运用路线图", "Communities' outcome roadmaps"),
    "district.no_communities": ("还没有社区的记录。", "No community has a record yet."),
    "district.notices": ("正在公示的议题", "Proposals in their notice period"),
    "district.votes": ("最近的表决结果", "Recent vote results"),
    "roadmap.title": ("{community} 成果运用路线图", "{community}: outcome roadmap"),
    "roadmap.summary": ("共 {count} 项决议", "{count} resolutions"),
    "roadmap.empty": ("这个社区还没有决议。", "This community has no resolution yet."),
    "roadmap.fund": ("社区基金", "Community fund"),
    "roadmap.allocated": ("已安排", "Allocated"),
    "roadmap.spent": ("已支出", "Spent"),
    "roadmap.embed": ("在你的网站嵌入路线图", "Embed this roadmap on your site"),
    "col.resolution": ("决议", "Resolution"),
    "col.status": ("状态", "Status"),
    "col.progress": ("进度", "Progress"),
    "col.implementers": ("承办单位", "Implementers"),
    "col.deadline": ("期限", "Deadline"),
    "col.flags": ("提醒", "Flags"),
    "col.spending": ("支出／安排", "Spent / allocated"),
    "flag.stalled": ("停滞", "Stalled"),
    "flag.escalated": ("已上报", "Escalated"),
    "flag.none": ("无", "None"),
    "progress.label": ("完成 {percent}%", "{percent}% complete"),
    "status.registered": ("已立项", "Registered"),
    "status.in_progress": ("办理中", "In progress"),
    "status.completed": ("已完成", "Completed"),
    "status.inspected": ("已验收", "Inspected"),
    "status.rated": ("已测评", "Rated"),
    "status.closed_delivered": ("已办结", "Closed, delivered"),
    "status.closed_abandoned": ("已终止", "Closed, abandoned"),
    "status.closed_superseded": ("已被取代", "Closed, superseded"),
    "none": ("—", "—"),
    "resolution.title": ("决议：{title}", "Resolution: {title}"),
    "resolution.timeline": ("从需求到测评", "From the need to the rating"),
    "resolution.back": ("返回路线图", "Back to the roadmap"),
    "when": ("时间", "When"),
    "who": ("谁", "Who"),
    "what": ("事项", "What"),
    "step.ProposalRaised": ("提出议题", "Raised the proposal"),
    "step.ProposalPublished": ("公示议题，截止 {notice_ends_at}", "Published for notice until {notice_ends_at}"),
    "step.MotionSeconded": ("附议", "Seconded"),
    "step.ObjectionLodged": ("提出反对", "Objected"),
    "step.StatementMade": ("发言", "Spoke"),
    "step.VoteClosed": ("表决结束：{outcome}，参与率 {turnout}%（赞成 {in_favour}，反对 {against}，弃权 {abstain}）",
                        "Vote closed: {outcome}, turnout {turnout}% ({in_favour} for, {against} against, "
                        "{abstain} abstaining)"),
    "step.ProposalDecided": ("作出决定：{decision}", "Decided: {decision}"),
    "step.ResolutionRegistered": ("决议立项", "Resolution registered"),
    "step.TaskAssigned": ("交办给 {implementer}，期限 {due_at}", "Assigned to {implementer}, due {due_at}"),
    "step.TaskAccepted": ("承办单位接受任务", "The implementer accepted the task"),
    "step.ProgressReported": ("报告进度 {percent}%", "Reported progress: {percent}%"),
    "step.TaskStalled": ("任务停滞", "The task stalled"),
    "step.TaskEscalated": ("上报至{level}", "Escalated to the {level} level"),
    "step.FundsAllocated": ("安排资金 {amount}", "Allocated {amount}"),
    "step.FundsSpent": ("支出 {amount}", "Spent {amount}"),
    "step.TaskCompleted": ("完成任务", "Completed the task"),
    "step.InspectionRecorded": ("验收：{finding}", "Inspected: {finding}"),
    "step.SatisfactionRated": ("满意度测评：满意 {satisfied}，基本满意 {basically_satisfied}，不满意 {dissatisfied}",
                               "Satisfaction rated: {satisfied} satisfied, {basically_satisfied} basically "
                               "satisfied, {dissatisfied} dissatisfied"),
    "step.ResolutionClosed": ("决议办结", "Resolution closed"),
    "step.ProposalWithdrawn": ("撤回议题", "Withdrew the proposal"),
    "step.ProposalEscalated": ("议题上交上级议事会", "Referred to the council above"),
    "step.ProposalReturnedForReconsultation": ("退回重新协商", "Returned for reconsultation"),
    "outcome.adopted": ("通过", "adopted"),
    "outcome.rejected": ("未通过", "rejected"),
    "outcome.no_quorum": ("不足法定人数", "no quorum"),
    "outcome.tied": ("票数相同", "tied"),
    "finding.satisfactory": ("合格", "satisfactory"),
    "finding.needs_improvement": ("需整改", "needs improvement"),
    "finding.unsatisfactory": ("不合格", "unsatisfactory"),
    "level.building": ("楼院", "building"),
    "level.compound": ("小区", "compound"),
    "level.community": ("社区", "community"),
    "level.street": ("街道", "street"),
    "level.district": ("区", "district"),
    "role.resident": ("居民", "Resident"),
    "role.council_member": ("议事会成员", "Council member"),
    "role.community_worker": ("社工", "Community worker"),
    "role.chair": ("主持人", "Chair"),
    "role.expert": ("议事能手", "Expert"),
    "role.implementer": ("承办人员", "Implementer"),
    "role.supervisor": ("监事", "Supervisor"),
    "role.official": ("工作人员", "Official"),
    "role.district_admin": ("区管理员", "District administrator"),
    "role.auditor": ("审计", "Auditor"),
    "role.integration": ("区系统", "District system"),
    "role.system": ("平台", "The platform"),
    "notices.title": ("正在公示的议题", "Proposals in their notice period"),
    "notices.empty": ("目前没有正在公示的议题。", "No proposal is in its notice period now."),
    "notices.ends": ("公示截止 {when}", "Notice ends {when}"),
    "notices.session": ("议事时间 {when}", "Session {when}"),
    "notices.counts": ("附议 {seconds}，反对 {objections}", "{seconds} seconds, {objections} objections"),
    "notices.record": ("议事记录", "Deliberation record"),
    "votes.title": ("表决结果", "Vote results"),
    "votes.empty": ("还没有表决。", "No vote yet."),
    "votes.open": ("进行中，截止 {when}", "Open until {when}"),
    "votes.secret": ("无记名投票：只公布票数", "Secret ballot: only the counts are published"),
    "votes.turnout": ("参与率", "Turnout"),
    "votes.quorum": ("法定人数", "Quorum"),
    "votes.quorum_met": ("已达到", "met"),
    "votes.quorum_missed": ("未达到", "not met"),
    "votes.outcome": ("结果", "Outcome"),
    "votes.in_favour": ("赞成", "For"),
    "votes.against": ("反对", "Against"),
    "votes.abstain": ("弃权", "Abstaining"),
    "votes.electorate": ("应参与人数", "Electorate"),
    "votes.ballots": ("投票人数", "Ballots"),
    "stats.title": ("{district} 区统计", "District {district}: statistics"),
    "stats.sessions": ("议事场次", "Sessions"),
    "stats.person_times": ("参与人次", "Person-times"),
    "stats.proposals": ("议题", "Proposals"),
    "stats.resolutions": ("决议", "Resolutions"),
    "stats.on_time": ("按期完成", "Completed on time"),
    "stats.by_community": ("各社区", "By community"),
    "stats.community": ("社区", "Community"),
    "stats.completed": ("已完成", "Completed"),
    "stats.fund": ("基金", "Fund"),
    "stats.spent": ("已支出", "Spent"),
    "stats.satisfaction": ("满意度", "Satisfaction"),
    "chart.spending": ("各社区基金支出（元）", "Spending against each community's fund (yuan)"),
    "chart.resolutions": ("各社区决议与按期完成", "Resolutions and those completed on time, by community"),
    "chart.satisfaction": ("各社区满意度（%）", "Satisfaction by community (%)"),
    "chart.table": ("图表数据", "The chart's figures"),
    "notfound.title": ("没有找到这个页面", "Page not found"),
    "notfound.text": ("这里没有你要找的内容。可能地址有误，或者它不属于本区。",
                      "Nothing is here: the address may be wrong, or it is not of this district."),
    "feed.community": ("{community} 的决议进展", "Progress of {community}'s resolutions"),
    "feed.resolution": ("决议进展：{title}", "Progress of the resolution: {title}"),
    # signing in and acting (services/portal/signin.py, actions.py)
    "signin.login": ("登录", "Sign in"),
    "signin.logout": ("退出登录", "Sign out"),
    "signin.as": ("已登录：{subject}", "Signed in as {subject}"),
    "signin.signed_in": ("你已登录。", "You are signed in."),
    "signin.signed_out": ("你已退出登录。", "You are signed out."),
    "signin.failed": ("登录没有成功，请再试一次。", "Signing in did not work; please try again."),
    "act.vote": ("你的选择", "Your choice"),
    "act.vote.send": ("投票", "Cast my ballot"),
    "act.second": ("附议", "Second this proposal"),
    "act.object": ("提出异议", "Object"),
    "act.object.grounds": ("异议理由", "Your grounds"),
    "act.raise": ("提出议题", "Raise a proposal"),
    "act.raise.title": ("标题", "Title"),
    "act.raise.summary": ("内容", "Summary"),
    "act.raise.send": ("提交议题", "Raise it"),
    "act.progress": ("报告进度：{implementer}", "Report progress: {implementer}"),
    "act.progress.percent": ("完成百分比", "Percent complete"),
    "act.progress.summary": ("进展说明", "What was done"),
    "act.progress.send": ("提交进度", "Send the report"),
    "act.inspect": ("记录监督检查", "Record an inspection"),
    "act.inspect.aspects": ("检查内容", "Aspects inspected"),
    "act.inspect.finding": ("结论", "Finding"),
    "act.inspect.notes": ("说明", "Notes"),
    "act.inspect.send": ("提交检查记录", "Record it"),
    "aspect.progress": ("进度", "Progress"),
    "aspect.quality": ("质量", "Quality"),
    "aspect.spending": ("资金使用", "Spending"),
    "done.raise": ("议题已提交。", "Your proposal was raised."),
    "done.second": ("你已附议。", "You seconded the proposal."),
    "done.object": ("你的异议已记录。", "Your objection was recorded."),
    "done.vote": ("你的选票已投出。", "Your ballot was cast."),
    "done.receipt": ("选票编号：{receipt}", "Ballot receipt: {receipt}"),
    "done.progress": ("进度已报告。", "Your progress report was recorded."),
    "done.inspect": ("检查记录已保存。", "Your inspection was recorded."),
    # a refusal, by its reason (contracts.common.RejectionReason, and the portal's own three)
    "refused.unknown_command": ("这个操作现在无法进行。", "This action is not available."),
    "refused.unsupported_schema_version": ("这个操作现在无法进行。", "This action is not available."),
    "refused.invalid_command": ("填写的内容不完整或不正确，请检查后再试。",
                                "Something in the form is missing or not valid; please check it and try again."),
    "refused.wrong_district": ("这不属于你所在的区。", "This belongs to another district."),
    "refused.not_authorised": ("你的身份不能进行这个操作。", "Your role does not allow this."),
    "refused.not_found": ("找不到要操作的对象。", "What you acted on could not be found."),
    "refused.already_exists": ("已经有同样编号的记录。", "Something with this id already exists."),
    "refused.invalid_state": ("现在这个阶段不能这样做。", "This cannot be done at this stage."),
    "refused.duplicate": ("你已经做过了（例如已经投过票）。", "You have already done this (for example, voted)."),
    "refused.not_eligible": ("你不在这次表决的投票人名单中。", "You are not on this vote's roll."),
    "refused.deadline_passed": ("期限已过。", "The deadline has passed."),
    "refused.over_budget": ("超出了安排的资金。", "This goes over the allocated funds."),
    "refused.conflict": ("同时有其他修改，请再试一次。", "Something changed at the same time; please try again."),
    "refused.idempotency_key_reused": ("这个表单已经提交过，请刷新页面后再试。",
                                       "This form was sent before; reload the page and try again."),
    "refused.council_rule": ("不符合议事会的规则。", "This breaks a rule of the council."),
    "refused.vote_requested_through_proposals": ("议题的表决要通过议题提请。",
                                                 "A proposal's vote is requested through the proposal."),
    "refused.unauthenticated": ("登录已过期，请重新登录。", "Your sign-in has expired; please sign in again."),
    "refused.rate_limited": ("操作太频繁，请稍后再试。", "Too many actions at once; please wait a moment."),
    "refused.unavailable": ("服务暂时不可用，请稍后再试。", "The service is unavailable just now; please try later."),
}

CATALOGUE: dict[str, dict[str, str]] = {
    language: {key: texts[i] for key, texts in _M.items()} for i, language in enumerate(LANGUAGES)}


def translate(language: str, key: str, **params: object) -> str:
    """The text of ``key`` in ``language``, with ``params`` filled in. An unknown key is a
    bug (a KeyError), not a blank on the page."""
    text = CATALOGUE[language][key]
    return text.format(**params) if params else text


def refusal(language: str, reason: str | None) -> str:
    """A refused command's reason in plain words (``refused.*``); a reason this catalogue
    does not know yet reads as the service being unable to do it now."""
    return CATALOGUE[language].get(f"refused.{reason}") or CATALOGUE[language]["refused.unknown_command"]


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The reader's language: the switch's cookie, else the first of ``Accept-Language``
    (by quality) the portal has (``zh``, ``zh-TW`` and the like count as Chinese, ``en-GB``
    as English), else Chinese."""
    if cookie in LANGUAGES:
        return cookie
    offered: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, rest = part.strip().partition(";")
        quality = 1.0
        if rest.strip().startswith("q="):
            try:
                quality = float(rest.strip()[2:])
            except ValueError:
                continue
        offered.append((-quality, i, tag.strip().lower()))
    for quality, _, tag in sorted(offered):
        if quality >= 0:
            continue
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def labels(language: str) -> Mapping[str, str]:
    """The whole catalogue of one language."""
    return CATALOGUE[language]


def local_date(when: datetime | None, with_time: bool = False) -> str:
    """A date as pages show it: Beijing time, to the day (or the minute)."""
    if when is None:
        return "—"
    return when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def yuan(fen: int | None) -> str:
    """An amount in fen, shown in yuan: ``¥1,234.50``."""
    return "—" if fen is None else f"¥{fen / 100:,.2f}"


_WORDS = {"outcome": "outcome", "decision": "outcome", "finding": "finding", "level": "level"}


def describe(language: str, kind: str, figures: Mapping[str, Any]) -> str:
    """What a timeline step (``step.KIND``) says, its figures in words of ``language``."""
    params: dict[str, Any] = dict(figures)
    for key, prefix in _WORDS.items():
        if key in params:
            params[key] = translate(language, f"{prefix}.{params[key]}")
    for key in ("due_at", "notice_ends_at"):
        if key in params:
            params[key] = local_date(params[key])
    if "amount_fen" in params:
        params["amount"] = yuan(params["amount_fen"])
    return CATALOGUE[language][f"step.{kind}"].format(**params)
