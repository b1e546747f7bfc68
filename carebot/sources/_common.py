"""Small helpers shared by the platform mappers (no platform field names here)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from carebot.events import LineItem
from carebot.exceptions import SourceError

__all__ = ["as_dict", "header", "id_text", "obj", "parse_time", "text"]


def as_dict(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, or ``SourceError`` naming ``what``."""
    if not isinstance(value, dict):
        raise SourceError(f"{what} is not a JSON object")
    return value


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (an optional part, absent or odd)."""
    return value if isinstance(value, dict) else {}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value, whatever the case of its name (HTTP/2 lowercases them)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip() or None
    return None


def text(value: Any) -> str | None:
    """A non-empty string, or None."""
    if value is None or isinstance(value, bool):
        return None
    result = str(value).strip()
    return result or None


def decimal(value: Any) -> Decimal | None:
    """A money amount as the platform sent it ("19.99", 19.99), or None when it is not one."""
    raw = text(value)
    if raw is None:
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


def line_items(data: Any, *title_fields: str) -> list[LineItem] | None:
    """A platform's order lines: ``sku``, ``quantity``, ``price`` and the first title field set.

    A quantity that is not a non-negative integer counts as one; a line that is not an object
    is skipped; None when there is no list at all.
    """
    if not isinstance(data, list):
        return None
    items = []
    for line in data:
        if not isinstance(line, dict):
            continue
        quantity = line.get("quantity")
        items.append(
            LineItem(
                sku=text(line.get("sku")),
                title=next((t for f in title_fields if (t := text(line.get(f)))), None),
                quantity=quantity if isinstance(quantity, int) and quantity >= 0 else 1,
                unit_price=decimal(line.get("price")),
            )
        )
    return items


def id_text(value: Any, what: str) -> str:
    """A platform id as a string (big integers stay exact), or ``SourceError``."""
    result = text(value)
    if result is None:
        raise SourceError(f"{what} is missing")
    return result


def parse_time(
    value: Any, *, naive_as_utc: bool = True, naive_zone: tzinfo | None = None
) -> datetime | None:
    """An ISO 8601 time; a time without offset is read in ``naive_zone`` when given, else as
    UTC when ``naive_as_utc``, else not at all."""
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if naive_zone is not None:
            return parsed.replace(tzinfo=naive_zone)
        if not naive_as_utc:
            return None
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
