from __future__ import annotations

import pytest

from carebot.masking import mask_email, mask_phone, mask_recipient, mask_text


def test_a_chinese_mobile_number_keeps_its_prefix_and_last_four_digits() -> None:
    assert mask_phone("+8613800138000") == "+86138****8000"


def test_a_shorter_number_hides_at_least_four_characters() -> None:
    masked = mask_phone("+14155552345")
    assert masked == "+141****2345"
    assert masked.count("*") >= 4


@pytest.mark.parametrize("number", ["12345", "1234567", "12", ""])
def test_a_very_short_number_shows_at_most_two_characters(number: str) -> None:
    masked = mask_phone(number)
    assert len(masked) == len(number)
    assert len(masked.replace("*", "")) <= 2


def test_an_email_address_keeps_the_first_letter_and_the_domain() -> None:
    assert mask_email("wang@example.com") == "w***@example.com"


def test_an_email_address_does_not_reveal_the_length_of_its_local_part() -> None:
    assert mask_email("a@example.com") == mask_email("abcdefgh@example.com") == "a***@example.com"


def test_a_recipient_is_masked_as_email_when_it_has_an_at_sign_and_as_phone_otherwise() -> None:
    assert mask_recipient("wang@example.com") == "w***@example.com"
    assert mask_recipient("+8613800138000") == "+86138****8000"


def test_free_text_has_every_number_and_address_masked() -> None:
    text = "The 'To' number 5551234567 is not valid; copy sent to wang@example.com."
    masked = mask_text(text)
    assert "5551234567" not in masked
    assert "wang@example.com" not in masked
    assert masked == "The 'To' number 55****4567 is not valid; copy sent to w***@example.com."


def test_free_text_keeps_short_numbers_such_as_error_codes() -> None:
    assert mask_text("twilio 21211 (HTTP 400)") == "twilio 21211 (HTTP 400)"
