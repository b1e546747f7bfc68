"""What the local Twilio double answers with: error codes, message resources, form fields."""

from __future__ import annotations

import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

__all__ = ["DEFAULT_ERRORS", "fields", "format_seconds", "message_resource"]

# Twilio's generic error codes for plain HTTP failures.
DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    400: (20001, "Bad request"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    405: (20004, "Method not allowed"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


def fields(form: str) -> dict[str, str]:
    """A form body or query string as one value per name (the last one given)."""
    parsed = parse_qs(form, keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


def message_resource(account_sid: str, fields: dict[str, str]) -> dict[str, Any]:
    """The JSON Twilio returns for a freshly created message."""
    sid = "SM" + uuid.uuid4().hex
    now = formatdate(time.time(), usegmt=False).replace("-0000", "+0000")
    body = fields.get("Body", "")
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": fields.get("From"),
        "messaging_service_sid": fields.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": str(_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "tags": {},
        "to": fields.get("To"),
        "uri": f"{uri}.json",
    }


def _segments(body: str) -> int:
    """SMS segments as Twilio counts them, with ASCII standing in for the GSM-7 alphabet."""
    if body.isascii():
        single, part, length = 160, 153, len(body)
    else:
        # UCS-2: Twilio counts UTF-16 code units, 70 in one segment, 67 per part of several.
        single, part, length = 70, 67, len(body.encode("utf-16-le")) // 2
    if length <= single:
        return 1
    return -(-length // part)


def format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
