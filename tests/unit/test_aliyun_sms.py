"""Alibaba Cloud SMS: error classes, numbers, pushes (documented shapes, see SOURCES.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.china import fixture

from carebot.channels._aliyun import error_for_code, fit_param, param_problem
from carebot.channels.aliyun_sms import aliyun_number
from carebot.exceptions import SourceError
from carebot.notifications import NotificationStatus
from carebot.sources import aliyun_sms


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", True),
        ("isv.DAY_LIMIT_CONTROL", True),
        ("isv.AMOUNT_NOT_ENOUGH", True),
        ("isp.SYSTEM_ERROR", True),
        ("isv.MOBILE_NUMBER_ILLEGAL", False),
        ("isv.TEMPLATE_MISSING_PARAMETERS", False),
        ("isv.SMS_TEMPLATE_ILLEGAL", False),
        ("isv.SMS_SIGNATURE_ILLEGAL", False),
        ("isv.BLACK_KEY_CONTROL_LIMIT", False),
        ("isv.SOMETHING_NEW", False),
    ],
)
def test_business_error_codes_map_onto_retryable_and_permanent(code: str, retryable: bool) -> None:
    error = error_for_code(code, "…")
    assert error.retryable is retryable
    assert error.code == code
    assert code in str(error)


def test_flow_control_waits_the_configured_time_before_the_retry() -> None:
    assert error_for_code("isv.BUSINESS_LIMIT_CONTROL", "").retry_after == 60.0
    assert error_for_code("isv.BUSINESS_LIMIT_CONTROL", "", throttle_wait=5).retry_after == 5
    assert error_for_code("isv.MOBILE_NUMBER_ILLEGAL", "").retry_after is None


@pytest.mark.parametrize(
    ("e164", "sent"),
    [
        ("+8613800138000", "13800138000"),
        ("+85291234567", "85291234567"),
        ("+14155550123", "14155550123"),
    ],
)
def test_numbers_go_out_as_alibaba_cloud_reads_them(e164: str, sent: str) -> None:
    assert aliyun_number(e164) == sent


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("王芳", None),
        ("", "empty"),
        ("x" * 36, "36 characters"),
        ("https://shop.example/t/1", "link"),
        ("www.shop.cn", "link"),
        ("【小熊】", "【】"),
    ],
)
def test_parameter_values_are_checked_against_alibaba_clouds_variable_rules(
    value: str, problem: str | None
) -> None:
    found = param_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_value_is_cut_to_35_characters_at_send_time() -> None:
    assert fit_param("长" * 50) == "长" * 35
    assert fit_param(" a \n b ") == "a b"


def test_a_receipt_push_settles_the_notification_named_by_out_id() -> None:
    [receipt] = aliyun_sms.parse_receipts(fixture("aliyun_sms_report.json"))
    assert receipt.notification_id == 1
    assert receipt.status == NotificationStatus.DELIVERED
    assert receipt.provider_id == "932702304080415357^0"
    failed = fixture("aliyun_sms_report.json")
    failed[0].update(success=False, err_code="MK:0001", err_msg="空号", out_id="")
    [undelivered] = aliyun_sms.parse_receipts(failed)
    assert undelivered.status == NotificationStatus.UNDELIVERED
    assert undelivered.notification_id is None
    assert undelivered.reason is not None and "MK:0001" in undelivered.reason


def test_a_reply_push_becomes_a_message_from_an_e164_number_keyed_by_sequence_id() -> None:
    [reply] = aliyun_sms.parse_replies(fixture("aliyun_sms_up.json"))
    assert reply.sender == "+8613800138000"
    assert reply.body == "退订"
    event = aliyun_sms.reply_event(reply, received_at=datetime(2026, 11, 21, tzinfo=UTC))
    assert event.id == "aliyun:1234567890"


@pytest.mark.parametrize(
    "payload", [{"x": 1}, [1, 2], "text", [{"phone_number": "13800138000"}], [{"success": "yes"}]]
)
def test_a_push_that_is_not_one_is_a_source_error(payload: object) -> None:
    with pytest.raises(SourceError):
        aliyun_sms.parse_replies(payload)
    with pytest.raises(SourceError):
        aliyun_sms.parse_receipts(payload)
