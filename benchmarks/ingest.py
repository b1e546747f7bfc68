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

    python benchmarks/ingest.py [--requests 3000] [--concurrency 16] [--rounds 3] [--rate 100]

Target (issue 8): carebot at least half the bare endpoint's rate (throughput phase), p99 under
50 ms (latency phase), no errors in either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


SERVERS = ("bare Starlette endpoint", "carebot /webhooks/carebot")


def _command(name: str, port: int, tmp: Path) -> tuple[list[str], dict[str, str]]:
    if name.startswith("bare"):
        return [sys.executable, str(HERE / "_bare_endpoint.py"), str(port)], dict(os.environ)
    env = {
        **os.environ,
        "CAREBOT_DATABASE_URL": f"sqlite:///{tmp / 'carebot.db'}",
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
        "CAREBOT_HTTP__PORT": str(port),
        "CAREBOT_WEBHOOKS__CAREBOT_SECRET": SECRET,
        "CAREBOT_QUIET_HOURS": "none",
    }
    return [sys.executable, "-m", "carebot", "run", "--log-level", "WARNING"], env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per phase and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per server")
    parser.add_argument(
        "--rate", type=float, default=100, help="webhooks per second in the latency phase"
    )
    args = parser.parse_args()
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    latency: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for name in SERVERS:
            port = free_port()
            command, env = _command(name, port, Path(tmp))
            sink = stack.enter_context((Path(tmp) / f"{port}.out").open("wb"))
            proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=sink, stderr=sink)
            stack.callback(_stop, proc)
            wait_listening(port, proc)
            urls[name] = f"http://127.0.0.1:{port}/webhooks/carebot"
        # New events (new ids) for every phase and round, so carebot stores and plans each.
        for url in urls.values():
            asyncio.run(load(url, signed_requests(50, prefix="warm"), args.concurrency))
        # Latency first, on servers that are warm but not working off the backlog of sends a
        # throughput round leaves behind.
        for name, url in urls.items():
            paced_requests = signed_requests(args.requests, prefix="paced", mobile="139")
            latency[name] = asyncio.run(paced(url, paced_requests, args.rate))
        # Throughput rounds alternate between the servers, so a slow spell of the machine
        # does not fall on one of them only; the median round counts.
        for n in range(args.rounds):
            for name, url in urls.items():
                requests = signed_requests(args.requests, prefix=f"r{n}", mobile=f"{150 + n}")
                rounds[name].append(asyncio.run(load(url, requests, args.concurrency)))
    results = {name: _median(runs) for name, runs in rounds.items()}
    header = f"{'':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
    print(
        f"ingest throughput: {args.requests} signed webhooks per round, {args.concurrency} "
        f"connections (closed loop), median of {args.rounds} alternating rounds"
    )
    _table(header, results)
    for name, runs in rounds.items():
        rates = ", ".join(f"{r['rate']:.0f}" for r in runs)
        print(f"  {name} rounds, req/s: {rates}")
    print(f"ingest latency: {args.requests} signed webhooks at {args.rate:g}/s (open loop)")
    _table(header, latency)
    bare, carebot = results[SERVERS[0]], results[SERVERS[1]]
    paced_carebot = latency[SERVERS[1]]
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


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median rate; errors are those of all rounds."""
    middle = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]
    return {**middle, "errors": sum(r["errors"] for r in runs)}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def _table(header: str, results: dict[str, dict[str, float]]) -> None:
    print(header)
    for name, r in results.items():
        print(
            f"{name:<28}{r['rate']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['errors']:>8.0f}"
        )


if __name__ == "__main__":
    main()
