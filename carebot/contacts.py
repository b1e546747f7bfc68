"""Customer contact facts: E.164 phone numbers, email syntax, and the zone a customer lives in."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

__all__ = ["normalize_phone", "valid_email", "zone_for"]

# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is the SMTP
# server's business; this only keeps obvious garbage from being sent at all.
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[A-Za-z]{2,}$")


def valid_email(address: str | None) -> bool:
    return bool(address) and _EMAIL.match(address or "") is not None


@lru_cache(maxsize=4096)
def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """The E.164 form of ``raw`` if it is a valid number (national numbers need ``region``)."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1024)
def _zone_of_phone(e164: str) -> str | None:
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(number) if z != "Etc/Unknown"]
    return zones[0] if zones else None


def _known(zone: str | None) -> bool:
    if not zone:
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone_for(*, customer_zone: str | None, phone: str | None, default: str) -> str:
    """The customer's own zone, else the one their phone number implies, else ``default``."""
    if _known(customer_zone):
        return customer_zone  # type: ignore[return-value]
    if phone:
        from_phone = _zone_of_phone(phone)
        if _known(from_phone):
            return from_phone  # type: ignore[return-value]
    return default
