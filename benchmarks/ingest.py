"""Ingest: signed webhooks per second and latency, carebot against a bare Starlette endpoint.

Both servers run as uvicorn processes on loopback and get the same load from the same
generator (httpx) in two phases:

- throughput: a fixed number of connections, each sending its next request as soon as the
  previous one is answered (closed loop); this gives the rate, and latencies that are mostly
  time spent queued behind the other connections' requests;
- latency: requests sent at a fixed rate whatever the answers (open loop, as webhooks arrive),
  each timed from the instant it was due to be sent, so a slow answer cannot hide the ones
  queued behind it.

carebot verifies each Standard Webhooks signature, stores the event durably and plans its
messages before answering (and sends the shipped notice through the console channel); the
bare endpoint only reads the body.

    python benchmarks/ingest.py [--requests 3000] [--concurrency 16] [--rate 100]

Target (issue 8): carebot at least half the bare endpoint's rate (throughput phase), p99 under
50 ms (latency phase), no errors in either.
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


def signed_requests(
    count: int, prefix: str = "bench", mobile: str = "138"
) -> list[tuple[bytes, dict[str, str]]]:
    """Signed ``order.shipped`` webhooks, each of a new order, shipment and customer."""
    hook = Webhook(SECRET)
    out = []
    for n in range(count):
        now = datetime.now(UTC)
        event = {
            "id": f"{prefix}-{n}",
            "type": "order.shipped",
            "occurred_at": now.isoformat(),
            "order": {
                "id": f"{prefix}{n}",
                "customer": {
                    "id": f"{prefix}-c{n}",
                    "phone": f"+86{mobile}{n:08d}",
                    "locale": "zh-CN",
                },
                "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 1}],
            },
            "shipment": {
                "id": f"{prefix}-s{n}",
                "carrier": "SF Express",
                "tracking_number": f"SF{prefix}{n}",
            },
        }
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = {
            "webhook-id": f"{prefix}_msg_{n}",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": hook.sign(f"{prefix}_msg_{n}", now, body.decode()),
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
    return _summary(latencies, errors, elapsed)


async def paced(
    url: str, requests: list[tuple[bytes, dict[str, str]]], rate: float
) -> dict[str, float]:
    """Send ``requests`` at ``rate`` per second (open loop); time each from when it was due."""
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=None), timeout=30) as client:

        async def one(due: float, body: bytes, headers: dict[str, str]) -> None:
            nonlocal errors
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code >= 300:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - due)

        started = time.perf_counter()
        tasks = []
        for n, (body, headers) in enumerate(requests):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due, body, headers)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return _summary(latencies, errors, elapsed)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, float]:
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--rate", type=float, default=100, help="webhooks per second in the latency phase"
    )
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    latency: dict[str, dict[str, float]] = {}
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
                    # Latency first, on a server that is warm but not still working off the
                    # backlog of sends the throughput phase leaves behind. New events (new
                    # ids) for each phase, so carebot stores and plans every one.
                    paced_requests = signed_requests(args.requests, prefix="paced", mobile="139")
                    latency[name] = asyncio.run(paced(url, paced_requests, args.rate))
                    results[name] = asyncio.run(load(url, requests[50:], args.concurrency))
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    header = f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
    print(
        f"ingest throughput: {args.requests - 50} signed webhooks, "
        f"{args.concurrency} connections (closed loop)"
    )
    _table(header, results)
    print(f"ingest latency: {args.requests} signed webhooks at {args.rate:g}/s (open loop)")
    _table(header, latency)
    bare, carebot = results["bare Starlette endpoint"], results["carebot /webhooks/carebot"]
    paced_carebot = latency["carebot /webhooks/carebot"]
    met = (
        carebot["rate"] >= bare["rate"] / 2
        and paced_carebot["p99_ms"] < 50
        and not carebot["errors"]
        and not paced_carebot["errors"]
    )
    print(
        f"carebot/bare rate: {carebot['rate'] / bare['rate']:.2f}; "
        f"target (>= half the bare rate, p99 < 50 ms at {args.rate:g}/s, no errors): "
        f"{'met' if met else 'NOT met'}"
    )


def _table(header: str, results: dict[str, dict[str, float]]) -> None:
    print(header)
    for name, r in results.items():
        print(
            f"{name:<28}{r['rate']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['errors']:>8.0f}"
        )


if __name__ == "__main__":
    main()
