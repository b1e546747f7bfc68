"""SMS length: how many segments a text takes, in GSM-7 or UCS-2 (3GPP TS 23.038).

A text that fits the GSM 7-bit alphabet takes 160 characters in one message, or 153 per
segment once split (the rest carries the concatenation header); characters of the extension
table (``€``, ``[``, ``{``, …) take two septets. Anything else — Chinese, most emoji — sends the
whole text as UCS-2: 70 code units in one message, 67 per segment.
"""

from __future__ import annotations

import math

__all__ = ["GSM7", "UCS2", "count_segments"]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def _ucs2_units(text: str) -> int:
    # Characters beyond the Basic Multilingual Plane (emoji) are surrogate pairs: two units.
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def count_segments(text: str) -> tuple[str, int]:
    """The encoding (``"GSM-7"`` or ``"UCS-2"``) and the number of segments ``text`` needs."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text):
        septets = sum(2 if ch in _GSM7_EXTENSION else 1 for ch in text)
        single, multi = 160, 153
        units = septets
        encoding = GSM7
    else:
        units = _ucs2_units(text)
        single, multi = 70, 67
        encoding = UCS2
    if units <= single:
        return encoding, 1
    return encoding, math.ceil(units / multi)
