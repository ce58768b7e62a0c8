"""`make bench-profile`: where one route's time goes, in-process, on the bench database.

cProfile over N requests through Flask's test client (no HTTP server, no load
generator), then the functions with the most time of their own, and the share of
each layer: what `bench/README.md` quotes when a goal is out of reach.

    python -m bench.profile user        # GET /api/v1/users/{id}
    python -m bench.profile posts       # GET /api/v1/posts?per_page=20
    python -m bench.profile bulk        # POST /api/v1/users/bulk, 1,000 items
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import time
from collections import defaultdict
from collections.abc import Callable

from flask.testing import FlaskClient

from bench.run import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHEAP_HASH,
    DEFAULT_URL,
    admin_token,
    bulk_items,
    delete_bulk_rows,
)
from config import Config, normalize_database_url
from webapp import create_app

# Which package a function's file belongs to, most specific first.
LAYERS = (
    ("webapp", "/webapp/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("psycopg2 (driver + server wait)", "psycopg2"),
    ("marshmallow", "/marshmallow/"),
    ("werkzeug", "/werkzeug/"),
    ("flask", "/flask/"),
    ("logging", "/logging/"),
    ("json", "/json/"),
)


def layer_of(filename: str) -> str:
    for name, marker in LAYERS:
        if marker in filename:
            return name
    return "other (stdlib, builtins)"


def request_for(route: str, users: int, bearer: dict[str, str]) -> tuple[Callable[[FlaskClient], int], int]:
    if route == "user":
        return (lambda client: client.get(f"/api/v1/users/{random.randint(1, users)}").status_code), 2000
    if route == "posts":
        return (lambda client: client.get("/api/v1/posts?per_page=20").status_code), 300
    if route == "bulk":
        return (
            lambda client: (
                client.post(
                    "/api/v1/users/bulk", json={"items": bulk_items(1000)}, headers=bearer
                ).status_code
            )
        ), 10
    raise SystemExit(f"unknown route {route!r}: user, posts or bulk")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("route", choices=("user", "posts", "bulk"))
    parser.add_argument(
        "--url", default=normalize_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    )
    parser.add_argument("--requests", type=int, help="how many (default: 2000 user, 300 posts, 10 bulk)")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--no-profile", action="store_true", help="only time the requests (ms each, median of 5 rounds)"
    )
    args = parser.parse_args()

    config = Config(
        {
            "DATABASE_URL": args.url,
            "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
            "LOG_LEVEL": "WARNING",
            "APP_ENV": "production",
        }
    )
    app = create_app(config, PASSWORD_HASH_METHOD=CHEAP_HASH)
    client = app.test_client()
    bearer: dict[str, str] = {}
    if args.route == "bulk":  # admins only: seeded user 1 is promoted and signs in
        admin_token(None, args.url)
        signed_in = client.post("/api/v1/tokens", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        bearer = {"Authorization": f"Bearer {signed_in.get_json()['token']}"}
    send, default_count = request_for(args.route, users=10_000, bearer=bearer)
    count = args.requests or default_count
    for _ in range(max(count // 10, 2)):  # warm the pool, compiled-statement cache and imports
        assert send(client) in (200, 201)
    if args.route == "bulk":
        delete_bulk_rows(args.url)

    if args.no_profile:
        # Wall clock, and this process's CPU time (all its threads; not PostgreSQL's),
        # which a busy machine disturbs less.
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(5):
            started, started_cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                assert send(client) in (200, 201)
            wall.append((time.perf_counter() - started) / count * 1000)
            cpu.append((time.process_time() - started_cpu) / count * 1000)
            if args.route == "bulk":
                delete_bulk_rows(args.url)
        print(
            f"{args.route}: {count} requests x 5 rounds, median {sorted(wall)[2]:.2f} ms each, "
            f"{sorted(cpu)[2]:.2f} ms of this process's CPU (walls {', '.join(f'{w:.1f}' for w in wall)})"
        )
        return

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(count):
        send(client)
    profiler.disable()
    elapsed = time.perf_counter() - started
    if args.route == "bulk":
        delete_bulk_rows(args.url)

    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    total_own = sum(entry[2] for entry in raw.values())
    by_layer: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), entry in raw.items():
        by_layer[layer_of(filename)] += entry[2]

    print(f"{args.route}: {count} requests, {elapsed / count * 1000:.2f} ms each under cProfile")
    print(f"\n{'layer (own time)':<34} {'share':>6}")
    for name, seconds in sorted(by_layer.items(), key=lambda item: -item[1]):
        print(f"{name:<34} {seconds / total_own:>6.1%}")
    print(f"\ntop {args.top} functions by own time")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[-(args.top + 2) * 200 :])


if __name__ == "__main__":
    main()
