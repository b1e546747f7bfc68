"""SMS segment counting: GSM-7 (160/153, extension characters count twice) vs UCS-2 (70/67)."""

from __future__ import annotations

import pytest

from carebot.segments import GSM7, UCS2, count_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", (GSM7, 1), id="empty-is-one-gsm-segment"),
        pytest.param("a" * 160, (GSM7, 1), id="160-gsm-chars-fit-one"),
        pytest.param("a" * 161, (GSM7, 2), id="161-gsm-chars-split-in-two"),
        pytest.param("a" * 306, (GSM7, 2), id="two-segments-hold-2x153"),
        pytest.param("a" * 307, (GSM7, 3), id="307-gsm-chars-need-three"),
        pytest.param("€" * 80, (GSM7, 1), id="80-euro-signs-are-160-septets"),
        pytest.param("€" * 80 + "a", (GSM7, 2), id="extension-chars-count-twice"),
        pytest.param("Müller, Peña: à é è ù ì ò Ä Ö Ü ß", (GSM7, 1), id="gsm-accents"),
        pytest.param("naïve", (UCS2, 1), id="i-diaeresis-is-not-gsm"),
        pytest.param("中" * 70, (UCS2, 1), id="70-chinese-chars-fit-one"),
        pytest.param("中" * 71, (UCS2, 2), id="71-chinese-chars-split-in-two"),
        pytest.param("中" * 134, (UCS2, 2), id="two-ucs2-segments-hold-2x67"),
        pytest.param("中" * 135, (UCS2, 3), id="135-chinese-chars-need-three"),
        pytest.param("a" * 100 + "中", (UCS2, 2), id="one-chinese-char-makes-it-all-ucs2"),
        pytest.param("🙂" * 35, (UCS2, 1), id="emoji-are-two-ucs2-units"),
        pytest.param("🙂" * 36, (UCS2, 2), id="36-emoji-are-72-units"),
    ],
)
def test_count_segments(text: str, expected: tuple[str, int]) -> None:
    assert count_segments(text) == expected


def test_the_sample_chinese_shipped_sms_is_one_ucs2_segment() -> None:
    text = "【测试小店】王芳您好，您的订单1001已由SF Express发出，运单号SF1234567890。"
    assert count_segments(text) == (UCS2, 1)
