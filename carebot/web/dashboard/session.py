"""Signed session cookies and session-bound CSRF tokens for the dashboard.

A session is ``<issued unix seconds>.<generation>.<random id>.<HMAC>``; the key is derived from
the admin token, so changing the token logs every browser out. The generation is kept in the
database (``carebot_meta``, key ``dashboard.session_generation``) and changed by a logout, so a
cookie stops working on the server the moment its user logs out, in every process (and so does
every other browser's: they share the one admin token). The CSRF token of a session is an HMAC of
its random id under a second derived key: forms carry it, and a POST whose token does not match
its session cookie is refused. Everything is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

__all__ = ["COOKIE", "GENERATION_KEY", "SessionSigner"]

COOKIE = "carebot_session"
GENERATION_KEY = "dashboard.session_generation"


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens."""

    def __init__(self, admin_token: str, *, lifetime: timedelta = timedelta(hours=12)) -> None:
        secret = admin_token.encode()
        self._session_key = hmac.new(secret, b"carebot dashboard session", "sha256").digest()
        self._csrf_key = hmac.new(secret, b"carebot dashboard csrf", "sha256").digest()
        self.lifetime = lifetime

    def issue(self, now: datetime, generation: str) -> str:
        """A fresh signed session value, valid while the session generation is ``generation``."""
        body = f"{int(now.timestamp())}.{generation}.{secrets.token_urlsafe(16)}"
        return f"{body}.{_mac(self._session_key, body)}"

    def session_id(self, value: str | None, now: datetime, generation: str) -> str | None:
        """The session's random id when ``value`` is authentic, of the current ``generation``
        and not expired, else None."""
        if not value or value.count(".") != 3:
            return None
        issued, issued_generation, ident, mac = value.split(".")
        expected = _mac(self._session_key, f"{issued}.{issued_generation}.{ident}")
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        if not hmac.compare_digest(issued_generation.encode(), generation.encode()):
            return None
        try:
            age = now.timestamp() - int(issued)
        except ValueError:
            return None
        if age < -60 or age > self.lifetime.total_seconds():
            return None
        return ident

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token that action forms of this session carry."""
        return _mac(self._csrf_key, session_id)

    def csrf_ok(self, session_id: str, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token."""
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session_id).encode())
