"""Event types and the reasons carebot records, as a merchant reads them in Chinese.

Reasons are stored in English (logs, the CLI, the admin API read them); the zh-CN pages show
the known ones translated, and every ISO 8601 instant in a reason in the shop's zone to the
minute. A reason not known here keeps its words, with its instants localised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["EVENT_TYPES_ZH", "event_type", "reason"]

EVENT_TYPES_ZH = {
    "order.placed": "已下单",
    "order.paid": "已付款",
    "order.shipped": "已发货",
    "shipment.updated": "物流更新",
    "order.delivered": "已签收",
    "order.cancelled": "订单取消",
    "order.refunded": "订单退款",
    "customer.updated": "客户信息更新",
    "message.received": "收到客户回复",
    "disruption.declared": "声明物流中断",
    "feedback.received": "收到评价",
    "shipment.stalled": "物流停滞",
    "shipment.late": "超过预计送达",
    "disruption.shipment_at_risk": "包裹受中断影响",
    "disruption.stock_up": "中断前囤货提醒",
    "restock.due": "补货提醒到期",
    "case.opened": "工单创建",
    "case.updated": "工单更新",
    "case.overdue": "工单超时",
    "case.resolved": "工单解决",
    "digest.weekly": "每周摘要",
}

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")

# (English pattern, Chinese template); groups are carried over by number.
_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^held for quiet hours until (.+)$"), "免打扰时段，推迟到 {1}"),
    (
        re.compile(r"^held: the customer has an unhandled complaint \((.+)\)$"),
        "暂缓：客户有未处理的投诉（{1}）",
    ),
    (
        re.compile(r"^not sent: held: the customer has an unhandled complaint \((.+)\)$"),
        "未发送：客户的投诉在有效期内一直未处理（{1}）",
    ),
    (
        re.compile(
            r"^stale event: (\S+) occurred (\d+)d (\d+)h ago \((.+)\), older than "
            r"max_event_age (\S+)$"
        ),
        "事件过旧：{1} 发生于 {2} 天 {3} 小时前（{4}），超过规则允许的 {5}，不再发送",
    ),
    (re.compile(r"^resent by (\S+) at (.+)$"), "由 {1} 于 {2} 重新发送"),
    (re.compile(r"^cancelled by (\S+) at (.+)$"), "由 {1} 于 {2} 取消"),
    (re.compile(r"^cancelled by (\S+) \((.+)\)$"), "因事件 {1}（{2}）取消"),
    (re.compile(r"^order (\w+): (\S+) \((.+)\)$"), "订单已{1}：{2}（{3}）"),
    (re.compile(r"^not sent: past its not-after time (.+)$"), "未发送：已过有效期 {1}"),
    (
        re.compile(r"^not sent: no allowed hour before its not-after time$"),
        "未发送：有效期内没有允许发送的时段",
    ),
    (re.compile(r"^no valid phone number or email address$"), "没有有效的手机号或邮箱"),
    (re.compile(r"^no valid phone number$"), "没有有效的手机号"),
    (re.compile(r"^no valid email address(.*)$"), "没有有效的邮箱{1}"),
    (re.compile(r"^no (sms|email) address$"), "没有{1}地址"),
    (re.compile(r"^invalid (sms|email) address; not sent$"), "{1}地址无效，未发送"),
    (re.compile(r"^recipient opted out of (sms|email)(.*)$"), "收件人已退订{1}{2}"),
    (re.compile(r"^merged into notification (\d+)$"), "已合并到消息 {1}"),
    (re.compile(r"^rule '(.+)' was removed$"), "规则 {1} 已删除"),
    (re.compile(r"^deferred by the frequency cap (.+)$"), "因发送频率上限推迟 {1}"),
]
_WORDS = {"sms": "短信", "email": "邮件", "cancelled": "取消", "refunded": "退款"}


def event_type(name: str | None, language: str) -> str:
    """An event type in ``language`` (zh-CN: its Chinese name, the id kept for search)."""
    if not name:
        return ""
    if language != "zh-CN":
        return name
    return EVENT_TYPES_ZH.get(name, name)


def _localiser(zone: ZoneInfo) -> Callable[[re.Match[str]], str]:
    def local(match: re.Match[str]) -> str:
        text = match.group(0)
        try:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        if instant.tzinfo is None:
            return text
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return local


def reason(text: str | None, language: str, zone: ZoneInfo) -> str:
    """A recorded reason for ``language``: instants in ``zone`` to the minute; in zh-CN the
    known reasons in Chinese."""
    if not text:
        return ""
    text = _ISO.sub(_localiser(zone), text)
    if language != "zh-CN":
        return text
    for pattern, template in _REASONS:
        found = pattern.match(text)
        if found is None:
            continue
        parts = [_WORDS.get(g, g) if g is not None else "" for g in found.groups()]
        out = template
        for index, part in enumerate(parts, start=1):
            out = out.replace(f"{{{index}}}", EVENT_TYPES_ZH.get(part, part))
        return out
    return text
