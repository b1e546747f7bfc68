"""Email unsubscribe tokens: ``{public_url}/unsubscribe/{token}`` in every email.

A token is random (128 bits, hex), made once per address and kept in the database
(``unsubscribe_tokens``): a link works without a login, cannot be guessed for someone else's
address, and tells whoever sees the URL (a proxy log, a forwarded mail) nothing about the
address. Tokens do not expire: an unsubscribe link in a year-old email must still work.

Links sent before carebot 0.x carried the address itself with an HMAC-SHA256 tag
(``<base64 address>.<tag>``); those are still honoured (:func:`read_token`), never issued.
Their key is a random secret kept in the database (``carebot_meta``, key
``unsubscribe.secret``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from carebot.store import meta, unsubscribe_tokens

__all__ = [
    "SECRET_KEY",
    "address_of",
    "make_token",
    "read_token",
    "signing_key",
    "token_of",
]

SECRET_KEY = "unsubscribe.secret"
# Separates these tags from any other use of the same key.
_PURPOSE = b"carebot email unsubscribe v1\0"
_TAG_BYTES = 16


def token_of(
    session: Session,
    address: str,
    *,
    now: datetime,
    new_token: Callable[[], str] = unsubscribe_tokens.random_token,
) -> str:
    """The token for ``address``'s links (case-insensitive: one token per lower-case address);
    a new one comes from ``new_token`` (random, except in a replay that must repeat itself)."""
    return unsubscribe_tokens.token_for(
        session, address=address.strip().lower(), now=now, new_token=new_token
    )


def address_of(session: Session, token: str) -> str | None:
    """The address a link's ``token`` stands for, or None when it is unknown or forged."""
    if "." in token:  # a link from before random tokens: the address with its signature
        return read_token(signing_key(session), token)
    if len(token) > 64:
        return None
    return unsubscribe_tokens.address_for(session, token)


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
    """The old, signed token for ``address`` (it reveals the address: for tests of old links)."""
    address = address.strip().lower()
    return f"{_b64(address.encode())}.{_b64(_tag(key, address))}"


def read_token(key: bytes, token: str) -> str | None:
    """The address an old signed ``token`` was made for, or None when malformed or forged."""
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
