"""The ``carebot`` command as a subprocess: a webhook in, a message out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from carebot.testing.twilio_server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilioServer,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def rules_without_max_event_age(tmp_path: Path) -> Path:
    """A copy of the sample rules in ``tmp_path/rules`` without their ``max_event_age`` lines.

    Vendors' sample payloads are dated years ago: the sample rules would rightly call them stale.
    """
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    for path in rules.glob("*.yaml"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not line.lstrip().startswith("max_event_age:")]
        path.write_text("".join(kept), encoding="utf-8")
    return rules


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def twilio_env(twilio: FakeTwilioServer, **overrides: str) -> dict[str, str]:
    """The daemon's settings for the fake Twilio server, plus ``overrides``."""
    return {
        "CAREBOT_TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "CAREBOT_TWILIO__AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "CAREBOT_TWILIO__FROM_NUMBER": "+15005550006",
        "CAREBOT_TWILIO__BASE_URL": twilio.base_url,
        **overrides,
    }


def smtp_env(smtp: Any) -> dict[str, str]:
    """The daemon's settings for the aiosmtpd test server."""
    return {
        "CAREBOT_SMTP__HOST": smtp.host,
        "CAREBOT_SMTP__PORT": str(smtp.port),
        "CAREBOT_SMTP__SENDER": "care@shop.example",
        "CAREBOT_SMTP__STARTTLS": "false",
    }


def signed_headers(body: bytes, *, secret: str = SECRET, webhook_id: str) -> dict[str, str]:
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, now, body.decode())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def shipped_event(
    n: int,
    *,
    phone: str | None = "+8613800138000",
    email: str | None = "wang@example.com",
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    customer: dict[str, Any] = {"id": f"c-{n}", "name": "王芳", "locale": "zh-CN"}
    if phone:
        customer["phone"] = phone
    if email:
        customer["email"] = email
    return {
        "id": f"evt-{n}-shipped",
        "type": "order.shipped",
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "order": {
            "id": str(n),
            "customer": customer,
            "shipping_address": {"country": "CN", "city": "杭州市"},
            "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2}],
        },
        "shipment": {
            "id": f"s-{n}",
            "carrier": "SF Express",
            "tracking_number": f"SF{n:010d}",
            "status": "in_transit",
        },
    }


class DaemonProcess:
    """``python -m carebot run`` with its own database, port and environment."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.db_path = tmp_path / "carebot.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")},
            "CAREBOT_DATABASE_URL": f"sqlite:///{self.db_path}",
            "CAREBOT_RULES_DIR": str(REPO / "rules"),
            "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
            "CAREBOT_HTTP__PORT": str(self.port),
            "CAREBOT_PUBLIC_URL": self.url,
            "CAREBOT_WEBHOOKS__CAREBOT_SECRET": SECRET,
            "CAREBOT_QUIET_HOURS": "none",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, timeout: float = 60.0) -> None:
        self.runs += 1
        self.stdout_path = self.tmp_path / f"daemon-{self.port}-{self.runs}.out"
        self.stderr_path = self.tmp_path / f"daemon-{self.port}-{self.runs}.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "carebot", "run"],
            cwd=self.tmp_path,
            env=self.env,
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{self.stderr_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not come up:\n{self.stderr_path.read_text()}")

    def post(self, event: dict[str, Any], *, webhook_id: str | None = None) -> httpx.Response:
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = signed_headers(body, webhook_id=webhook_id or f"msg_{event['id']}")
        return httpx.post(f"{self.url}/webhooks/carebot", content=body, headers=headers)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path, timeout=30) as connection:
            return connection.execute(sql, params).fetchall()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[DaemonProcess] = []

    def make(**env: str) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, env)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
