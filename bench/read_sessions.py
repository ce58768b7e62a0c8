"""What a read-only session costs on PostgreSQL, per way of running it (docs/architecture.md).

One `SELECT` by id in a fresh Session, 500 times per sample, the variants alternating,
median of 5 samples, on the bench database. Run: python -m bench.read_sessions
"""

from __future__ import annotations

import os
import statistics
import time

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from bench.run import DEFAULT_URL
from config import normalize_database_url


def variants(url: str) -> dict[str, Engine]:
    return {
        "transaction, pre-ping": create_engine(url, pool_pre_ping=True),
        "transaction, no pre-ping": create_engine(url, pool_pre_ping=False),
        "autocommit option on the shared pool, pre-ping": create_engine(
            url, pool_pre_ping=True
        ).execution_options(isolation_level="AUTOCOMMIT"),
        "autocommit option on the shared pool, no pre-ping": create_engine(
            url, pool_pre_ping=False
        ).execution_options(isolation_level="AUTOCOMMIT"),
        "autocommit pool of its own, pre-ping": create_engine(
            url, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
        ),
        "autocommit pool of its own, no pre-ping (the app)": create_engine(
            url, pool_pre_ping=False, isolation_level="AUTOCOMMIT"
        ),
    }


def sample(engine: Engine, sessions: int) -> float:
    started = time.perf_counter()
    for n in range(sessions):
        with Session(engine) as session:
            session.execute(text("SELECT id FROM users WHERE id = :id"), {"id": n % 1000 + 1}).all()
            session.commit()
    return (time.perf_counter() - started) / sessions * 1e6


def main() -> None:
    url = normalize_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    engines = variants(url)
    for engine in engines.values():
        sample(engine, 50)  # connect and warm
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(5):
        for name, engine in engines.items():
            samples[name].append(sample(engine, 500))
    baseline = statistics.median(samples["transaction, pre-ping"])
    print(f"{'read-only session':<52} {'us each':>8} {'vs transaction+pre-ping':>24}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<52} {median:>8.0f} {median / baseline:>23.2f}x")
    for engine in engines.values():
        engine.dispose()


if __name__ == "__main__":
    main()
