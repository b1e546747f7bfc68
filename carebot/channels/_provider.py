"""What the SMS provider channels share: the refusal an HTTP status means, the accepted log."""

from __future__ import annotations

import logging

from carebot.channels.base import OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError
from carebot.masking import mask_phone

__all__ = ["http_error", "log_accepted"]


def http_error(
    description: str,
    *,
    status: int,
    code: str,
    throttled: bool = False,
    retry_after: float | None = None,
    maybe_accepted: bool = False,
) -> ChannelError:
    """A provider's HTTP refusal: 429, 5xx or ``throttled`` may pass later, the rest never."""
    if throttled or status == 429 or status >= 500:
        return ChannelError(
            description,
            retryable=True,
            code=code,
            retry_after=retry_after,
            maybe_accepted=maybe_accepted,
        )
    return ChannelError(description, retryable=False, code=code)


def log_accepted(
    logger: logging.Logger,
    provider: str,
    message: OutboundMessage,
    receipt: SendReceipt,
    **extra: object,
) -> None:
    """The one log line of an SMS the provider took (the number masked)."""
    logger.info(
        f"sms accepted by {provider}",
        extra={
            "action": "sms_accepted",
            "notification_id": message.notification_id,
            "to": mask_phone(message.to),
            "provider_id": receipt.provider_id,
            **extra,
        },
    )
