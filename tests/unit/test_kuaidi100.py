"""快递100 pushes, from the documented format (tests/fixtures/china/SOURCES.md)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from support.china import fixture, kuaidi100_push

from carebot.events import EventType, ShipmentStatus
from carebot.exceptions import SourceError
from carebot.sources import kuaidi100

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_sign_is_the_upper_case_md5_of_param_and_salt() -> None:
    assert kuaidi100.sign("abc", "xyz") == hashlib.md5(b"abcxyz").hexdigest().upper()
    assert kuaidi100.verify_sign("abc", hashlib.md5(b"abcxyz").hexdigest().lower(), "xyz")
    assert not kuaidi100.verify_sign("abd", kuaidi100.sign("abc", "xyz"), "xyz")
    assert not kuaidi100.verify_sign("abc", kuaidi100.sign("abc", "xyz"), "other")
    assert not kuaidi100.verify_sign("abc", None, "xyz")
    assert not kuaidi100.verify_sign("abc", kuaidi100.sign("abc", ""), "")


def test_the_documented_in_transit_push_becomes_one_shipment_update_in_china_time() -> None:
    [event] = kuaidi100.map_push(fixture("kuaidi100_push_intransit.json"))
    assert event.type == EventType.SHIPMENT_UPDATED
    assert event.shipment is not None
    assert event.shipment.status == ShipmentStatus.IN_TRANSIT
    assert event.shipment.tracking_number == "SF1234567890"
    assert event.shipment.carrier == "顺丰速运"
    assert event.shipment.id == "kuaidi100-shunfeng-SF1234567890"
    # The newest checkpoint dates it; 快递100's times are China time.
    assert event.occurred_at == datetime(2026, 11, 21, 7, 40, tzinfo=SHANGHAI)
    checkpoint = (event.model_extra or {})["checkpoint"]
    assert checkpoint["area"] == "浙江,杭州市,萧山区"
    assert checkpoint["state_name"] == "在途"
    assert checkpoint["in_customer_city"] is False  # decided by the route, from the order


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("1", ShipmentStatus.IN_TRANSIT),  # 揽收
        ("0", ShipmentStatus.IN_TRANSIT),  # 在途
        ("5", ShipmentStatus.OUT_FOR_DELIVERY),  # 派件
        ("501", ShipmentStatus.AVAILABLE_FOR_PICKUP),  # 投柜或驿站
        ("3", ShipmentStatus.DELIVERED),  # 签收
        ("304", ShipmentStatus.DELIVERED),  # 投柜或站签收
        ("2", ShipmentStatus.EXCEPTION),  # 疑难
        ("204", ShipmentStatus.FAILED_ATTEMPT),  # 派件异常
        ("4", ShipmentStatus.EXCEPTION),  # 退签
        ("6", ShipmentStatus.EXCEPTION),  # 退回
        ("14", ShipmentStatus.EXCEPTION),  # 拒签
        ("7", ShipmentStatus.IN_TRANSIT),  # 转投
        ("8", ShipmentStatus.IN_TRANSIT),  # 清关
        ("13", ShipmentStatus.EXCEPTION),  # 清关异常
    ],
)
def test_each_documented_state_maps_to_a_shipment_status(
    state: str, status: ShipmentStatus
) -> None:
    push = kuaidi100_push(state, ftime="2026-11-22 09:00:00", context="…")
    [event] = kuaidi100.map_push(push)
    assert event.shipment is not None and event.shipment.status == status


def test_arrival_in_the_delivery_city_1001_marks_the_checkpoint_in_the_customer_city() -> None:
    push = kuaidi100_push("1001", ftime="2026-11-21 08:00:00", context="到达杭州")
    [event] = kuaidi100.map_push(push)
    assert (event.model_extra or {})["checkpoint"]["in_customer_city"] is True


def test_the_same_track_twice_is_the_same_event_and_a_new_state_a_new_one() -> None:
    first = kuaidi100.map_push(fixture("kuaidi100_push_intransit.json"))[0]
    again = kuaidi100.map_push(fixture("kuaidi100_push_intransit.json"))[0]
    out = kuaidi100.map_push(kuaidi100_push("5", ftime="2026-11-21 09:00:00", context="派件"))[0]
    assert first.id == again.id
    assert out.id != first.id


def test_pushes_without_a_parcel_event_are_ignored() -> None:
    assert kuaidi100.map_push(fixture("kuaidi100_push_abort.json")) == []
    ordered = kuaidi100_push("101", ftime="2026-11-20 10:00:00", context="已下单")
    assert kuaidi100.map_push(ordered) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"state": "99"}, "unknown 快递100 state"),
        ({"state": None}, "state is missing"),
        ({"nu": None}, "nu"),
        ({"data": []}, "no checkpoint"),
        ({"data": "x"}, "not a list"),
    ],
)
def test_a_broken_push_is_a_source_error_naming_the_problem(
    change: dict[str, object], reason: str
) -> None:
    push = fixture("kuaidi100_push_intransit.json")
    push["lastResult"].update(change)
    with pytest.raises(SourceError, match=reason):
        kuaidi100.map_push(push)


def test_param_that_is_not_a_json_object_is_refused() -> None:
    with pytest.raises(SourceError):
        kuaidi100.parse_param("{not json")
    with pytest.raises(SourceError):
        kuaidi100.parse_param("[1, 2]")


def test_carrier_codes_are_shown_by_their_chinese_names() -> None:
    assert kuaidi100.carrier_name("yuantong") == "圆通速递"
    assert kuaidi100.carrier_name("jtexpress") == "极兔速递"
    assert kuaidi100.carrier_name("newcarrier") == "newcarrier"


@pytest.mark.parametrize(
    ("area", "city", "same"),
    [
        ("浙江,杭州市,萧山区", "杭州市", True),
        ("浙江省杭州市", "杭州", True),
        ("广东,深圳市", "杭州市", False),
        (None, "杭州市", False),
        ("浙江,杭州市", None, False),
        ("浙江,杭州市", "市", False),
    ],
)
def test_a_checkpoint_is_in_the_customer_city_when_its_area_names_it(
    area: str | None, city: str | None, same: bool
) -> None:
    assert kuaidi100.is_same_city(area, city) is same
