"""Masking of phone numbers and email addresses, so that logs and consoles never show them whole."""

from __future__ import annotations

import re

__all__ = ["mask_email", "mask_phone", "mask_recipient", "mask_text"]

# A run of 7 or more digits, optionally after "+": long enough to be a phone number, short
# enough to catch local formats that providers echo back (Twilio: "The 'To' number 5551234567").
_PHONE_RE = re.compile(r"\+?\d{7,}")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def mask_phone(phone: str) -> str:
    """Hide the middle of a phone number: ``+8613800138000`` → ``+86138****8000``.

    The last four characters stay (what a customer recognises), and so does the start, up to
    six characters (country and network prefix), but never so much that fewer than four
    characters are hidden.
    """
    value = phone.strip()
    if len(value) < 8:
        # Too short to keep four at the end and still hide four: keep the last two only.
        keep = min(2, max(len(value) - 2, 0))
        return "*" * (len(value) - keep) + value[len(value) - keep :]
    head = min(6, len(value) - 8)
    return value[:head] + "*" * (len(value) - head - 4) + value[-4:]


def mask_email(address: str) -> str:
    """Hide the local part but its first character: ``wang@example.com`` → ``w***@example.com``."""
    value = address.strip()
    local, at, domain = value.rpartition("@")
    if not at:
        local, domain = value, ""
    shown = local[:1]
    return f"{shown}***{at}{domain}"


def mask_recipient(recipient: str) -> str:
    """Mask an email address (anything with ``@``) or a phone number."""
    if "@" in recipient:
        return mask_email(recipient)
    return mask_phone(recipient)


def mask_text(text: str) -> str:
    """Mask every email address and phone-number-like digit run inside free text.

    For provider error messages, which often quote the recipient back.
    """
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)
