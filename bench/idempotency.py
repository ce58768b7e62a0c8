"""What an Idempotency-Key costs a POST /api/v1/users: statements and latency, in one run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/dev_x .venv/bin/python bench/idempotency.py

Flask's test client in one process (no HTTP server): what is measured is the app and the
database round trips. Variants alternate request by request (the order flips each round)
so drift on this shared 2-core machine hits all of them alike; medians per round, then
the median over rounds. Password hashing is set cheap (as in the tests) so it does not
hide the persistence cost; pass --password-method to measure with the real one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flask_migrate
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, event

from webapp import create_app
from webapp.core.db import unit_of_work
from webapp.core.idempotency.model import IdempotencyRecord
from webapp.resources.users.model import User

Call = Callable[[], Any]


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(maxsplit=1)[0].upper() + " " + _table_hint(statement))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _table_hint(statement: str) -> str:
    lowered = statement.lower()
    if "pg_try_advisory_xact_lock" in lowered:
        return "(advisory lock)"
    if "idempotency_records" in lowered:
        return "idempotency_records"
    if "users" in lowered:
        return "users"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=150, help="requests per variant per round")
    parser.add_argument("--password-method", default="pbkdf2:sha256:1000")
    args = parser.parse_args()

    app = create_app("development", PASSWORD_HASH_METHOD=args.password_method, LOG_LEVEL="WARNING")
    app.config["DEBUG"] = False
    engine: Engine = app.extensions["database"].engine
    print(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
    run = uuid.uuid4().hex[:8]
    with app.app_context():
        flask_migrate.upgrade()
    client = app.test_client()
    counter = iter(range(10**9))

    def payload() -> dict[str, str]:
        return {
            "email": f"bench-{run}-{next(counter)}@example.com",
            "full_name": "Bench",
            "password": "password123",
        }

    replay_body = payload()
    replay_key = f"bench-{run}-replay"
    _post(client, replay_body, replay_key, expect_replay=False)

    variants: dict[str, Call] = {
        "no key": lambda: _post(client, payload(), None),
        "new key": lambda: _post(client, payload(), f"bench-{run}-{uuid.uuid4().hex}"),
        "replay": lambda: _post(client, replay_body, replay_key, expect_replay=True),
    }

    print("\nstatements per request (before_cursor_execute):")
    for name, call in variants.items():
        with counting(engine) as statements:
            call()
        print(f"  {name:8} {len(statements)}: {', '.join(statements)}")

    for call in variants.values():  # warm-up: pool, caches, first compiles
        for _ in range(30):
            call()

    per_round: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(args.rounds):
        samples: dict[str, list[float]] = {name: [] for name in variants}
        order = names if round_ % 2 == 0 else list(reversed(names))
        for _ in range(args.per_round):
            for name in order:
                started = time.perf_counter()
                variants[name]()
                samples[name].append((time.perf_counter() - started) * 1000)
        for name in names:
            per_round[name].append(statistics.median(samples[name]))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{name} {per_round[name][-1]:.3f} ms" for name in names)
            + f"  ratio new key/no key {per_round['new key'][-1] / per_round['no key'][-1]:.3f}"
        )

    base = statistics.median(per_round["no key"])
    print(f"\nmedian of {args.rounds} round medians ({args.per_round} requests per variant per round):")
    for name in names:
        value = statistics.median(per_round[name])
        print(f"  {name:8} {value:.3f} ms  ratio to no key {value / base:.3f}")
    ratios = [k / n for k, n in zip(per_round["new key"], per_round["no key"], strict=True)]
    low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
    print(f"  new key / no key per round: min {low:.3f}, median {mid:.3f}, max {high:.3f}")

    _clean_up(app, run)
    return 0


def _post(client: FlaskClient, body: dict[str, str], key: str | None, expect_replay: bool = False) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post("/api/v1/users", json=body, headers=headers)
    if response.status_code != 201:
        raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")
    if (response.headers.get("Idempotent-Replayed") == "true") != expect_replay:
        raise SystemExit(f"replay header wrong for key {key!r}")


def _clean_up(app: Flask, run: str) -> None:
    with app.app_context(), unit_of_work() as uow:
        uow.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.key.startswith(f"bench-{run}-"))
        )
        uow.session.execute(delete(User).where(User.email.startswith(f"bench-{run}-")))


if __name__ == "__main__":
    raise SystemExit(main())
