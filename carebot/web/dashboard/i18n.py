"""The dashboard's UI text in zh-CN and en, and how a request picks its language."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from carebot.rulebook.schema import Rulebook
from carebot.web.dashboard import reasons

__all__ = ["LANGUAGES", "Names", "Translator", "pick_language"]

LANGUAGES = ("zh-CN", "en")
SHANGHAI = ZoneInfo("Asia/Shanghai")

# key: (zh-CN, en)
_TEXT: dict[str, tuple[str, str]] = {
    "title": ("carebot 控制台", "carebot dashboard"),
    "nav.overview": ("概览", "Overview"),
    "nav.orders": ("订单时间线", "Order timeline"),
    "nav.upcoming": ("待发送", "Upcoming"),
    "nav.feedback": ("客户反馈", "Feedback"),
    "nav.disruptions": ("物流中断", "Disruptions"),
    "nav.rules": ("规则", "Rules"),
    "nav.results": ("效果", "Results"),
    "nav.cases": ("售后工单", "Cases"),
    "results.from": ("从", "From"),
    "results.to": ("到", "To"),
    "results.sent": ("已发出", "Sent"),
    "results.delivered": ("已送达", "Delivered"),
    "results.failed": ("失败", "Failed"),
    "results.replies": ("回复", "Replies"),
    "results.score": ("平均评分", "Average score"),
    "results.reorders": ("带来的复购", "Reorders"),
    "results.note": (
        "按到期时间统计；复购：提醒发出后 {days} 天内同一客户再次购买同一商品。",
        "By due time. Reorders: the same customer orders the same SKU within {days} days "
        "of the reminder.",
    ),
    "logout": ("退出", "Log out"),
    "login.title": ("登录", "Log in"),
    "login.token": ("管理令牌", "Admin token"),
    "login.submit": ("登录", "Log in"),
    "login.wrong": ("令牌错误。", "That token is wrong."),
    "overview.today": ("今天", "Today"),
    "overview.week": ("近 7 天", "Last 7 days"),
    "overview.by_status": ("按状态", "By status"),
    "overview.by_channel": ("按渠道", "By channel"),
    "overview.queue": ("队列深度", "Queue depth"),
    "overview.outage": (
        "{provider} 自 {since} 起发送失败，{waiting} 条消息等待中",
        "{provider} failing since {since}, {waiting} waiting",
    ),
    "overview.last_error": ("最近错误", "Last error"),
    "overview.next_due": ("下一条到期", "Next due"),
    "overview.oldest_overdue": ("最早逾期", "Oldest overdue"),
    "overview.failures": ("失败原因（7 天）", "Failures by reason (7 days)"),
    "overview.per_day": (
        "每天每条规则的消息数（按到期时间）",
        "Messages per day per rule (by due time)",
    ),
    "none": ("无", "none"),
    "empty": ("暂无数据。", "Nothing yet."),
    "count": ("数量", "Count"),
    "rule": ("规则", "Rule"),
    "status": ("状态", "Status"),
    "channel": ("渠道", "Channel"),
    "reason": ("原因", "Reason"),
    "total": ("合计", "Total"),
    "orders.search": ("订单号、手机号、邮箱或运单号", "Order id, phone, email or tracking no."),
    "orders.listing.disruption": ("受此中断影响的在途订单", "Orders in transit it catches"),
    "orders.listing.trouble": ("有问题的包裹", "Parcels in trouble"),
    "orders.listing.complaints": ("本周投诉", "Complaints this week"),
    "orders.listing.failed": ("需要处理的失败消息", "Failures needing action"),
    "answers.complaints": ("本周投诉（按类别）", "Complaints this week by category"),
    "answers.unhandled": ("未处理", "Unhandled"),
    "answers.trouble": ("当前有问题的包裹", "Parcels in trouble now"),
    "answers.next_day": ("未来 24 小时将发送", "Going out in the next 24 hours"),
    "answers.failures": ("需要处理的失败消息（7 天）", "Failures needing action (7 days)"),
    "trouble.stalled": ("长时间无物流更新", "Stalled"),
    "trouble.late": ("已超过预计送达日", "Late"),
    "trouble.failed_attempt": ("投递失败", "Failed attempt"),
    "trouble.exception": ("物流异常", "Exception"),
    "trouble.at_risk": ("受物流中断影响", "At risk from a disruption"),
    "channel.sms": ("短信", "SMS"),
    "channel.email": ("邮件", "Email"),
    "orders.go": ("查找", "Search"),
    "orders.none": ("没有找到订单。", "No order found."),
    "orders.results": ("找到的订单", "Orders found"),
    "orders.customer": ("客户", "Customer"),
    "orders.placed": ("下单时间", "Placed"),
    "orders.items": ("商品", "Items"),
    "orders.shipments": ("包裹", "Shipments"),
    "orders.events": ("收到的事件", "Events received"),
    "orders.messages": ("消息", "Messages"),
    "orders.replies": ("客户回复", "Customer replies"),
    "orders.due": ("到期", "Due"),
    "orders.sent": ("发送于", "Sent"),
    "orders.to": ("收件人", "To"),
    "orders.text": ("内容", "Text"),
    "orders.occurred": ("发生于", "Occurred"),
    "orders.type": ("类型", "Type"),
    "orders.source": ("来源", "Source"),
    "orders.error": ("错误", "Error"),
    "orders.score": ("评分", "Score"),
    "orders.category": ("类别", "Category"),
    "action.cancel": ("取消", "Cancel"),
    "action.resend": ("重发", "Resend"),
    "action.end": ("标记为已结束", "Mark ended"),
    "done.cancel": ("消息已取消。", "Message cancelled."),
    "done.resend": ("消息已重新排入发送。", "Message put back on the schedule."),
    "done.end": ("中断已标记为结束。", "Disruption marked ended."),
    "done.contact": (
        "联系方式已更正，待发送和可重发的消息将发往新地址。",
        "Contact corrected; pending and resendable messages now go to it.",
    ),
    "done.contact_invalid": ("不是有效的手机号或邮箱。", "Not a valid phone number or email."),
    "contact.title": ("更正联系方式", "Correct the contact"),
    "contact.phone": ("手机号", "Phone"),
    "contact.email": ("邮箱", "Email"),
    "contact.save": ("保存", "Save"),
    "contact.history": ("联系方式更正记录", "Contact corrections"),
    "contact.old": ("原值", "Old"),
    "contact.new": ("新值", "New"),
    "contact.moved": ("改发的消息数", "Messages re-addressed"),
    "done.conflict": ("该消息当前状态不允许此操作。", "The message's status does not allow that."),
    "done.missing": ("找不到该对象。", "No such item."),
    "upcoming.by_rule": ("按规则（未来 7 天，每天）", "By rule (next 7 days, per day)"),
    "upcoming.by_hour": ("按小时（当地时间）", "By hour of day (local time)"),
    "upcoming.grid": ("按天和小时", "By day and hour"),
    "feedback.none": (
        "还没有客户反馈（需要启用带 expects_reply 的规则）。",
        "No feedback yet (rules with expects_reply ask for it).",
    ),
    "feedback.distribution": ("评分分布（按周）", "Score distribution (by week)"),
    "feedback.by_product": ("各商品的投诉类别", "Complaint categories by product"),
    "feedback.complaints": ("投诉", "Complaints"),
    "feedback.complaints_note": (
        "所选时段内每条触发售后预警的回复：{score} 分及以下，或属于投诉类别（不论是否打分）。",
        "Every reply in the period that raised a service alert: a score of {score} or less, "
        "or a complaint category, scored or not.",
    ),
    "feedback.received": ("收到时间", "Received"),
    "feedback.no_score": ("未打分", "no score"),
    "feedback.replies": ("回复数", "Replies"),
    "feedback.average": ("平均分", "Average"),
    "feedback.product": ("商品", "Product"),
    "disruptions.none": ("没有当前或即将到来的中断。", "No current or coming disruptions."),
    "disruptions.id": ("编号", "Id"),
    "disruptions.title": ("名称", "Title"),
    "disruptions.regions": ("地区", "Regions"),
    "disruptions.dates": ("日期", "Dates"),
    "disruptions.extra": ("额外运输天数", "Extra transit days"),
    "disruptions.origin": ("来源", "Declared in"),
    "disruptions.affected": ("受影响的在途包裹 / 客户", "Shipments / customers in transit there"),
    "disruptions.notices": ("中断相关消息", "Disruption notices sent"),
    "disruptions.origin.event": ("运行时声明", "declared event"),
    "disruptions.origin.rules": ("规则文件", "rules file"),
    "disruptions.origin.calendar": ("内置日历", "built-in calendar"),
    "disruptions.state.active": ("进行中", "active"),
    "disruptions.state.upcoming": ("即将开始", "upcoming"),
    "disruptions.state.ended": ("已结束", "ended"),
    "disruptions.calendars": ("内置日历", "Built-in calendars"),
    "rules.state": ("校验状态", "Validation state"),
    "rules.ok": (
        "规则已加载，最近一次重载没有错误。",
        "Rules loaded; the last reload had no errors.",
    ),
    "rules.error": (
        "最近一次重载失败，仍在使用上一版规则：",
        "The last reload failed; the previous rules stay live:",
    ),
    "rules.folder": ("规则目录", "Rules folder"),
    "rules.on": ("触发事件", "On"),
    "rules.send": ("发送", "Send"),
    "rules.timing": ("时机", "Timing"),
    "rules.products": ("商品档案", "Product profiles"),
    "cases.title": ("售后工单", "Service cases"),
    "cases.window": ("近 30 天创建的工单", "Cases opened in the last 30 days"),
    "cases.none": ("还没有售后工单。", "No cases yet."),
    "cases.open_by_hand": ("手动创建工单", "Open a case"),
    "cases.note": ("备注", "Note"),
    "cases.deadline": ("处理时限", "Deadline"),
    "cases.opened": ("创建于", "Opened"),
    "cases.history": ("处理记录", "History"),
    "cases.who": ("操作人", "Who"),
    "cases.recovered": ("客户确认已解决", "Customer confirmed it was put right"),
    "cases.not_recovered": ("客户表示未解决", "Customer said it was not put right"),
    "cases.overdue": ("已超时", "Past deadline"),
    "cases.count": ("工单数", "Cases"),
    "cases.by_category": ("各类别的工单（按周）", "Cases by category (by week)"),
    "cases.by_product": ("各商品的工单", "Cases by product"),
    "cases.first_contact": ("首次联系时间中位数（小时）", "Median time to first contact (hours)"),
    "cases.resolution": ("解决时间中位数（小时）", "Median time to resolution (hours)"),
    "cases.past_deadline": ("超时占比", "Share past deadline"),
    "cases.recovery_rate": ("挽回率", "Recovery rate"),
    "cases.active": ("待处理的工单", "Active cases"),
    "cases.all": ("全部", "All"),
    "orders.title": ("订单", "Order"),
    "action.contacted": ("标记为已联系", "Mark contacted"),
    "action.resolved": ("标记为已解决", "Mark resolved"),
    "action.dismissed": ("不予处理", "Dismiss"),
    "action.reopen": ("重新打开", "Reopen"),
    "action.open": ("创建工单", "Open case"),
    "done.contacted": ("工单已标记为已联系。", "Case marked contacted."),
    "done.resolved": ("工单已标记为已解决。", "Case marked resolved."),
    "done.dismissed": ("工单已标记为不予处理。", "Case dismissed."),
    "done.reopen": ("工单已重新打开。", "Case reopened."),
    "done.open": ("工单已创建。", "Case opened."),
}

# Statuses of notifications, orders, shipments and cases: (zh-CN, en).
_STATUS: dict[str, tuple[str, str]] = {
    "scheduled": ("待发送", "scheduled"),
    "claimed": ("发送中", "claimed"),
    "sending": ("发送中", "sending"),
    "sent": ("已发送", "sent"),
    "delivered": ("已送达", "delivered"),
    "failed": ("失败", "failed"),
    "undelivered": ("未送达", "undelivered"),
    "expired": ("已过期", "expired"),
    "unknown": ("未知", "unknown"),
    "cancelled": ("已取消", "cancelled"),
    "suppressed": ("已拦截", "suppressed"),
    "placed": ("已下单", "placed"),
    "paid": ("已付款", "paid"),
    "shipped": ("已发货", "shipped"),
    "refunded": ("已退款", "refunded"),
    "pending": ("待揽收", "pending"),
    "in_transit": ("运输中", "in transit"),
    "out_for_delivery": ("派送中", "out for delivery"),
    "failed_attempt": ("投递失败", "failed attempt"),
    "available_for_pickup": ("待取件", "available for pickup"),
    "exception": ("异常", "exception"),
    "open": ("待处理", "open"),
    "contacted": ("已联系", "contacted"),
    "resolved": ("已解决", "resolved"),
    "dismissed": ("不予处理", "dismissed"),
    "other": ("其他", "other"),
    # Provider delivery statuses (Twilio's), shown beside a message's own status.
    "queued": ("排队中", "queued"),
    "accepted": ("已受理", "accepted"),
    "canceled": ("已取消", "canceled"),
    "read": ("已读", "read"),
    "received": ("已接收", "received"),
    "receiving": ("接收中", "receiving"),
    "partially_delivered": ("部分送达", "partially delivered"),
}


# Who took a step or made a change, as recorded: (zh-CN, en).
_WHO: dict[str, tuple[str, str]] = {
    "customer": ("客户", "customer"),
    "dashboard": ("控制台", "dashboard"),
    "admin-api": ("管理接口", "admin API"),
    "carebot": ("系统", "carebot"),
}


class Translator:
    """``t("key")`` in one language; an unknown key shows itself, so a gap is visible."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else LANGUAGES[0]
        self._index = LANGUAGES.index(self.language)

    def __call__(self, key: str) -> str:
        pair = _TEXT.get(key)
        return pair[self._index] if pair else key


class Names:
    """Labels for statuses, feedback categories and rules in one language (the rules' own
    ``label`` first; an unknown name shows as it is)."""

    def __init__(self, rulebook: Rulebook, language: str, *, zone: ZoneInfo = SHANGHAI) -> None:
        self.rulebook = rulebook
        self.zone = zone
        self.language = language if language in LANGUAGES else LANGUAGES[0]
        self._index = LANGUAGES.index(self.language)

    def status(self, name: str | None) -> str:
        pair = _STATUS.get(name or "")
        return pair[self._index] if pair else (name or "")

    def who(self, name: str | None) -> str:
        pair = _WHO.get(name or "")
        return pair[self._index] if pair else (name or "")

    def category(self, name: str | None) -> str:
        found = self.rulebook.category(name or "")
        if found is not None:
            return found.label_in(self.language)
        return self.status(name)

    def event(self, name: str | None) -> str:
        return reasons.event_type(name, self.language)

    def reason(self, text: str | None) -> str:
        return reasons.reason(text, self.language, self.zone, self._id_name)

    def _id_name(self, name: str) -> str:
        """A status, category or event id in Chinese; any other word as it is."""
        if name in _STATUS:
            return self.status(name)
        if name in reasons.EVENT_TYPES_ZH:
            return self.event(name)
        if name in _WHO:
            return self.who(name)
        return self.category(name)

    def rule(self, name: str | None) -> str:
        found = self.rulebook.rule(name or "")
        return found.label_in(self.language) if found is not None else (name or "")


def _match(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def pick_language(
    query: Mapping[str, str], cookie: str | None, accept_language: str, default: str
) -> str:
    """``?lang=`` first, then the remembered choice, then Accept-Language, then ``default``."""
    for given in (query.get("lang"), cookie):
        if given and _match(given):
            return _match(given) or default
    weighted: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, params = part.partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        found = _match(tag)
        if found and weight > 0:
            weighted.append((weight, found))
    if weighted:
        return max(weighted, key=lambda pair: pair[0])[1]
    return _match(default) or LANGUAGES[0]
