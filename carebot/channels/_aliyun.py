"""Alibaba Cloud SMS facts shared by the channel and ``carebot validate``.

Sources (looked up 2026-12):
- Variable values: "单个变量的长度限制为1~35个字符" and "变量内容不能为空" (申请短信模板,
  https://help.aliyun.com/document_detail/44357.html); links must be fixed in the approved
  text, not passed in a variable (通知短信模板规范, 链接规范,
  https://help.aliyun.com/document_detail/463270.htm); 【】 is reserved for the signature.
- Error codes: SendSms API error codes (https://help.aliyun.com/document_detail/101346.html,
  "API错误码"); ``Code`` is ``OK`` on success, otherwise one of them, with HTTP 200.
"""

from __future__ import annotations

import re

from carebot.exceptions import ChannelError

__all__ = [
    "MAX_PARAM_LENGTH",
    "RETRYABLE_CODES",
    "error_for_code",
    "fit_param",
    "param_problem",
]

MAX_PARAM_LENGTH = 35

_LINK = re.compile(r"(?i)(?:https?://|www\.|\b[a-z0-9-]+\.(?:com|cn|net|org|top|cc|io|me)\b)")

# Codes that say "not now" rather than "not this message", with a default wait in seconds
# (None: the dispatcher's backoff alone).
RETRYABLE_CODES: dict[str, float | None] = {
    # Per-number flow control (default 1/minute, 5/hour, 10/day for one number).
    "isv.BUSINESS_LIMIT_CONTROL": 60.0,
    # The account's daily volume threshold set in the console.
    "isv.DAY_LIMIT_CONTROL": 3600.0,
    # Balance or package exhausted: the operator tops up, the message is still good.
    "isv.AMOUNT_NOT_ENOUGH": 600.0,
    "isv.OUT_OF_SERVICE": 600.0,
    # Alibaba Cloud's own trouble.
    "isp.SYSTEM_ERROR": None,
    "isp.GATEWAY_ERROR": None,
    "ServiceUnavailable": None,
}

_MEANINGS = {
    "isv.BUSINESS_LIMIT_CONTROL": "flow control for this number (业务限流)",
    "isv.DAY_LIMIT_CONTROL": "the account's daily limit was reached (日发送限额)",
    "isv.AMOUNT_NOT_ENOUGH": "the account balance is too low (余额不足)",
    "isv.OUT_OF_SERVICE": "the account is suspended, usually for balance (业务停机)",
    "isp.SYSTEM_ERROR": "Alibaba Cloud system error",
    "isv.MOBILE_NUMBER_ILLEGAL": "not a valid mobile number (非法手机号)",
    "isv.MOBILE_COUNT_OVER_LIMIT": "too many numbers in one request",
    "isv.TEMPLATE_MISSING_PARAMETERS": "the template needs a variable that was not given",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "a variable's value breaks the variable rules",
    "isv.INVALID_JSON_PARAM": "TemplateParam is not valid JSON",
    "isv.PARAM_LENGTH_LIMIT": "a variable is longer than allowed",
    "isv.PARAM_NOT_SUPPORT_URL": "a variable carries a link",
    "isv.SMS_TEMPLATE_ILLEGAL": "the template CODE is not approved or does not exist",
    "isv.SMS_SIGNATURE_ILLEGAL": "the signature is not approved or does not exist",
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": "the signature's use does not fit this template",
    "isv.BLACK_KEY_CONTROL_LIMIT": "the number or content is blacklisted (黑名单管控)",
    "isv.SMS_CONTENT_ILLEGAL": "the content is not allowed",
    "isv.DENY_IP_RANGE": "the sending IP's region is refused",
    "isp.RAM_PERMISSION_DENY": "the AccessKey lacks SMS permission",
}


def error_for_code(code: str, message: str, *, throttle_wait: float | None = None) -> ChannelError:
    """The ``ChannelError`` for a ``SendSms`` answer whose ``Code`` is not ``OK``.

    ``throttle_wait`` replaces the default wait after per-number flow control.
    """
    meaning = _MEANINGS.get(code)
    text = f"aliyun {code}: {message}" + (f" ({meaning})" if meaning else "")
    if code in RETRYABLE_CODES:
        wait = RETRYABLE_CODES[code]
        if code == "isv.BUSINESS_LIMIT_CONTROL" and throttle_wait is not None:
            wait = throttle_wait
        return ChannelError(text, retryable=True, code=code, retry_after=wait)
    return ChannelError(text, retryable=False, code=code)


def fit_param(value: str) -> str:
    """A rendered value cut to what Alibaba Cloud accepts (a longer one fails the message)."""
    value = " ".join(value.split())
    return value[:MAX_PARAM_LENGTH]


def param_problem(value: str) -> str | None:
    """Why Alibaba Cloud would refuse ``value`` as a template variable, or None."""
    value = " ".join(value.split())
    if not value:
        return "renders empty (Alibaba Cloud refuses an empty variable)"
    if len(value) > MAX_PARAM_LENGTH:
        return f"is {len(value)} characters; Alibaba Cloud allows {MAX_PARAM_LENGTH}"
    if _LINK.search(value):
        return "carries a link; put links in the approved template text, not in a variable"
    if "【" in value or "】" in value:
        return "contains 【】, which Alibaba Cloud reserves for the signature"
    return None
