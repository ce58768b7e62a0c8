"""Slow-client attack on a running server: N uploads that stall, then two GETs timed.

    .venv/bin/python bench/stalled_clients.py --port 8000 --clients 10   # gunicorn alone
    .venv/bin/python bench/stalled_clients.py --port 8080 --clients 500  # through the edge

Each stalled client sends headers with Content-Length: 1000, then `{"a":` and nothing more.
See docs/deployment.md for what it showed.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import time

STALLED_REQUEST = (
    b"POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"a":'
)


def timed_get(port: int, path: str, timeout: float) -> str:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        outcome = str(response.status)
    except (TimeoutError, OSError) as error:
        outcome = type(error).__name__
    finally:
        connection.close()
    return f"{outcome} in {time.perf_counter() - started:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each GET")
    args = parser.parse_args()
    stalled: list[socket.socket] = []
    try:
        for _ in range(args.clients):
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
            sock.sendall(STALLED_REQUEST)
            stalled.append(sock)
        # Let the server hand the stalled connections to its threads before we measure.
        time.sleep(0.3)
        for path in ("/health", "/api/v1/users"):
            outcome = timed_get(args.port, path, args.timeout)
            print(f"port {args.port}, {args.clients} stalled: GET {path} -> {outcome}")
    finally:
        for sock in stalled:
            sock.close()


if __name__ == "__main__":
    main()
