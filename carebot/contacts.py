"""Customer contact facts: E.164 phone numbers, email syntax, and the zone a customer lives in."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

__all__ = [
    "email_problem",
    "normalize_phone",
    "phone_spellings",
    "valid_email",
    "zone_for",
    "zone_of_country",
]

# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is the SMTP
# server's business; this only keeps obvious garbage from being sent at all.
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[A-Za-z]{2,}$")
# What a provider refuses, or its client raises on, whatever the syntax around it: control
# characters (a CR or LF in a header is an injection; aiosmtplib raises ValueError).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def valid_email(address: str | None) -> bool:
    """Whether ``address`` can be sent to: the shape above, printable ASCII only.

    Non-ASCII addresses need the server's SMTPUTF8 extension, which most relays lack
    (aiosmtplib then refuses to send): they are refused here, where the reason is clear.
    """
    if not address or not address.isascii() or _CONTROL.search(address):
        return False
    return _EMAIL.match(address) is not None


def email_problem(address: str | None) -> str | None:
    """Why ``address`` cannot be sent to, or None when it can."""
    if not address:
        return "no email address"
    if _CONTROL.search(address):
        return "the email address contains control characters"
    if not address.isascii():
        return "the email address is not ASCII (SMTPUTF8 is not supported)"
    if _EMAIL.match(address) is None:
        return "the email address is not of the form name@domain.tld"
    return None


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """The E.164 form of ``raw`` if it is a valid number (national numbers need ``region``)."""
    if not raw or _CONTROL.search(raw):
        return None
    # A number written with its country code ignores the region: leaving the region out of
    # the cache key lets the planner, the dispatcher and the zone lookup share one parse.
    international = raw.lstrip().startswith("+")
    return _normalize(raw, None if international else (region or "").upper() or None)


def phone_spellings(raw: str | None, region: str | None) -> list[str]:
    """How a number typed as ``raw`` (``138 0013 8000``, ``+86 138-0013-8000``) may be stored:
    E.164, the national number with and without the trunk prefix, the digits as typed; empty
    when ``raw`` is not a valid number (in ``region`` unless it starts with ``+``)."""
    e164 = normalize_phone(raw, region)
    if e164 is None or raw is None:
        return []
    number = _parse_valid(e164, None)
    assert number is not None  # normalize_phone just parsed it
    national = phonenumbers.national_significant_number(number)
    trunk = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    digits = "".join(c for c in raw if c.isdigit() or c == "+")
    spaced = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    found = [e164, e164.lstrip("+"), national, trunk, "".join(c for c in trunk if c.isdigit())]
    found += [digits, raw.strip(), spaced]
    return list(dict.fromkeys(s for s in found if s))


@lru_cache(maxsize=4096)
def _normalize(raw: str, region: str | None) -> str | None:
    number = _parse_valid(raw, region)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def _parse_valid(raw: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """``raw`` parsed, if it is a valid number. Callers must not change what it returns."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


@lru_cache(maxsize=1024)
def _zone_of_phone(e164: str) -> str | None:
    number = _parse_valid(e164, None)
    if number is None:
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


# zone.tab orders a country's zones geographically first and by population second; where that
# puts a sparsely peopled zone first, name the one most customers live in.
_MOST_POPULOUS = {
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
    "UZ": "Asia/Tashkent",
}


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """ISO 3166 country code → the zone most of its people live in (from tzdata's zone.tab)."""
    try:
        table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is a dependency
        return {}
    zones: dict[str, str] = {}
    for line in table.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            zones.setdefault(fields[0].upper(), fields[2])
    zones.update(_MOST_POPULOUS)
    return zones


def zone_of_country(country: str | None) -> str | None:
    """The zone of an ISO 3166 alpha-2 ``country`` (its most populous one), or None."""
    if not country:
        return None
    return _country_zones().get(country.strip().upper())


def zone_for(
    *, customer_zone: str | None, phone: str | None, default: str, country: str | None = None
) -> str:
    """The customer's own zone, else their phone number's, else their country's, else ``default``.

    ``phone`` is E.164; ``country`` is the shipping address's ISO 3166 alpha-2 code.
    """
    for candidate in (
        customer_zone,
        _zone_of_phone(phone) if phone else None,
        zone_of_country(country),
    ):
        if candidate and _known(candidate):
            return candidate
    return default
