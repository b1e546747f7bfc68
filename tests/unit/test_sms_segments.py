"""SMS segment counting: GSM-7 and UCS-2 limits, extension characters, emoji."""

from __future__ import annotations

import pytest

from carebot.segments import GSM7, UCS2, count_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, (GSM7, 1)),
        ("a" * 161, (GSM7, 2)),
        ("a" * 306, (GSM7, 2)),
        ("a" * 307, (GSM7, 3)),
        ("中" * 70, (UCS2, 1)),
        ("中" * 71, (UCS2, 2)),
        ("中" * 134, (UCS2, 2)),
        ("中" * 135, (UCS2, 3)),
    ],
)
def test_single_and_multipart_limits_follow_the_encoding(
    text: str, expected: tuple[str, int]
) -> None:
    assert count_segments(text) == expected


def test_an_extension_character_counts_twice_in_gsm7() -> None:
    assert count_segments("€" * 80) == (GSM7, 1)
    assert count_segments("€" * 80 + "a") == (GSM7, 2)


def test_one_character_outside_gsm7_makes_the_whole_message_ucs2() -> None:
    assert count_segments("a" * 69 + "é") == (GSM7, 1)  # é is in GSM-7
    assert count_segments("a" * 70 + "ê") == (UCS2, 2)  # ê is not


def test_an_emoji_takes_two_ucs2_code_units() -> None:
    assert count_segments("🙂" * 35) == (UCS2, 1)
    assert count_segments("🙂" * 35 + "a") == (UCS2, 2)
