"""Signed unsubscribe tokens: they name one address and cannot be forged or altered."""

from __future__ import annotations

import pytest

from carebot.unsubscribe import make_token, read_token

KEY = b"k" * 32


def test_a_token_reads_back_as_its_address_in_lower_case() -> None:
    assert read_token(KEY, make_token(KEY, "Wang@Example.com")) == "wang@example.com"


def test_a_token_is_url_safe_and_the_same_every_time() -> None:
    token = make_token(KEY, "wang@example.com")
    assert token == make_token(KEY, "wang@example.com")
    assert all(c.isalnum() or c in "-_." for c in token)


def test_a_token_made_with_another_key_is_refused() -> None:
    assert read_token(KEY, make_token(b"x" * 32, "wang@example.com")) is None


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "abc.", ".abc", "!!!.!!!", "d2FuZ0BleGFtcGxlLmNvbQ.AAAAAAAAAAAAAAAAAAAAAA"],
)
def test_malformed_or_unsigned_tokens_are_refused(token: str) -> None:
    assert read_token(KEY, token) is None


def test_swapping_the_address_of_a_token_is_refused() -> None:
    mine = make_token(KEY, "me@example.com")
    theirs = make_token(KEY, "wang@example.com")
    forged = theirs.split(".")[0] + "." + mine.split(".")[1]
    assert read_token(KEY, forged) is None
