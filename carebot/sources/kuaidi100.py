"""快递100 subscription pushes (订阅推送): ``param`` (JSON) and ``sign`` in a form body.

A push carries the parcel's whole track in ``lastResult``: its ``state`` (the basic codes 0–14,
or the advanced ones such as 1001 到达派件城市 when the subscription asked for ``resultv2``)
and its checkpoints, newest first, with ``context``, ``ftime`` (China time, no offset) and, on
advanced subscriptions, ``areaName``. Each push becomes one ``shipment.updated``; the newest
checkpoint rides along as the event's ``checkpoint`` (rules see it as ``checkpoint.*``), with
``in_customer_city`` once the parcel reaches the customer's city (the 同城 moment).

The format, the state codes and the expected answer follow 快递100's API documentation
("订阅推送" / "推送接口", api.kuaidi100.com/document); see tests/fixtures/SOURCES.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from carebot.events import Event, EventType, Shipment, ShipmentStatus
from carebot.exceptions import SourceError
from carebot.sources._common import as_dict, text

__all__ = [
    "ACCEPTED",
    "CARRIERS",
    "STATES",
    "carrier_name",
    "is_same_city",
    "map_push",
    "parse_param",
    "shipment_id",
    "sign",
    "verify_sign",
]

# What 快递100 takes as "received": anything else and it pushes again later.
ACCEPTED = {"result": True, "returnCode": "200", "message": "成功"}

# 快递100 writes times in China time without an offset.
CHINA = ZoneInfo("Asia/Shanghai")

# state code → (its name in 快递100's documentation, carebot's shipment status or None when
# nothing has happened to the parcel yet).
S = ShipmentStatus
STATES: dict[str, tuple[str, ShipmentStatus | None]] = {
    "0": ("在途", S.IN_TRANSIT),
    "1001": ("到达派件城市", S.IN_TRANSIT),
    "1002": ("干线", S.IN_TRANSIT),
    "1003": ("转递", S.IN_TRANSIT),
    "1": ("揽收", S.IN_TRANSIT),
    "101": ("已下单", None),
    "102": ("待揽收", None),
    "103": ("已揽收", S.IN_TRANSIT),
    "5": ("派件", S.OUT_FOR_DELIVERY),
    "501": ("投柜或驿站", S.AVAILABLE_FOR_PICKUP),
    "3": ("签收", S.DELIVERED),
    "301": ("本人签收", S.DELIVERED),
    "302": ("派件异常后签收", S.DELIVERED),
    "303": ("代签", S.DELIVERED),
    "304": ("投柜或站签收", S.DELIVERED),
    "2": ("疑难", S.EXCEPTION),
    "201": ("超时未签收", S.EXCEPTION),
    "202": ("超时未更新", S.EXCEPTION),
    "203": ("拒收", S.EXCEPTION),
    "204": ("派件异常", S.FAILED_ATTEMPT),
    "205": ("柜或驿站超时未取", S.EXCEPTION),
    "206": ("无法联系", S.FAILED_ATTEMPT),
    "207": ("超区", S.EXCEPTION),
    "208": ("滞留", S.EXCEPTION),
    "209": ("破损", S.EXCEPTION),
    "210": ("销单", S.EXCEPTION),
    "4": ("退签", S.EXCEPTION),
    "401": ("已销单", S.EXCEPTION),
    "14": ("拒签", S.EXCEPTION),
    "6": ("退回", S.EXCEPTION),
    "7": ("转投", S.IN_TRANSIT),
    "8": ("清关", S.IN_TRANSIT),
    "10": ("待清关", S.IN_TRANSIT),
    "11": ("清关中", S.IN_TRANSIT),
    "12": ("已清关", S.IN_TRANSIT),
    "13": ("清关异常", S.EXCEPTION),
}

# 快递100's company codes (快递公司编码) of the common domestic carriers.
CARRIERS: dict[str, str] = {
    "shunfeng": "顺丰速运",
    "shunfengkuaiyun": "顺丰快运",
    "yuantong": "圆通速递",
    "zhongtong": "中通快递",
    "yunda": "韵达快递",
    "shentong": "申通快递",
    "ems": "EMS",
    "youzhengguonei": "邮政快递包裹",
    "youzhengbk": "邮政标准快递",
    "jd": "京东物流",
    "debangwuliu": "德邦物流",
    "debangkuaidi": "德邦快递",
    "huitongkuaidi": "百世快递",
    "jtexpress": "极兔速递",
    "danniao": "丹鸟",
    "zhaijisong": "宅急送",
    "fengwang": "丰网速运",
    "zhongtongkuaiyun": "中通快运",
    "annengwuliu": "安能物流",
    "kuayue": "跨越速运",
    "cainiao": "菜鸟速递",
}


def carrier_name(code: str | None) -> str | None:
    """The carrier's Chinese name for a 快递100 company code; an unknown code as it came."""
    if code is None:
        return None
    return CARRIERS.get(code.strip().lower(), code)


def shipment_id(code: str | None, tracking_number: str) -> str:
    """The stable id of a parcel the store does not know yet."""
    return f"kuaidi100-{(code or 'unknown').lower()}-{tracking_number.upper()}"


def sign(param: str, salt: str) -> str:
    """``MD5(param + salt)``, 32 upper-case hex digits, as 快递100 signs a push."""
    return hashlib.md5((param + salt).encode("utf-8")).hexdigest().upper()


def verify_sign(param: str, signature: str | None, salt: str) -> bool:
    """True when ``signature`` is the push's sign over the exact ``param`` text."""
    if not signature or not salt:
        return False
    return hmac.compare_digest(
        sign(param, salt).encode("ascii"), signature.strip().upper().encode("ascii", "replace")
    )


def parse_param(param: str) -> dict[str, Any]:
    """The push's ``param`` as a JSON object, or ``SourceError``."""
    try:
        value = json.loads(param)
    except json.JSONDecodeError as exc:
        raise SourceError(f"param is not JSON: {exc}") from exc
    return as_dict(value, "param")


def is_same_city(area: str | None, city: str | None) -> bool:
    """Whether a checkpoint's ``areaName`` ("浙江省,杭州市,萧山区") lies in ``city`` ("杭州市")."""
    if not area or not city:
        return False
    wanted = city.strip().removesuffix("市").strip()
    return len(wanted) >= 2 and wanted in area.replace(" ", "")


def _china_time(value: Any) -> datetime | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed.replace(tzinfo=CHINA) if parsed.tzinfo is None else parsed


def _newest(checkpoints: list[dict[str, Any]]) -> tuple[dict[str, Any], datetime] | None:
    dated = [(c, t) for c in checkpoints if (t := _china_time(c.get("ftime") or c.get("time")))]
    return max(dated, key=lambda pair: pair[1]) if dated else None


def map_push(payload: dict[str, Any]) -> list[Event]:
    """The canonical event of one push (empty for a push that says nothing about the parcel)."""
    result = payload.get("lastResult")
    if result is None:
        # "abort"/"shutdown" notices without a track (e.g. 3天查询无记录): nothing to tell.
        return []
    last = as_dict(result, "lastResult")
    tracking = text(last.get("nu"))
    if tracking is None:
        raise SourceError("lastResult.nu (the tracking number) is missing")
    state = text(last.get("state"))
    if state is None:
        raise SourceError("lastResult.state is missing")
    known = STATES.get(state)
    if known is None:
        raise SourceError(f"unknown 快递100 state {state!r}")
    state_name, status = known
    if status is None:
        return []
    code = text(last.get("com"))
    data = last.get("data") or []
    if not isinstance(data, list):
        raise SourceError("lastResult.data is not a list")
    newest = _newest([c for c in data if isinstance(c, dict)])
    if newest is None:
        raise SourceError("no checkpoint with a time (ftime) to date the update")
    checkpoint, scanned = newest
    event_id = f"kuaidi100:{code}:{tracking}:{state}:{scanned.isoformat()}"
    return [
        Event.model_validate(
            {
                "id": event_id[:200],
                "type": EventType.SHIPMENT_UPDATED,
                "occurred_at": scanned,
                "shipment": Shipment(
                    id=shipment_id(code, tracking),
                    carrier=carrier_name(code),
                    tracking_number=tracking,
                    status=status,
                    last_scan_at=scanned,
                ),
                "checkpoint": {
                    "time": scanned.isoformat(),
                    "description": text(checkpoint.get("context")),
                    "area": text(checkpoint.get("areaName")),
                    "state": state,
                    "state_name": state_name,
                    "carrier_code": code,
                    "signed": text(last.get("ischeck")) == "1",
                    # 1001 is 快递100's own "arrived in the delivery city".
                    "in_customer_city": state == "1001",
                },
            }
        )
    ]
