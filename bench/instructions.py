"""Instructions per request under valgrind's callgrind: the noise-free way to decide.

Wall-clock samples on a shared 2-core machine vary by tenths; instruction counts repeat
within about 1%. Each target serves the route in-process (Flask's test client, no HTTP
server, no load generator); the count per request is the difference between a run of
``--requests`` and a run of twice as many, divided by the extra requests, so start-up
and warm-up cancel out.

    python -m bench.instructions user app raw peer
    python -m bench.instructions posts app raw peer
    python -m bench.instructions write app raw peer       # POST /posts with a Bearer token
    python -m bench.instructions bulk app --requests 3    # POST /users/bulk, 1,000 users
    python -m bench.instructions user app raw --wsgi      # GETs without the test client
    BENCH_TRACES=memory python -m bench.instructions user app --wsgi   # traces on, in memory

``--wsgi`` (GET routes) calls each target's WSGI callable with environs built before
counting starts, as gunicorn calls it: the test client's own work (~500 thousand
instructions a request) is left out, so the figures are the apps' alone.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import subprocess
import sys
import tempfile
from typing import Any

from werkzeug.test import EnvironBuilder

from bench.run import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHEAP_HASH,
    DEFAULT_URL,
    admin_token,
    bulk_items,
    delete_bench_posts,
    delete_bulk_rows,
    dsn,
)
from config import normalize_database_url

PATHS = {
    "user": "/api/v1/users/{id}",
    "posts": "/api/v1/posts?per_page=20",
    "write": "/api/v1/posts",
    "bulk": "/api/v1/users/bulk",
}


def build(target: str, url: str) -> Any:
    if target == "app":
        from config import ProductionConfig
        from webapp import create_app

        # Production settings, rate limits on (in memory): what a deployed GET pays.
        config = ProductionConfig(
            {
                "APP_ENV": "production",
                "DATABASE_URL": url,
                "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
                "LOG_LEVEL": "WARNING",
                # METRICS_ENABLED=false in the environment measures the app without them
                # (bench/README.md); PROMETHEUS_MULTIPROC_DIR as under gunicorn.
                "METRICS_ENABLED": os.environ.get("METRICS_ENABLED", "true"),
                # OTEL_* in the environment turn traces on as in production (an endpoint
                # nothing listens on: a collector that is down).
                **{name: value for name, value in os.environ.items() if name.startswith("OTEL_")},
            }
        )
        overrides: dict[str, Any] = {}
        if os.environ.get("BENCH_TRACES") == "memory":
            # Traces on, exported to the SDK's in-memory exporter: the app's cost alone.
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

            overrides["TRACING_EXPORTER"] = InMemorySpanExporter()
        return create_app(config, PASSWORD_HASH_METHOD=CHEAP_HASH, **overrides)
    if target == "raw":
        os.environ["RAW_DSN"] = dsn(url)
        from bench.raw_app import app as raw

        return raw
    if target == "peer":
        os.environ["PEER_DATABASE_URL"] = url
        from bench.textbook_app import app as peer

        return peer
    raise SystemExit(f"unknown target {target!r}: app, raw or peer")


def serve(route: str, target: str, url: str, count: int, *, wsgi: bool = False) -> None:
    """The child: warm up, then send ``count`` requests."""
    if wsgi:
        serve_wsgi(build(target, url), route, count)
        return
    client = build(target, url).test_client()
    if route == "bulk":
        serve_bulk(client, url, count)
        return
    if route == "write":
        serve_write(client, url, count)
        return
    rng = random.Random(1)
    for n in range(50 + count):
        path = PATHS[route].format(id=rng.randint(1, 10_000))
        status = client.get(path).status_code
        assert status == 200, (path, status)
        if n == 49:
            # As wsgi.py does after start-up; without it a full collection falling in one
            # run and not the other moved the figure by hundreds of thousands.
            gc.collect()
            gc.freeze()


def serve_wsgi(app: Any, route: str, count: int) -> None:
    """GETs straight into the WSGI callable, with the same paths as ``serve``."""
    if route not in ("user", "posts"):
        raise SystemExit("--wsgi measures the GET routes: user, posts")
    rng = random.Random(1)
    environs = [
        EnvironBuilder(path=PATHS[route].format(id=rng.randint(1, 10_000)), method="GET").get_environ()
        for _ in range(50 + count)
    ]

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    for n, environ in enumerate(environs):
        body = app(environ, start_response)
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
        if n == 49:
            gc.collect()
            gc.freeze()


def serve_write(client: Any, url: str, count: int) -> None:
    """POST /api/v1/posts with the admin's token (issued by the app: the raw app and the
    peer check it in the same table), as bench/run.py's WRITE_SCRIPT sends it."""
    admin_token(None, url)
    issuer = build("app", url).test_client()
    signed_in = issuer.post("/api/v1/tokens", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    bearer = {"Authorization": f"Bearer {signed_in.get_json()['token']}"}
    body = {"title": "bench write", "content": "An authenticated write."}
    for n in range(20 + count):
        status = client.post("/api/v1/posts", json=body, headers=bearer).status_code
        assert status == 201, status
        if n == 19:
            gc.collect()
            gc.freeze()


def serve_bulk(client: Any, url: str, count: int) -> None:
    """The app's bulk create as an admin: two warm-up requests, then ``count``."""
    admin_token(None, url)
    signed_in = client.post("/api/v1/tokens", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    bearer = {"Authorization": f"Bearer {signed_in.get_json()['token']}"}
    bodies = [{"items": bulk_items(1000)} for _ in range(2 + count)]  # made before counting starts
    for n, body in enumerate(bodies):
        status = client.post("/api/v1/users/bulk", json=body, headers=bearer).status_code
        assert status == 201, status
        if n == 1:
            gc.collect()
            gc.freeze()


def instructions(route: str, target: str, url: str, count: int, *, wsgi: bool = False) -> int:
    child = [route, target, "--url", url, "--requests", str(count), *(["--wsgi"] if wsgi else [])]
    return callgrind_total("bench.instructions", child)


def callgrind_total(module: str, child_args: list[str]) -> int:
    """Instructions of ``python -m <module> --child <child_args>`` under callgrind."""
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out.name}",
                sys.executable,
                "-m",
                module,
                "--child",
                *child_args,
            ],
            check=True,
            capture_output=True,
            # The same hash seed in both runs: set and dict layouts, and so the work, repeat.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        text = open(out.name).read()  # noqa: SIM115 -- the temporary file is closed above
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("route", choices=sorted(PATHS))
    parser.add_argument("targets", nargs="*", default=["app", "raw", "peer"])
    parser.add_argument(
        "--url", default=normalize_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--wsgi", action="store_true", help="call the WSGI app directly, no test client")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve(args.route, args.targets[0], args.url, args.requests, wsgi=args.wsgi)
        return
    for target in args.targets:
        low = instructions(args.route, target, args.url, args.requests, wsgi=args.wsgi)
        high = instructions(args.route, target, args.url, 2 * args.requests, wsgi=args.wsgi)
        if args.route == "bulk":
            delete_bulk_rows(args.url)
        if args.route == "write":
            delete_bench_posts(args.url)
        per_request = (high - low) / args.requests / 1000
        how = " (WSGI)" if args.wsgi else ""
        print(f"{args.route} {target}{how}: {per_request:,.0f} thousand instructions per request")


if __name__ == "__main__":
    main()
