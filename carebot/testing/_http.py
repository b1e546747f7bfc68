"""The serving loop the local provider doubles share: a threaded HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["LocalHTTPServer", "LocalServer"]


class LocalHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` whose handlers reach their double as ``self.server.fake``."""

    daemon_threads = True
    # socketserver's default backlog is 5: a client opening dozens of connections at once
    # (a connection pool filling at the start of a burst) would see SYNs dropped and retried
    # a second later, a stall no real provider has.
    request_queue_size = 128
    fake: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (its timeout fired) is part of the scenarios, not a failure.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class LocalServer:
    """Serves ``handler`` on a free port of 127.0.0.1 in a background thread.

    ``stop()`` sets ``stopping`` (so delayed answers wake up) and closes the connections the
    handlers registered with ``register``, so a hanging provider does not hang the test run.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        server_class: type[LocalHTTPServer] = LocalHTTPServer,
    ) -> None:
        self._handler = handler
        self._name = name
        self._server_class = server_class
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._httpd: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind a free port and serve in a background thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self.stopping.clear()
        httpd = self._server_class(("127.0.0.1", 0), self._handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still being delayed are dropped without an answer."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # Kept-alive client connections would otherwise keep being served after stop.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The host and port being served."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def register(self, conn: socket.socket, *, open_: bool) -> None:
        """Track a handler's connection while it is open (called from handler threads)."""
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
