"""Ingest: signed webhooks per second and latency, carebot against a bare Starlette endpoint.

Both servers run as uvicorn processes on loopback and get the same load from the same
generator (httpx, a fixed number of concurrent connections, a bounded number of requests).
carebot verifies each Standard Webhooks signature, stores the event durably and plans its
messages before answering; the bare endpoint only reads the body.

    python benchmarks/ingest.py [--requests 3000] [--concurrency 16]

Target (issue 8): carebot at least half the bare endpoint's rate, p99 under 50 ms, no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited early")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def signed_requests(count: int) -> list[tuple[bytes, dict[str, str]]]:
    hook = Webhook(SECRET)
    out = []
    for n in range(count):
        now = datetime.now(UTC)
        event = {
            "id": f"bench-{n}",
            "type": "order.shipped",
            "occurred_at": now.isoformat(),
            "order": {
                "id": f"b{n}",
                "customer": {"id": f"c{n}", "phone": f"+86138{n:08d}", "locale": "zh-CN"},
                "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 1}],
            },
            "shipment": {"id": f"s{n}", "carrier": "SF Express", "tracking_number": f"SF{n}"},
        }
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = {
            "webhook-id": f"msg_{n}",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": hook.sign(f"msg_{n}", now, body.decode()),
            "content-type": "application/json",
        }
        out.append((body, headers))
    return out


async def load(
    url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body, headers = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rate": len(requests) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("bare Starlette endpoint", "carebot /webhooks/carebot"):
            port = free_port()
            if name.startswith("bare"):
                command = [sys.executable, str(HERE / "_bare_endpoint.py"), str(port)]
                env = dict(os.environ)
            else:
                command = [sys.executable, "-m", "carebot", "run", "--log-level", "WARNING"]
                env = {
                    **os.environ,
                    "CAREBOT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'carebot.db'}",
                    "CAREBOT_RULES_DIR": str(REPO / "rules"),
                    "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
                    "CAREBOT_HTTP__PORT": str(port),
                    "CAREBOT_WEBHOOKS__CAREBOT_SECRET": SECRET,
                    "CAREBOT_QUIET_HOURS": "none",
                }
            with (Path(tmp) / f"{port}.out").open("wb") as sink:
                proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=sink, stderr=sink)
                try:
                    wait_listening(port, proc)
                    requests = signed_requests(args.requests)
                    url = f"http://127.0.0.1:{port}/webhooks/carebot"
                    asyncio.run(load(url, requests[:50], args.concurrency))  # warm-up
                    results[name] = asyncio.run(load(url, requests[50:], args.concurrency))
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    print(f"ingest: {args.requests - 50} signed webhooks, {args.concurrency} connections")
    print(f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, r in results.items():
        print(
            f"{name:<28}{r['rate']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['errors']:>8.0f}"
        )
    bare, carebot = results["bare Starlette endpoint"], results["carebot /webhooks/carebot"]
    met = carebot["rate"] >= bare["rate"] / 2 and carebot["p99_ms"] < 50 and not carebot["errors"]
    print(f"target (>= half the bare rate, p99 < 50 ms, no errors): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
