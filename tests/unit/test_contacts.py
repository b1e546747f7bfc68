"""Contact facts: E.164 numbers, email syntax, and which zone a customer lives in."""

from __future__ import annotations

import pytest

from carebot.contacts import (
    email_problem,
    normalize_phone,
    valid_email,
    zone_for,
    zone_of_country,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+86 138 0013 8000", None, "+8613800138000"),
        ("13800138000", "CN", "+8613800138000"),
        ("(213) 555-0123", "us", "+12135550123"),
        ("13800138000", None, None),  # national without a region: unknown country
        ("12345", "CN", None),
        ("not a number", "US", None),
        (None, "CN", None),
        ("+8613800138000\x00", None, None),  # a control character: refused, not cleaned up
        ("+86138\x1b00138000", None, None),
    ],
)
def test_normalize_phone(raw: str | None, region: str | None, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("wang@example.com", True),
        ("jon.doe+care@mail.example.co.uk", True),
        ("wang@example", False),
        ("wang example.com", False),
        ("<wang@example.com>", False),
        ("wang\x7f@example.com", False),  # control characters the SMTP client raises on
        ("wang@exam\x0bple.com", False),
        ("wang\u0085@example.com", False),
        ("王芳@example.com", False),  # needs SMTPUTF8, which aiosmtplib cannot assume
        ("wang@例子.com", False),
        ("", False),
        (None, False),
    ],
)
def test_valid_email(address: str | None, valid: bool) -> None:
    assert valid_email(address) is valid
    assert (email_problem(address) is None) is valid


def test_email_problem_says_why_an_address_is_refused() -> None:
    assert email_problem("wang\x07@example.com") == (
        "the email address contains control characters"
    )
    assert email_problem("王芳@example.com") == (
        "the email address is not ASCII (SMTPUTF8 is not supported)"
    )


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("CN", "Asia/Shanghai"),
        ("cn", "Asia/Shanghai"),
        ("JP", "Asia/Tokyo"),
        ("DE", "Europe/Berlin"),
        ("US", "America/New_York"),
        ("AU", "Australia/Sydney"),
        ("BR", "America/Sao_Paulo"),
        ("RU", "Europe/Moscow"),
        ("XX", None),
        ("", None),
        (None, None),
    ],
)
def test_zone_of_country_is_its_single_or_most_populous_zone(
    country: str | None, zone: str | None
) -> None:
    assert zone_of_country(country) == zone


@pytest.mark.parametrize(
    ("customer_zone", "phone", "country", "expected"),
    [
        pytest.param("Europe/Paris", "+8613800138000", "US", "Europe/Paris", id="record-first"),
        pytest.param(None, "+8613800138000", "US", "Asia/Shanghai", id="then-phone-+86"),
        pytest.param(None, "+12135550123", None, "America/Los_Angeles", id="then-phone-+1-213"),
        pytest.param("Mars/Olympus", None, "JP", "Asia/Tokyo", id="unknown-zone-then-country"),
        pytest.param(None, None, "DE", "Europe/Berlin", id="then-address-country"),
        pytest.param(None, None, None, "Asia/Singapore", id="else-the-default"),
        pytest.param(None, None, "XX", "Asia/Singapore", id="unknown-country-the-default"),
    ],
)
def test_zone_for_tries_record_then_phone_then_country_then_default(
    customer_zone: str | None, phone: str | None, country: str | None, expected: str
) -> None:
    assert (
        zone_for(
            customer_zone=customer_zone, phone=phone, country=country, default="Asia/Singapore"
        )
        == expected
    )
