"""`python -m bench.abuse [--base URL]`: what an attacker can still do to `make prod`.

Run against `make prod` with its defaults (nginx on 127.0.0.1:8080, two gunicorn workers,
limits in its Redis). Clients use distinct loopback addresses (127.0.0.0/8), which nginx
passes to the app as X-Forwarded-For. Every request loop is bounded in count and time.
It prints one line per check: what was sent, what came back, and whether the goal held.
Each run signs up new accounts (a random suffix), so runs do not share limits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

PASSWORD = "correct horse battery"


class Edge:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80

    def request(
        self,
        method: str,
        path: str,
        *,
        source: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, bytes, float]:
        """(status, body, seconds); status -1 when the connection failed or timed out."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection(
            self.host, self.port, timeout=timeout, source_address=(source, 0)
        )
        all_headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            content = response.read()
            return response.status, content, time.perf_counter() - started
        except OSError:
            return -1, b"", time.perf_counter() - started
        finally:
            connection.close()


def check(name: str, held: bool, detail: str) -> bool:
    print(f"{'ok  ' if held else 'FAIL'} {name}: {detail}", flush=True)
    return held


def sign_up(edge: Edge, email: str, source: str) -> None:
    status, content, _ = edge.request(
        "POST",
        "/api/v1/users",
        source=source,
        body={"email": email, "full_name": "Target", "password": PASSWORD},
    )
    if status != 201:
        sys.exit(f"sign-up of {email} answered {status}: {content[:200]!r}")


def sign_in(edge: Edge, email: str, password: str, source: str) -> int:
    return edge.request("POST", "/api/v1/tokens", source=source, body={"email": email, "password": password})[
        0
    ]


def distributed_guessing(edge: Edge, suffix: str) -> bool:
    email = f"spread-{suffix}@example.com"
    sign_up(edge, email, "127.0.10.1")
    sources = [f"127.0.11.{n % 4 + 1}" for n in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(lambda source: sign_in(edge, email, "wrong guess", source), sources))
    checked, refused = statuses.count(401), statuses.count(429)
    return check(
        "40 concurrent wrong passwords for one email from 4 addresses",
        checked <= 10 and checked + refused == 40,
        f"{checked} checked (401), {refused} refused (429), others {len(statuses) - checked - refused}",
    )


def owner_not_locked_out(edge: Edge, suffix: str) -> bool:
    email = f"owner-{suffix}@example.com"
    sign_up(edge, email, "127.0.12.1")
    attacker = [sign_in(edge, email, f"guess {n}", "127.0.12.2") for n in range(15)]
    owner = sign_in(edge, email, PASSWORD, "127.0.12.3")
    return check(
        "15 wrong guesses from one address, then the owner from another",
        owner == 201,
        f"attacker: {attacker.count(401)} checked, {attacker.count(429)} refused; owner: {owner}",
    )


def expensive_requests(edge: Edge, suffix: str, seconds: float) -> bool:
    """8 clients sign in as fast as they can (a password hash each, the costliest legal
    request); a bystander reads a user meanwhile."""
    email = f"busy-{suffix}@example.com"
    sign_up(edge, email, "127.0.13.1")
    deadline = time.monotonic() + seconds
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def hammer(n: int) -> None:
        while time.monotonic() < deadline:
            answered = sign_in(edge, email, PASSWORD, f"127.0.14.{n + 1}")
            with lock:
                counts[answered] = counts.get(answered, 0) + 1

    reads: list[float] = []
    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    while time.monotonic() < deadline:
        read_status, _, elapsed = edge.request("GET", "/api/v1/users?per_page=5", source="127.0.15.1")
        if read_status == 200:
            reads.append(elapsed)
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    p50 = statistics.median(reads) * 1000 if reads else float("inf")
    return check(
        "8 clients signing in as fast as they can: a bystander's GET",
        p50 < 50,
        f"GET p50 {p50:.1f} ms over {len(reads)} reads; sign-ins answered {dict(sorted(counts.items()))}",
    )


def unknown_keys(edge: Edge) -> bool:
    body = {f"k{n}": n for n in range(50_000)}
    status, content, elapsed = edge.request("POST", "/api/v1/tokens", source="127.0.16.1", body=body)
    return check(
        "a body of 50,000 unknown keys",
        400 <= status < 500 and len(content) <= 64 * 1024,
        f"{status}, {len(content)} bytes, {elapsed * 1000:.0f} ms",
    )


def token_in_query(edge: Edge) -> bool:
    status, _, _ = edge.request("GET", "/api/v1/users?access_token=abc", source="127.0.16.2")
    return check("?access_token= in the URL", status == 400, f"{status}")


def slow_body_flood(edge: Edge, sockets_count: int, seconds: float) -> bool:
    head = (
        f"POST /api/v1/users HTTP/1.1\r\nHost: {edge.host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{"
    ).encode()
    sockets: list[socket.socket] = []
    probes: list[tuple[int, float]] = []
    try:
        for _ in range(sockets_count):
            sock = socket.create_connection(
                (edge.host, edge.port), timeout=5, source_address=("127.0.17.1", 0)
            )
            sock.setblocking(False)
            with suppress(OSError):
                sock.send(head)
            sockets.append(sock)
        deadline = time.monotonic() + seconds
        next_dribble = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() >= next_dribble:
                for sock in sockets:
                    with suppress(OSError):
                        sock.send(b" ")
                next_dribble += 3
            for path in ("/health/ready", "/api/v1/users?per_page=5"):
                status, _, elapsed = edge.request("GET", path, source="127.0.17.2", timeout=1)
                probes.append((status, elapsed))
            time.sleep(0.2)
    finally:
        for sock in sockets:
            sock.close()
    good = [probe for probe in probes if probe[0] == 200 and probe[1] < 1.0]
    slowest = max(elapsed for _, elapsed in probes) * 1000
    return check(
        f"{sockets_count} sockets from one address dribbling bodies",
        len(good) == len(probes),
        f"{len(good)} of {len(probes)} probes from elsewhere: 200 within 1 s (slowest {slowest:.0f} ms)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the timed checks")
    parser.add_argument("--sockets", type=int, default=2500)
    args = parser.parse_args()
    edge = Edge(args.base)
    suffix = secrets.token_hex(4)
    checks: list[Callable[[], bool]] = [
        lambda: distributed_guessing(edge, suffix),
        lambda: owner_not_locked_out(edge, suffix),
        lambda: unknown_keys(edge),
        lambda: token_in_query(edge),
        lambda: expensive_requests(edge, suffix, args.seconds),
        lambda: slow_body_flood(edge, args.sockets, args.seconds),
    ]
    results = [run() for run in checks]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
