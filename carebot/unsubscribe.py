"""Signed email unsubscribe tokens: ``{public_url}/unsubscribe/{token}`` in every email.

A token names the address and carries an HMAC-SHA256 tag over it, so a link works without a
login and cannot be forged for someone else's address. Tokens do not expire: an unsubscribe
link in a year-old email must still work.

The key is a random secret generated once and kept in the database (``carebot_meta``, key
``unsubscribe.secret``), so every process sharing the database signs alike, and rotating the
webhook secret does not break links already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from carebot.store import meta

__all__ = ["SECRET_KEY", "make_token", "read_token", "signing_key"]

SECRET_KEY = "unsubscribe.secret"
# Separates these tags from any other use of the same key.
_PURPOSE = b"carebot email unsubscribe v1\0"
_TAG_BYTES = 16


def signing_key(session: Session) -> bytes:
    """The installation's unsubscribe key, created on first use."""
    return meta.get_or_create(session, SECRET_KEY, lambda: secrets.token_urlsafe(32)).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, address: str) -> bytes:
    return hmac.new(key, _PURPOSE + address.encode(), hashlib.sha256).digest()[:_TAG_BYTES]


def make_token(key: bytes, address: str) -> str:
    """The URL-safe token for ``address`` (case-insensitive: it signs the lower-case form)."""
    address = address.strip().lower()
    return f"{_b64(address.encode())}.{_b64(_tag(key, address))}"


def read_token(key: bytes, token: str) -> str | None:
    """The address ``token`` was made for, or None when it is malformed or forged."""
    payload, dot, tag = token.partition(".")
    if not dot or not payload or not tag:
        return None
    try:
        address = _unb64(payload).decode()
        given = _unb64(tag)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not hmac.compare_digest(given, _tag(key, address)):
        return None
    return address
