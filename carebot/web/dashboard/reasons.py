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

_COMPLAINT = (
    r"the customer has an unhandled complaint \(case (\d+), (\S+), opened (.+?), order (.+)\)"
)
_CAP = r"the frequency cap \((\d+) (sms|email) per 24 h\)"

# (English pattern, Chinese template); groups are carried over by number. A group holding a
# status id, event type, channel or category is shown by its Chinese name.
_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^held for quiet hours until (.+)$"), "免打扰时段，推迟到 {1}"),
    (
        re.compile(rf"^held: {_COMPLAINT}$"),
        "暂缓：客户有未处理的投诉（工单 {1}，{2}，{3} 创建，订单 {4}）",
    ),
    (
        re.compile(rf"^not sent: held: {_COMPLAINT}$"),
        "未发送：客户的投诉在有效期内一直未处理（工单 {1}，{2}，{3} 创建，订单 {4}）",
    ),
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
    (re.compile(r"^shipment cancelled: (\S+) \((.+)\)$"), "包裹已取消：{1}（{2}）"),
    (re.compile(r"^order (\w+): (\S+) \((.+)\)$"), "订单已{1}：{2}（{3}）"),
    (
        re.compile(
            r"^not sent: past its not-after time (.+?) before the provider took it "
            r"\((\d+) attempt\(s\)\); last error: (.+)$"
        ),
        "未发送：已过有效期 {1}，服务商一直未受理（已尝试 {2} 次）；最后错误：{3}",
    ),
    (
        re.compile(
            r"^not sent: past its not-after time (.+?) while the provider was failing; "
            r"last error: (.+)$"
        ),
        "未发送：已过有效期 {1}，期间服务商一直不可用；最后错误：{2}",
    ),
    (
        re.compile(r"^not sent: past its not-after time when its worker's claim ran out$"),
        "未发送：发送进程的认领过期时已过有效期",
    ),
    (re.compile(r"^not sent: past its not-after time (.+)$"), "未发送：已过有效期 {1}"),
    (
        re.compile(r"^not sent: no allowed hour before its not-after time$"),
        "未发送：有效期内没有允许发送的时段",
    ),
    (
        re.compile(rf"^not sent: {_CAP} has no free slot before its not-after time$"),
        "未发送：有效期内发送频率上限（每 24 小时 {1} 条{2}）没有空位",
    ),
    (
        re.compile(rf"^deferred by {_CAP} until (.+)$"),
        "受发送频率上限（每 24 小时 {1} 条{2}）限制，推迟到 {3}",
    ),
    (re.compile(r"^deferred by the frequency cap (.+)$"), "因发送频率上限推迟 {1}"),
    (re.compile(r"^deferred: (.+); next try at (.+)$"), "服务商暂时不可用：{1}；下次尝试 {2}"),
    (re.compile(r"^retry (\d+)/(\d+) at (.+)$"), "第 {1}/{2} 次重试于 {3}"),
    (
        re.compile(r"^retry (\d+) \(transient error; retried until not-after\) at (.+)$"),
        "临时错误，第 {1} 次重试于 {2}（有效期内持续重试）",
    ),
    (re.compile(r"^permanent error: (.+)$"), "永久性错误：{1}"),
    (
        re.compile(r"^gave up after (\d+) attempt\(s\); last error: (.+)$"),
        "尝试 {1} 次后放弃；最后错误：{2}",
    ),
    (
        re.compile(r"^gave up: the sender stopped mid-send on the last of its attempts; .*$"),
        "已放弃：发送进程在最后一次尝试中途停止，服务商可能已收到",
    ),
    (
        re.compile(r"^sender stopped mid-send, past its not-after time: not sent again; .*$"),
        "发送进程中途停止且已过有效期：不再发送，服务商可能已收到",
    ),
    (
        re.compile(r"^sender stopped mid-send; the provider is asked before it goes again$"),
        "发送进程中途停止；再次发送前先向服务商查询",
    ),
    (
        re.compile(r"^sender stopped mid-send; the provider may or may not have it$"),
        "发送进程中途停止；服务商可能已收到",
    ),
    (
        re.compile(r"^an earlier attempt had reached the provider; not sent again$"),
        "之前的一次尝试已到达服务商，不再重复发送",
    ),
    (
        re.compile(
            r"^an earlier attempt may have reached the provider and it could not be asked .*$"
        ),
        "之前的尝试可能已到达服务商且无法查询，不再发送",
    ),
    (re.compile(r"^unexpected error: (.+)$"), "意外错误：{1}"),
    (re.compile(r"^Twilio reported (\w+)(?: \(error (\w+)\))?$"), "Twilio 回报：{1}（错误码 {2}）"),
    (re.compile(r"^Alibaba Cloud reported (\S+)(?: \((.+)\))?$"), "阿里云回报：{1}（{2}）"),
    (re.compile(r"^no valid phone number or email address$"), "没有有效的手机号或邮箱"),
    (re.compile(r"^no valid phone number$"), "没有有效的手机号"),
    (re.compile(r"^no valid email address(.*)$"), "没有有效的邮箱{1}"),
    (
        re.compile(r"^no alerts address: set CAREBOT_ALERTS__EMAIL$"),
        "没有预警邮箱：请设置 CAREBOT_ALERTS__EMAIL",
    ),
    (re.compile(r"^no (sms|email) address$"), "没有{1}地址"),
    (re.compile(r"^invalid (sms|email) address; not sent$"), "{1}地址无效，未发送"),
    (re.compile(r"^recipient opted out of (sms|email)(.*)$"), "收件人已退订{1}{2}"),
    (re.compile(r"^merged into notification (\d+)$"), "已合并到消息 {1}"),
    (re.compile(r"^rule '(.+)' was removed$"), "规则「{1}」已删除"),
]
_FALLING_BACK = re.compile(r"^(.+); falling back to (sms|email)$")
_WORDS = {"sms": "短信", "email": "邮件", "cancelled": "取消", "refunded": "退款"}
# A UTC minute as the complaint hold writes it ("2026-12-01 03:00 UTC").
_UTC_MINUTE = re.compile(r"\b(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC\b")
# Words shown by their Chinese name wherever they stand: message and parcel statuses, and ids
# (categories, statuses) spelt with an underscore.
_STATUS_WORDS = (
    "scheduled|claimed|sending|sent|delivered|undelivered|failed|expired|cancelled|suppressed"
)
_ID_WORDS = re.compile(rf"\b(?:[a-z]+(?:_[a-z]+)+|{_STATUS_WORDS}|exception)\b")


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


def _part(part: str | None, names: Callable[[str], str], zone: ZoneInfo) -> str:
    if part is None:
        return ""
    if part in _WORDS:
        return _WORDS[part]
    if part in EVENT_TYPES_ZH:
        return EVENT_TYPES_ZH[part]
    named = names(part)
    if named != part:
        return named
    return _ID_WORDS.sub(lambda m: names(m.group(0)), part)


def _chinese(text: str, names: Callable[[str], str], zone: ZoneInfo) -> str:
    found = _FALLING_BACK.match(text)
    if found is not None:
        channel = _WORDS[found.group(2)]
        return f"{_chinese(found.group(1), names, zone)}；改用{channel}发送"
    for pattern, template in _REASONS:
        found = pattern.match(text)
        if found is None:
            continue
        out = template
        for index, part in enumerate(found.groups(), start=1):
            out = out.replace(f"{{{index}}}", _part(part, names, zone))
        return out.replace("（错误码 ）", "").replace("（）", "")
    # Not a reason carebot writes (a provider's own words): shown as it is, but a status,
    # category or event id in it by its Chinese name.
    return _ID_WORDS.sub(lambda m: names(m.group(0)), text)


def reason(
    text: str | None,
    language: str,
    zone: ZoneInfo,
    names: Callable[[str], str] = lambda name: name,
) -> str:
    """A recorded reason for ``language``: instants in ``zone`` to the minute; in zh-CN the
    known reasons in Chinese, ids (statuses, categories, event types) by ``names``."""
    if not text:
        return ""
    text = _ISO.sub(_localiser(zone), _UTC_MINUTE.sub(r"\1+00:00", text))
    if language != "zh-CN":
        return text
    return _chinese(text, names, zone)
