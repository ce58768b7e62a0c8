"""The PostgreSQL settings the lists depend on, measured (docs/database-settings.md).

Runs on a database `make bench-lists` seeded (``--from``, default bench_lists_1m);
the parts that write use a copy of it (``<from>_settings``, made again on every run),
so nothing they insert stays:

- ``gin``: the trigram index's pending list. For each setting, 20,000 single-row INSERTs
  of posts (the app's writes) are timed, then a rare-word search and a common-word
  capped count are explained while the list holds them (before VACUUM merges it).
- ``visibility``: index-only COUNTs after inserts that no VACUUM has seen: the heap
  fetches they cost, as autovacuum's insert threshold would leave them.
- ``jit``: an exact COUNT of the live posts and the app's capped one, with JIT and
  parallel workers on and off.

    python -m bench.db_settings gin visibility jit --from bench_lists_5m
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from bench.pagination import WORDS
from config import normalize_database_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_lists"
GIN_INDEX = "ix_posts_title_lower_trgm_live"
INSERTS = 20_000


def _sql(connection: Connection, sql: str) -> Any:
    """Run literal SQL: psycopg2 reads % as a placeholder, so it is doubled."""
    return connection.exec_driver_sql(sql.replace("%", "%%"))


def _copy(admin: Connection, source: str, target: str) -> None:
    _sql(admin, f'DROP DATABASE IF EXISTS "{target}"')
    started = time.perf_counter()
    _sql(admin, f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    print(f"copied {source} to {target} in {time.perf_counter() - started:.0f}s")


def _explain(connection: Connection, sql: str, runs: int = 5) -> tuple[float, dict[str, Any]]:
    times, plan = [], {}
    for _ in range(runs):
        result = _sql(connection, f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").scalar_one()[0]
        times.append(result["Planning Time"] + result["Execution Time"])
        plan = result
    return statistics.median(times), plan


def _buffers(plan: dict[str, Any]) -> int:
    node = plan["Plan"]
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def _rare_word(connection: Connection) -> str:
    title = str(connection.scalar(text("SELECT title FROM posts WHERE id = 4243")))
    return next(word for word in title.split() if word not in WORDS)


def _insert_posts(connection: Connection, count: int) -> float:
    """``count`` single-row INSERTs, one statement each, as the app writes posts."""
    started = time.perf_counter()
    _sql(
        connection,
        f"""
        DO $$
        DECLARE
          n int;
        BEGIN
          FOR n IN 1..{count} LOOP
            INSERT INTO posts (user_id, title, content, created_at, updated_at, version)
            SELECT 1 + (n * 7919) % 1000, 'note ' || md5(n::text) || ' engine draft', 'x', now(), now(), 1;
          END LOOP;
        END $$
        """,
    )
    return (time.perf_counter() - started) * 1000 / count


def _pending_pages(connection: Connection) -> int:
    _sql(connection, "CREATE EXTENSION IF NOT EXISTS pgstattuple")
    return int(connection.scalar(text(f"SELECT pending_pages FROM pgstatginindex('{GIN_INDEX}')")) or 0)


def gin(connection: Connection) -> None:
    rare = _rare_word(connection)
    searches = {
        f"rare word ({rare}) count": (
            f"SELECT count(*) FROM posts WHERE deleted_at IS NULL AND lower(title) LIKE '%{rare}%'"
        ),
        "common word (engine) capped count": (
            "SELECT count(*) FROM (SELECT 1 FROM posts WHERE deleted_at IS NULL "
            "AND lower(title) LIKE '%engine%' LIMIT 10001) AS s"
        ),
    }
    print(f"\n{INSERTS:,} single-row INSERTs into posts, then the searches while the pending list holds them")
    print(
        f"{'setting':<34} {'ms/insert':>9} {'pending pages':>13}  "
        + "  ".join(f"{name + ' ms (buffers)':>38}" for name in searches)
    )
    for setting in (
        "fastupdate = on, gin_pending_list_limit = 4096",
        "fastupdate = on, gin_pending_list_limit = 512",
        "fastupdate = on, gin_pending_list_limit = 256",
        "fastupdate = on, gin_pending_list_limit = 128",
        "fastupdate = off",
    ):
        _sql(connection, f"ALTER INDEX {GIN_INDEX} SET ({setting})")
        _sql(connection, "VACUUM posts")  # an empty pending list to start from
        per_insert = _insert_posts(connection, INSERTS)
        pending = _pending_pages(connection)
        cells = []
        for sql in searches.values():
            ms, plan = _explain(connection, sql)
            cells.append(f"{ms:>28.2f} ({_buffers(plan):>6})")
        label = setting.replace("fastupdate = on, ", "")
        print(f"{label:<34} {per_insert:>9.3f} {pending:>13}  " + "  ".join(cells))
        _sql(connection, "DELETE FROM posts WHERE content = 'x'")
    _sql(connection, f"ALTER INDEX {GIN_INDEX} RESET (fastupdate, gin_pending_list_limit)")
    _sql(connection, "VACUUM posts")


def visibility(connection: Connection) -> None:
    live = int(connection.scalar(text("SELECT count(*) FROM posts")) or 0)
    statements = {
        "author's posts count (user 1)": (
            "SELECT count(*) FROM posts WHERE deleted_at IS NULL AND user_id = 1"
        ),
        "capped count of live posts": (
            "SELECT count(*) FROM (SELECT 1 FROM posts WHERE deleted_at IS NULL LIMIT 10001) AS s"
        ),
    }
    print(f"\nindex-only counts after inserts no VACUUM has seen ({live:,} posts)")
    print(
        f"{'unvacuumed inserts':<22} "
        + "  ".join(f"{name + ' ms (heap fetches)':>44}" for name in statements)
    )
    for share in (0.0, 0.002, 0.01, 0.05, 0.2):
        inserted = int(live * share)
        if inserted:
            # The newest posts of the prolific author and of everyone, as a day's writes are.
            _sql(
                connection,
                f"INSERT INTO posts (user_id, title, content, created_at, updated_at, version) "
                f"SELECT CASE WHEN n % 10 = 0 THEN 1 ELSE 2 + n % 1000 END, 'new post ' || n, 'x', "
                f"now() + n * interval '1 millisecond', now(), 1 FROM generate_series(1, {inserted}) AS n",
            )
        cells = []
        for sql in statements.values():
            ms, plan = _explain(connection, sql)
            fetches = _heap_fetches(plan["Plan"])
            cells.append(f"{ms:>32.2f} ({fetches:>8})")
        print(f"{f'{share:.1%} ({inserted:,})':<22} " + "  ".join(cells))
        _sql(connection, "DELETE FROM posts WHERE content = 'x'")
        _sql(connection, "VACUUM posts")


def _heap_fetches(node: dict[str, Any]) -> int:
    return int(node.get("Heap Fetches", 0)) + sum(_heap_fetches(child) for child in node.get("Plans", []))


def jit(connection: Connection) -> None:
    statements = {
        "exact count of live posts": "SELECT count(*) FROM posts WHERE deleted_at IS NULL",
        "capped count (10,001)": (
            "SELECT count(*) FROM (SELECT 1 FROM posts WHERE deleted_at IS NULL LIMIT 10001) AS s"
        ),
        "q=engine page (sorted matches)": (
            "SELECT id FROM posts WHERE deleted_at IS NULL AND lower(title) LIKE '%engine%' "
            "ORDER BY id LIMIT 21 OFFSET 0"
        ),
    }
    print("\nJIT and parallel workers (ms; workers launched; JIT ms of it)")
    print(
        f"{'statement':<34} "
        + "  ".join(f"{s:>30}" for s in ("jit on (default)", "jit off", "jit off, no workers"))
    )
    for name, sql in statements.items():
        cells = []
        for settings in (("jit = on",), ("jit = off",), ("jit = off", "max_parallel_workers_per_gather = 0")):
            _sql(connection, "RESET jit")
            _sql(connection, "RESET max_parallel_workers_per_gather")
            for setting in settings:
                _sql(connection, f"SET {setting}")
            ms, plan = _explain(connection, sql, runs=3)
            workers = _workers(plan["Plan"])
            jit_ms = plan.get("JIT", {}).get("Timing", {}).get("Total", 0.0)
            cells.append(f"{ms:>14.1f} ({workers} w, jit {jit_ms:>5.1f})")
        print(f"{name:<34} " + "  ".join(f"{cell:>30}" for cell in cells))
    _sql(connection, "RESET ALL")


def _workers(node: dict[str, Any]) -> int:
    return int(node.get("Workers Launched", 0)) + sum(_workers(child) for child in node.get("Plans", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="+", choices=("gin", "visibility", "jit"))
    parser.add_argument("--from", dest="source", default="bench_lists_1m", help="the seeded database to copy")
    args = parser.parse_args(argv)
    base = make_url(normalize_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL))
    # Only the parts that write need a copy; jit reads the seeded database as it is.
    writes = any(part in ("gin", "visibility") for part in args.parts)
    target = f"{args.source}_settings" if writes else args.source
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    if writes:
        with admin.connect() as connection:
            _copy(connection, args.source, target)
    engine = create_engine(base.set(database=target), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            _sql(connection, "SET statement_timeout = 0")
            for part in args.parts:
                {"gin": gin, "visibility": visibility, "jit": jit}[part](connection)
    finally:
        engine.dispose()
        if writes:
            with admin.connect() as connection:
                _sql(connection, f'DROP DATABASE IF EXISTS "{target}"')
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
