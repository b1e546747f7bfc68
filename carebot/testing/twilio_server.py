"""A local Twilio-compatible Messages API, for tests and benchmarks.

It speaks just enough of ``/2010-04-01/Accounts/{sid}/Messages.json`` for the official twilio
client: ``POST`` creates a message, ``GET`` lists the messages it created (newest first,
filtered by ``To`` and ``From``, one page of ``PageSize``); HTTP basic auth, form bodies,
Twilio's JSON success and error shapes. Replies to ``POST`` can be scripted (errors,
``Retry-After``, slowness) and every one is recorded::

    with FakeTwilioServer() as server:
        server.script([Reply(status=429, retry_after=1), Reply(status=500)])
        ...  # point TwilioSettings.base_url at server.base_url and send
        assert server.wait_for(3, timeout=2)
        assert server.requests[-1]["To"] == "+8613800138000"
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from carebot.testing import _twilio_api as api
from carebot.testing._http import LocalHTTPServer, LocalServer

__all__ = ["DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN", "FakeTwilioServer", "Reply"]

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "test-token"

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an HTTP status, a Twilio error, a ``Retry-After``, a delay.

    ``Reply()`` is a normal 201 answer; ``Reply(delay=5)`` is the same after five seconds (a
    slow provider); ``Reply(status=400, code=21211, message="...")`` is a Twilio error.
    """

    status: int = 201
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    # A body that is not Twilio's JSON (a proxy's error page, a truncated answer): sent as is,
    # and no message is created.
    raw_body: str | None = None


class FakeTwilioServer(LocalServer):
    """A threaded HTTP server on 127.0.0.1 that answers like Twilio's Messages API.

    Once the script is used up it answers 201 with a queued message. ``latency`` delays every
    answer; a scripted ``delay`` adds to it. ``stop()`` wakes delayed requests and closes open
    connections, so a hanging provider does not hang the test run.
    """

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        latency: float = 0.0,
    ) -> None:
        super().__init__(_Handler, name="fake-twilio", server_class=_Server)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self._lock = threading.Condition()
        self._requests: list[dict[str, str]] = []
        self._accepted: list[dict[str, str]] = []
        self._messages: list[dict[str, Any]] = []
        self._lookups = 0
        self._script: deque[Reply] = deque()
        # Replies for one recipient, every time (ahead of the script), and an outage: every
        # request, lookups included, answered with this HTTP status.
        self._per_recipient: dict[str, Reply] = {}
        self._down: int | None = None
        # Lookups (GET) refused with this status: an API key without read rights (403).
        self._lookups_refused: int | None = None
        self._in_flight = 0
        self._max_in_flight = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``TwilioSettings.base_url``."""
        host, port = self.address
        return f"http://{host}:{port}"

    # -- scripting and inspection -------------------------------------------------------------

    def script(self, replies: Iterable[Reply]) -> None:
        """Queue replies for the next requests, after any replies still queued."""
        with self._lock:
            self._script.extend(replies)

    def reply_to(self, to: str, reply: Reply) -> None:
        """Answer every request for ``to`` with ``reply`` (a poison message, say)."""
        with self._lock:
            self._per_recipient[to] = reply

    def go_down(self, status: int = 503) -> None:
        """An outage: from now on every request (sends and lookups) is answered ``status``."""
        with self._lock:
            self._down = status

    def refuse_lookups(self, status: int | None = 403) -> None:
        """Answer every lookup (``GET``) with ``status``; None serves them again."""
        with self._lock:
            self._lookups_refused = status

    def recover(self) -> None:
        """The end of the outage begun by ``go_down``."""
        with self._lock:
            self._down = None

    def reset(self) -> None:
        """Forget recorded requests and queued replies."""
        with self._lock:
            self._requests.clear()
            self._accepted.clear()
            self._messages.clear()
            self._lookups = 0
            self._script.clear()
            self._max_in_flight = self._in_flight

    @property
    def requests(self) -> list[dict[str, str]]:
        """A snapshot of every authenticated Messages request so far: its form fields, in order.

        A request is recorded when it arrives, before any scripted delay, whatever the answer.
        """
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def accepted(self) -> list[dict[str, str]]:
        """The requests answered 2xx (a message Twilio would send), in the order answered."""
        with self._lock:
            return [dict(r) for r in self._accepted]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The message resources created for the accepted requests (``sid``, ``to``, ...)."""
        with self._lock:
            return [dict(m) for m in self._messages]

    @property
    def lookups(self) -> int:
        """How many times the messages were listed (``GET``)."""
        with self._lock:
            return self._lookups

    @property
    def max_concurrent(self) -> int:
        """The most requests that were being answered at the same moment."""
        with self._lock:
            return self._max_in_flight

    def wait_for(self, count: int, timeout: float = 5.0, *, accepted: bool = False) -> bool:
        """Block until at least ``count`` requests were received (with ``accepted``: answered
        2xx); False on timeout."""
        seen = self._accepted if accepted else self._requests
        with self._lock:
            return self._lock.wait_for(lambda: len(seen) >= count, timeout=timeout)

    # -- called from handler threads ----------------------------------------------------------

    def _receive(self, fields: dict[str, str]) -> Reply:
        with self._lock:
            self._requests.append(fields)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._lock.notify_all()
            if self._down is not None:
                return Reply(status=self._down)
            if fields.get("To") in self._per_recipient:
                return self._per_recipient[fields["To"]]
            return self._script.popleft() if self._script else Reply()

    def _outage(self, *, lookup: bool = False) -> int | None:
        with self._lock:
            if lookup and self._down is None:
                if self._lookups_refused is not None:
                    self._lookups += 1
                return self._lookups_refused
            return self._down

    def _answered(self, fields: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self._accepted.append(fields)
            resource = api.message_resource(self.account_sid, fields)
            self._messages.append(resource)
            self._lock.notify_all()
            return resource

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """The created messages matching ``query``'s ``To`` and ``From``, newest first."""
        size = min(max(int(query.get("PageSize") or 50), 1), 1000)
        wanted = {"to": query.get("To"), "from": query.get("From")}
        with self._lock:
            self._lookups += 1
            found = [
                m
                for m in reversed(self._messages)
                if all(value is None or m[key] == value for key, value in wanted.items())
            ]
        return found[:size]

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == f"{self.account_sid}:{self.auth_token}"


class _Server(LocalHTTPServer):
    fake: FakeTwilioServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API and the requests pool expect
    # An idle kept-alive connection is closed after this long.
    timeout = 30
    # The answer goes out in two writes (headers, then body): with Nagle's algorithm the body
    # waits for the client's delayed ACK of the headers (40 ms on Linux), so every call would
    # take 40 ms more than ``latency`` says. Real API servers set TCP_NODELAY too.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.fake.register(self.connection, open_=True)

    def finish(self) -> None:
        self.server.fake.register(self.connection, open_=False)
        # The client may have gone first (its timeout fired): there is nothing to flush to.
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a benchmark would otherwise print a line per request."""

    def do_GET(self) -> None:
        fake = self.server.fake
        self._read_body()
        path, _, query = self.path.partition("?")
        if not self._allowed(path):
            return
        down = fake._outage(lookup=True)
        if down is not None:
            self._error(down, *api.DEFAULT_ERRORS.get(down, (down, "Error")))
            return
        try:
            fields = api.fields(query)
            messages = fake._list(fields)
        except ValueError:
            self._error(400, *api.DEFAULT_ERRORS[400])
            return
        uri = f"{path}?{query}" if query else path
        self._json(
            200,
            {
                "messages": messages,
                "end": max(len(messages) - 1, 0),
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": len(messages),
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            },
        )

    def _allowed(self, path: str) -> bool:
        """Whether ``path`` is this account's Messages list and the credentials are right;
        when not, the error is answered."""
        fake = self.server.fake
        match = _MESSAGES_PATH.match(path)
        if match is None:
            self._error(404, *api.DEFAULT_ERRORS[404])
            return False
        if not fake._authorized(self.headers.get("Authorization")) or (
            match["sid"] != fake.account_sid
        ):
            self._error(401, *api.DEFAULT_ERRORS[401])
            return False
        return True

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        if raw is None:
            # A sender killed mid-request: a request never whole is never processed.
            self.close_connection = True
            return
        if not self._allowed(self.path.split("?", 1)[0]):
            return
        fields = api.fields(raw.decode("utf-8"))
        if not fields.get("To"):
            self._error(400, 21604, "A 'To' phone number is required.")
            return
        reply = fake._receive(fields)
        try:
            pause = fake.latency + reply.delay
            if pause > 0 and fake.stopping.wait(pause):
                self.close_connection = True
                return
            if reply.status >= 300:
                default_code, default_message = api.DEFAULT_ERRORS.get(
                    reply.status, (reply.status, "Error")
                )
                headers = {}
                if reply.retry_after is not None:
                    headers["Retry-After"] = api.format_seconds(reply.retry_after)
                self._error(
                    reply.status,
                    reply.code if reply.code is not None else default_code,
                    reply.message if reply.message is not None else default_message,
                    headers,
                )
                return
            if reply.raw_body is not None:
                self._send(reply.status, reply.raw_body.encode("utf-8"), "text/html")
                return
            # Twilio has the message once it answers, whether or not the caller reads the answer.
            self._json(reply.status, fake._answered(fields))
        finally:
            fake._done()

    def _read_body(self) -> bytes | None:
        """The request body; None when the client hung up before sending all of it."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        return raw if len(raw) == length else None

    def _error(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        self._json(status, body, headers)

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json", headers)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client gave up waiting
