"""Hostile clients against the running daemon, over real sockets: stalled and oversized uploads.

Before any login, ``/dashboard/login`` parses a form; a client may start a huge or endless
upload there and stall. The daemon must cut a stalled body off within the read timeout, refuse
an oversized one without buffering it, and keep serving everyone else meanwhile.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

READ_TIMEOUT = 1.0
MAX_BODY = 65_536
BOUNDARY = "carebotboundary"


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _response(sock: socket.socket, timeout: float) -> tuple[bytes, float, bool]:
    """Everything the server sends until it closes (or ``timeout``); when it closed; closed?"""
    sock.settimeout(timeout)
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(65_536):
            received += chunk
    except TimeoutError:
        return received, time.monotonic() - started, False
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started, True


def _multipart_head(url: str, content_length: int | None) -> bytes:
    length = (
        f"Content-Length: {content_length}\r\n"
        if content_length is not None
        else "Transfer-Encoding: chunked\r\n"
    )
    return (
        f"POST /dashboard/login HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{length}\r\n"
    ).encode()


def _part_head(name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()


def _daemon(daemon_factory: Any) -> Any:
    daemon = daemon_factory(
        CAREBOT_ADMIN_TOKEN="admin-secret",
        CAREBOT_HTTP__READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
        CAREBOT_HTTP__MAX_BODY_BYTES=str(MAX_BODY),
    )
    daemon.start(timeout=60)
    return daemon


def test_a_stalled_multipart_upload_is_cut_off_within_the_read_timeout(
    daemon_factory: Any,
) -> None:
    daemon = _daemon(daemon_factory)
    stalled = []
    for _ in range(20):
        sock = _connect(daemon.url)
        sock.sendall(_multipart_head(daemon.url, MAX_BODY // 2) + _part_head("token") + b"x" * 100)
        stalled.append(sock)
    # Others are served while the uploads stall.
    assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
    for sock in stalled:
        answer, waited, closed = _response(sock, timeout=READ_TIMEOUT + 5)
        sock.close()
        assert closed, "the server kept a stalled upload open"
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert waited < READ_TIMEOUT + 4
    assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200


def test_a_huge_declared_part_is_refused_before_it_is_read(daemon_factory: Any) -> None:
    daemon = _daemon(daemon_factory)
    sock = _connect(daemon.url)
    # 52 MB announced, a few bytes sent: refused at once, nothing spooled.
    sock.sendall(_multipart_head(daemon.url, 52_000_000) + _part_head("token") + b"x" * 1000)
    answer, waited, closed = _response(sock, timeout=5)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert closed and waited < READ_TIMEOUT


def test_a_huge_streamed_part_is_refused_once_it_passes_the_body_limit(
    daemon_factory: Any,
) -> None:
    daemon = _daemon(daemon_factory)
    sock = _connect(daemon.url)
    sock.sendall(_multipart_head(daemon.url, None))
    chunk = b"y" * 16_384
    sent = 0
    answer = b""
    try:
        body = _part_head("token", filename="big.bin")
        sock.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        while sent < 10 * MAX_BODY:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer, _, _ = _response(sock, timeout=5)
    sock.close()
    assert answer.startswith((b"HTTP/1.1 413", b"HTTP/1.1 400")), answer[:200]
    assert daemon.proc.poll() is None


def test_a_file_part_or_an_oversized_field_in_the_login_form_is_refused(
    daemon_factory: Any,
) -> None:
    daemon = _daemon(daemon_factory)
    url = f"{daemon.url}/dashboard/login"
    file_part = httpx.post(url, files={"token": ("a.txt", b"admin-secret")}, timeout=5)
    assert file_part.status_code == 400, file_part.text
    big_field = httpx.post(url, files={"token": (None, "x" * 20_000)}, timeout=5)
    assert big_field.status_code == 400, big_field.text
    many = httpx.post(url, data={f"f{i}": "1" for i in range(50)}, timeout=5)
    assert many.status_code == 400, many.text
    assert httpx.post(url, data={"token": "admin-secret"}, timeout=5).status_code == 303


def test_idle_keep_alive_connections_are_closed(daemon_factory: Any) -> None:
    daemon = daemon_factory(CAREBOT_HTTP__KEEP_ALIVE_SECONDS="1")
    daemon.start(timeout=60)
    sock = _connect(daemon.url)
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {daemon.url[7:]}\r\n\r\n".encode())
    answer, waited, closed = _response(sock, timeout=6)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert closed and waited < 4
