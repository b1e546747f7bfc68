"""SMS through Alibaba Cloud (阿里云短信) ``SendSms``, with the official dysmsapi SDK.

Alibaba Cloud sends approved templates only: each rule names its template CODE and how the
template's variables are filled (``send.aliyun`` in the rule, see docs/rules.md). The message
carries the rule id and its render context; the variables are rendered here, in the same
sandbox as every merchant expression. ``OutId`` is the notification id, so delivery receipts
(SmsReport) name the notification they settle.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525.models import QuerySendDetailsRequest, SendSmsRequest
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from alibabacloud_tea_openapi.exceptions import ThrottlingException as SdkThrottling
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from carebot.channels._aliyun import error_for_code, fit_param
from carebot.channels._provider import http_error, log_accepted
from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError, ConfigError, ExpressionError
from carebot.masking import mask_text
from carebot.rulebook.expressions import render_value
from carebot.rulebook.schema import Rulebook

if TYPE_CHECKING:
    from carebot.settings import AliyunSettings

__all__ = ["AliyunSMS", "aliyun_number"]

logger = logging.getLogger(__name__)

# QuerySendDetails takes one day (China time) per query; an earlier attempt is looked for on
# the day it was planned and the next LOOKUP_DAYS - 1 days (retries end at not_after).
CHINA = ZoneInfo("Asia/Shanghai")
LOOKUP_DAYS = 3
LOOKUP_PAGE = 50


def aliyun_number(e164: str) -> str:
    """The number as ``SendSms`` takes it: 11 digits in mainland China, else country code first.

    Alibaba Cloud reads a bare 11-digit number as a mainland number and an international one
    as its country code and number without ``+`` or ``00``.
    """
    digits = e164.strip().removeprefix("+")
    return digits.removeprefix("86") if digits.startswith("86") and len(digits) == 13 else digits


class AliyunSMS(Channel):
    """Send with ``SendSms``; Alibaba Cloud's answers and errors become ``ChannelError``.

    The SDK blocks, so each call runs in a worker thread, at most ``settings.concurrency`` at
    once. The SDK's own retries are off: the dispatcher retries, with backoff, within the
    message's ``not_after``.
    """

    kind = ChannelKind.SMS
    name = "aliyun"

    def __init__(self, *, settings: AliyunSettings, rules: Callable[[], Rulebook]) -> None:
        if not settings.configured or settings.access_key_secret is None:
            raise ConfigError("aliyun needs access_key_id, access_key_secret and sign_name")
        self._settings = settings
        self._rules = rules
        timeout_ms = int(settings.timeout_seconds * 1000)
        self._client = Client(
            Config(
                access_key_id=settings.access_key_id,
                access_key_secret=settings.access_key_secret.get_secret_value(),
                region_id=settings.region_id,
                endpoint=settings.endpoint,
                protocol=settings.protocol,
                read_timeout=timeout_ms,
                connect_timeout=timeout_ms,
            )
        )
        self._runtime = RuntimeOptions(
            autoretry=False, read_timeout=timeout_ms, connect_timeout=timeout_ms
        )
        self._semaphore = asyncio.Semaphore(settings.concurrency)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        request = self._request(message)
        async with self._semaphore:
            receipt = await asyncio.to_thread(self._send_blocking, request)
        log_accepted(logger, "aliyun", message, receipt, template_code=request.template_code)
        return receipt

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        """The earlier attempt of ``message`` if Alibaba Cloud has it, found by ``OutId``."""
        async with self._semaphore:
            return await asyncio.to_thread(self._find_blocking, message, since)

    def _find_blocking(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        wanted = str(message.notification_id)
        first = since.astimezone(CHINA).date()
        for offset in range(LOOKUP_DAYS):
            request = QuerySendDetailsRequest(
                phone_number=aliyun_number(message.to),
                send_date=(first + timedelta(days=offset)).strftime("%Y%m%d"),
                page_size=LOOKUP_PAGE,
                current_page=1,
            )
            query = self._client.query_send_details_with_options
            body = self._call(partial(query, request, self._runtime)).body
            if body is None or body.code != "OK":
                raise ChannelError(
                    f"aliyun lookup failed: {body.code if body else 'no body'}", retryable=True
                )
            dtos = body.sms_send_detail_dtos
            for detail in (dtos.sms_send_detail_dto if dtos else None) or []:
                if str(detail.out_id) == wanted:
                    return SendReceipt(provider_id=None, status="accepted")
        return None

    def _request(self, message: OutboundMessage) -> SendSmsRequest:
        """The ``SendSms`` request for ``message``; a missing or broken mapping is permanent."""
        rule = self._rules().rule(message.rule_id) if message.rule_id else None
        template = rule.send.aliyun if rule is not None else None
        if template is None:
            raise ChannelError(
                f"rule {message.rule_id!r} has no aliyun template (send.aliyun.code)",
                retryable=False,
                code="no_template",
            )
        params: dict[str, str] = {}
        for name, source in template.params.items():
            try:
                params[name] = fit_param(render_value(source, message.context))
            except ExpressionError as exc:
                raise ChannelError(
                    f"aliyun parameter {name!r}: {exc}", retryable=False, code="bad_parameter"
                ) from exc
        return SendSmsRequest(
            phone_numbers=aliyun_number(message.to),
            sign_name=self._settings.sign_name,
            template_code=template.code,
            template_param=json.dumps(params, ensure_ascii=False) if params else None,
            out_id=str(message.notification_id),
        )

    def _send_blocking(self, request: SendSmsRequest) -> SendReceipt:
        response = self._call(partial(self._client.send_sms_with_options, request, self._runtime))
        body = response.body
        if body is None:
            raise ChannelError("aliyun answered without a body", retryable=True)
        if body.code != "OK":
            raise error_for_code(
                str(body.code),
                mask_text(str(body.message or "")),
                throttle_wait=self._settings.throttle_retry_seconds,
            )
        return SendReceipt(provider_id=body.biz_id, status="accepted")

    @staticmethod
    def _call(request: Callable[[], Any]) -> Any:
        """One SDK call; its exceptions become ``ChannelError``."""
        try:
            return request()
        except SdkThrottling as exc:
            raise ChannelError(
                f"aliyun {exc.code}: {mask_text(str(exc.message))}",
                retryable=True,
                code=str(exc.code),
                retry_after=float(exc.retry_after) if exc.retry_after else None,
            ) from exc
        except (ClientException, ServerException) as exc:
            raise _http_error(exc) from exc
        except TeaException as exc:
            # Connection refused, DNS, TLS, timeouts (the SDK wraps them): the message may be
            # fine, the path is not.
            # Only the cause's type: its text quotes the request URL, with the customer's data.
            cause = getattr(exc, "inner_exception", None) or exc
            raise ChannelError(
                f"aliyun request failed: {type(cause).__name__}", retryable=True
            ) from exc


def _http_error(exc: ClientException | ServerException) -> ChannelError:
    """An HTTP 4xx/5xx from the API gateway (bad credentials, signature, throttling, outage)."""
    code = str(exc.code)
    status = exc.status_code or 0
    description = f"aliyun {code}: {mask_text(str(exc.message))}"
    return http_error(
        description, status=status, code=code, throttled=code.startswith("Throttling")
    )
