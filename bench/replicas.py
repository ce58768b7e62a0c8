"""What replica routing and the read-your-writes check add to a GET, and a write's position.

    eval "$(scripts/cluster.sh up)"     # DATABASE_URL, DATABASE_PRIMARY_URL, DATABASE_REPLICA_URLS
    .venv/bin/python bench/replicas.py [--rounds 10 --per-round 200]

Flask's test client in one process. Variants of the same GET /api/v1/posts/{id} alternate
request by request (the order flips each round); medians per round, then over rounds:
  primary   an app without replicas, reading the primary directly (the baseline)
  replica   the app with DATABASE_REPLICA_URLS, a client carrying no position
  position  the same app, the client carrying a position the replica has replayed
All apps reach the primary at DATABASE_PRIMARY_URL, so PgBouncer's hop is not in the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flask_migrate
from flask import Flask
from sqlalchemy import event, text

from config import Config, normalize_database_url
from webapp import create_app
from webapp.core.db import Database
from webapp.core.read_your_writes import HEADER


def build(primary: str, replicas: list[str]) -> Flask:
    environ = dict(os.environ, DATABASE_URL=primary, RATELIMIT_ENABLED="false", LOG_LEVEL="WARNING")
    environ.pop("DATABASE_REPLICA_URLS", None)
    return create_app(
        Config(environ),
        DATABASE_REPLICA_URLS=replicas,
        PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
        SLOW_QUERY_MS=1e9,
    )


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    for engine in database.engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in database.engines:
            event.remove(engine, "before_cursor_execute", record)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    primary = normalize_database_url(os.environ.get("DATABASE_PRIMARY_URL") or os.environ["DATABASE_URL"])
    replicas = [normalize_database_url(u) for u in os.environ["DATABASE_REPLICA_URLS"].split(",") if u]

    plain, routed = build(primary, []), build(primary, replicas)
    with plain.app_context():
        flask_migrate.upgrade()
    client = plain.test_client()
    email = f"bench-{time.time_ns()}@example.com"
    client.post("/api/v1/users", json={"email": email, "full_name": "B", "password": "password123"})
    token = client.post("/api/v1/tokens", json={"email": email, "password": "password123"}).get_json()[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    post = client.post(
        "/api/v1/posts", json={"title": "bench", "content": "x" * 200}, headers=auth
    ).get_json()
    path = f"/api/v1/posts/{post['id']}"

    routed_db: Database = routed.extensions["database"]
    position = routed_db.current_wal_position()
    with routed_db.engines[-1].connect() as replica:
        while not replica.scalar(
            text("SELECT pg_last_wal_replay_lsn() >= CAST(:p AS pg_lsn)"), {"p": position}
        ):
            time.sleep(0.05)

    variants: dict[str, Callable[[], Any]] = {
        "primary": lambda: plain.test_client().get(path),
        "replica": lambda: routed.test_client().get(path),
        "position": lambda: routed.test_client().get(path, headers={HEADER: position}),
    }
    for name, call in variants.items():
        database: Database = (plain if name == "primary" else routed).extensions["database"]
        with statements(database) as seen:
            assert call().status_code == 200
        served = "replica" if any("pg_last_wal_replay_lsn" in s for s in seen) else "primary"
        print(f"{name:9} {len(seen)} statements ({served}): " + " | ".join(s.split()[0] + "…" for s in seen))

    # A write's extra statement: pg_current_wal_lsn() after COMMIT, alone.
    samples = []
    for _ in range(args.per_round * 2):
        started = time.perf_counter()
        routed_db.current_wal_position()
        samples.append(time.perf_counter() - started)
    print(f"pg_current_wal_lsn() after a write: median {statistics.median(samples) * 1e6:.0f} µs")

    medians: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for _ in range(args.per_round):  # warm every pool
        for call in variants.values():
            call()
    for round_ in range(args.rounds):
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = order if round_ % 2 == 0 else order[::-1]
        for _ in range(args.per_round):
            for name in names:
                started = time.perf_counter()
                status = variants[name]().status_code
                times[name].append(time.perf_counter() - started)
                assert status == 200, (name, status)
        for name in variants:
            medians[name].append(statistics.median(times[name]))
    base = statistics.median(medians["primary"])
    for name in variants:
        value = statistics.median(medians[name])
        print(
            f"{name:9} median {value * 1e6:7.0f} µs  ratio {value / base:.3f}  (rounds: "
            + ", ".join(f"{m * 1e6:.0f}" for m in medians[name])
            + ")"
        )
    for app in (plain, routed):
        app.extensions["database"].dispose()


if __name__ == "__main__":
    main()
