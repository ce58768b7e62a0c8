"""The lists a client calls first, at 100k, 1M (and 5M) posts: time per request, the ratio
to 100k, and the plan of every statement the app sends.

Each size has a database of its own (``<DATABASE_URL>_<size>``, default
postgresql://postgres@127.0.0.1:5432/bench_lists_100k, ..._1m, ..._5m), created if
missing, migrated, and seeded once in SQL (generate_series, no rows through Python):
posts/10 users, user 1 the author of a tenth of all posts, 2% of posts soft-deleted,
two comments on every fifth post, then VACUUM ANALYZE (committed: statistics are what
the plans depend on). Each request goes through the app's WSGI test client; its SQL is
captured with an engine event and each statement is run again under
``EXPLAIN (ANALYZE, BUFFERS)``. The database time (planning + execution, median of a few
runs) is the figure to read: wall-clock time on a shared 2-core machine varies by
more than the effects measured.

    make bench-lists                        # 100k and 1M
    make bench-lists BENCH_ARGS="--sizes 100k,1m,5m"
    python -m bench.lists_at_scale --sizes 1m --only posts_page1 --plans
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flask_migrate
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from bench.pagination import WORDS, ensure_database
from config import Config, normalize_database_url
from webapp import create_app
from webapp.core.lists import parse_sort
from webapp.core.lists.http import make_cursor
from webapp.resources.posts.repository import PostReadRepository

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench_lists"
SIZES = {"100k": 100_000, "1m": 1_000_000, "5m": 5_000_000}
RESULTS = Path(__file__).resolve().parent / "results"
PER_PAGE = 20
# A stretch of text the posts' contents are cut from: rows as wide as real ones, cheaply.
LOREM = " ".join(WORDS[(i * 13) % len(WORDS)] for i in range(400))
CONSONANTS, VOWELS = "bcdfghklmnprstvz", "aeiou"


# -- seeding, in SQL -------------------------------------------------------------------


def _h(stream: str, modulo: int | str) -> str:
    """A deterministic pseudo-random integer in [0, modulo) from an integer SQL expression."""
    return f"((hashint4(({stream})::int)::bigint + 2147483648) % ({modulo}))"


def _coined(number: str) -> str:
    """An 8-letter consonant-vowel word for a non-negative integer below 80**4: the rarer
    words of the titles (each used by about five posts)."""
    # A multiplier prime to 80**4 spreads consecutive numbers over all syllables: the
    # words share trigrams no more than real rare words do.
    mixed = f"(({number}) * 2654435761 % {80**4})"
    syllables = []
    for position in range(4):
        digit = f"({mixed} / {80**position} % 80)"
        consonant = f"substr('{CONSONANTS}', ({digit} / 5)::int + 1, 1)"
        syllables.append(f"{consonant} || substr('{VOWELS}', ({digit} % 5)::int + 1, 1)")
    return " || ".join(syllables)


def _seed_statements(posts: int) -> list[str]:
    users = posts // 10
    words = "ARRAY[" + ",".join(f"'{word}'" for word in WORDS) + "]"
    count = len(WORDS)
    post_time = "timestamptz '2015-01-01 00:00:00+00' + ((n - 1) / 4) * interval '300 seconds'"
    post_time += " + ((n / 4) % 997) * interval '1 microsecond'"
    commons = (
        f"array_to_string(ARRAY(SELECT ({words})[1 + {_h('n * 8 + i', count)}] "
        f"FROM generate_series(1, 1 + {_h('n * 8 + 7', 5)}::int) AS i), ' ')"
    )
    rare = _coined(_h("n * 8 + 6", max(posts // 5, 1)))
    title = f"CASE WHEN n % 2 = 0 THEN {commons} || ' ' || {rare} ELSE {rare} || ' ' || {commons} END"
    return [
        "SET session_replication_role = replica",  # no foreign-key triggers: ids are right by construction
        "TRUNCATE comments, posts, users RESTART IDENTITY CASCADE",
        f"""
        INSERT INTO users (id, email, full_name, hashed_password, is_active, is_admin,
                           token_generation, created_at, updated_at, deleted_at, version)
        SELECT n, 'user' || n || '@example.com',
               initcap(({words})[1 + {_h("n * 4", count)}]) || ' '
                 || initcap(({words})[1 + {_h("n * 4 + 1", count)}]) || ' ' || n,
               'x', true, false, 1, t, t, NULL, 1
        FROM generate_series(1, {users}) AS n,
             LATERAL (SELECT timestamptz '2014-01-01 00:00:00+00' + n * interval '7 seconds'
                             + {_h("n * 4 + 2", 1_000_000)} * interval '1 microsecond' AS t) AS times
        """,
        f"""
        INSERT INTO posts (id, user_id, title, content, created_at, updated_at, deleted_at, version)
        SELECT n,
               CASE WHEN n % 10 = 0 THEN 1 ELSE 1 + {_h("n * 8 + 4", users)} END,
               {title},
               substr('{LOREM}', 1 + {_h("n * 8 + 5", 1500)}::int, 120 + {_h("n * 8 + 3", 400)}::int),
               t, t, CASE WHEN n % 50 = 7 THEN t END, 1
        FROM generate_series(1, {posts}) AS n, LATERAL (SELECT {post_time} AS t) AS times
        """,
        f"""
        INSERT INTO comments (id, post_id, user_id, body, created_at, updated_at, deleted_at, version)
        SELECT (p / 5 - 1) * 2 + j, p, 1 + {_h("p * 2 + j", users)},
               substr('{LOREM}', 1 + {_h("p * 2 + j + 1", 1500)}::int, 80), t, t, NULL, 1
        FROM generate_series(5, {posts}, 5) AS p, generate_series(1, 2) AS j,
             LATERAL (SELECT timestamptz '2015-01-01 00:00:00+00' + ((p - 1) / 4) * interval '300 seconds'
                             + j * interval '1 minute' AS t) AS times
        """,
        *(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            for table in ("users", "posts", "comments")
        ),
    ]


def _secondary_indexes(engine: Engine, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX ...) of the indexes on ``tables`` that back no constraint."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename = ANY(:tables) AND indexname NOT IN (SELECT conname FROM pg_constraint) "
                "ORDER BY indexname"
            ),
            {"tables": list(tables)},
        ).all()
    return [(row.indexname, row.indexdef) for row in rows]


def seeded_posts(engine: Engine) -> int | None:
    """How many posts this benchmark's seed put here, or None if it holds anything else."""
    with engine.connect() as connection:
        posts = connection.scalar(text("SELECT count(*) FROM posts")) or 0
        users = connection.scalar(text("SELECT count(*) FROM users")) or 0
        prolific = connection.scalar(text("SELECT count(*) FROM posts WHERE user_id = 1")) or 0
    if posts == 0 and users == 0:
        return 0
    return posts if users == posts // 10 and prolific >= posts // 10 else None


def seed(engine: Engine, posts: int, *, force: bool) -> None:
    found = seeded_posts(engine)
    if found == posts and not force:
        print(f"  already seeded: {posts:,} posts")
        return
    if found is None and not force:
        raise SystemExit(
            f"{engine.url.render_as_string()} holds data this benchmark did not seed: "
            "pass --reseed to replace it, or point DATABASE_URL elsewhere."
        )
    started = time.perf_counter()
    tables = ("users", "posts", "comments")
    # Loading into bare tables and building the indexes once is several times faster than
    # maintaining them row by row (the trigram GIN index above all); they come back from
    # their own definitions, so the schema is the migrations' again.
    indexes = _secondary_indexes(engine, tables)
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")  # the app's engine sets one
        for name, _definition in indexes:
            connection.exec_driver_sql(f'DROP INDEX "{name}"')
        for statement in _seed_statements(posts):
            connection.exec_driver_sql(statement.replace("%", "%%"))
        print(f"  rows loaded in {time.perf_counter() - started:.0f}s; building {len(indexes)} indexes")
        for _name, definition in indexes:
            connection.exec_driver_sql(definition)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("SET statement_timeout = 0")
        for table in tables:
            connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
    print(f"  seeded {posts // 10:,} users, {posts:,} posts in {time.perf_counter() - started:.0f}s")


# -- the requests ---------------------------------------------------------------------


@dataclass
class Request:
    key: str
    label: str
    url: str
    statuses: tuple[int, ...] = (200,)


def _cursor_at(app: Flask, client: FlaskClient, engine: Engine, path: str, position: int) -> str:
    """The cursor that resumes ``path`` (posts by id) after its live row number ``position``.

    Built from the row itself, not from an offset page: an offset that deep is what the
    lists refuse beyond their count cap.
    """
    with engine.connect() as connection:
        post_id = connection.scalar(
            text("SELECT id FROM posts WHERE deleted_at IS NULL ORDER BY id OFFSET :skip LIMIT 1"),
            {"skip": position - 1},
        )
    item = client.get(f"/api/v1/posts/{post_id}").get_json()
    lister = PostReadRepository.lister
    sort = parse_sort("id", lister.allowed)
    key = lister.decode_key(sort, [item[sort_key.name] for sort_key in sort])
    with app.test_request_context(f"{path}?per_page={PER_PAGE}"):
        return make_cursor("posts", lister, ",".join(k.render() for k in sort), key)


def requests_for(app: Flask, client: FlaskClient, engine: Engine, posts: int) -> list[Request]:
    with engine.connect() as connection:
        live = connection.scalar(text("SELECT count(*) FROM posts WHERE deleted_at IS NULL")) or 0
        typical = connection.scalar(
            text("SELECT user_id FROM posts WHERE id > 1000 AND user_id <> 1 ORDER BY id LIMIT 1")
        )
        title = str(connection.scalar(text("SELECT title FROM posts WHERE id = 4243")))
        commented = 5 * (posts // 10)  # every fifth post has comments
    rare = next(word for word in title.split() if word not in WORDS)
    deep_page = int(live * 0.9) // PER_PAGE
    cursor = _cursor_at(app, client, engine, "/api/v1/posts", int(live * 0.9))
    return [
        Request("posts_page1", "GET /api/v1/posts (first page)", "/api/v1/posts"),
        # 400 once offsets past the count cap are refused; the cursor row below is the way there.
        Request(
            "posts_offset_90",
            "GET /api/v1/posts?page=(90% deep)",
            f"/api/v1/posts?page={deep_page}",
            (200, 400),
        ),
        Request(
            "posts_cursor_90", "GET /api/v1/posts?cursor=(90% deep)", f"/api/v1/posts?cursor={quote(cursor)}"
        ),
        Request("posts_q_common", "GET /api/v1/posts?q=engine (~5% of posts)", "/api/v1/posts?q=engine"),
        Request("posts_q_rare", f"GET /api/v1/posts?q={rare} (rare)", f"/api/v1/posts?q={rare}"),
        Request(
            "users_post_title_common",
            "GET /api/v1/users?post_title=engine",
            "/api/v1/users?post_title=engine",
        ),
        # Two common words side by side: past POST_TITLE_HITS posts from 1M on, but in
        # few users' titles, so the count must join the posts rather than walk the users.
        Request(
            "users_post_title_phrase",
            "GET /api/v1/users?post_title=card engine (~0.07%)",
            "/api/v1/users?post_title=card%20engine",
        ),
        Request(
            "users_post_title_rare",
            f"GET /api/v1/users?post_title={rare} (rare)",
            f"/api/v1/users?post_title={rare}",
        ),
        Request("prolific_posts", "GET /api/v1/users/1/posts (10% of posts)", "/api/v1/users/1/posts"),
        Request("typical_posts", "GET /api/v1/users/{typical}/posts", f"/api/v1/users/{typical}/posts"),
        Request("post_by_id", "GET /api/v1/posts/{id}", f"/api/v1/posts/{posts // 2 + 1}"),
        Request("post_comments", "GET /api/v1/posts/{id}/comments", f"/api/v1/posts/{commented}/comments"),
    ]


# -- measuring ------------------------------------------------------------------------


@dataclass
class Statement:
    sql: str
    database_ms: float
    plan: list[str]


@dataclass
class Measured:
    key: str
    label: str
    status: int
    wall_ms: float
    samples: int
    statements: list[Statement] = field(default_factory=list)

    @property
    def database_ms(self) -> float:
        return sum(statement.database_ms for statement in self.statements)


def _capture(engines: list[Engine], call: Callable[[], Any]) -> tuple[Any, list[tuple[str, Any]]]:
    """What ``call`` returns, and the SELECTs it sent on any of ``engines`` (the app's
    primary and its read engine), with their parameters."""
    captured: list[tuple[str, Any]] = []
    caller = threading.get_ident()

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if threading.get_ident() == caller and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, parameters))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        result = call()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    return result, captured


def _plan_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    """A plan node and its children, one line each: what ran, on what, how many rows, the
    time and the pages it touched."""
    what = node["Node Type"]
    if "Relation Name" in node:
        what += f" on {node['Relation Name']}"
    if "Index Name" in node:
        what += f" using {node['Index Name']}"
    for key in ("Index Cond", "Recheck Cond", "Filter", "Hash Cond", "Join Filter", "Sort Key"):
        if key in node:
            value = node[key] if isinstance(node[key], str) else ", ".join(node[key])
            what += f" [{key}: {value}]"
    loops = node.get("Actual Loops", 1)
    stats = f"rows={node.get('Actual Rows')} (est {node.get('Plan Rows')})"
    if loops != 1:
        stats += f" loops={loops}"
    stats += f" time={node.get('Actual Total Time', 0):.2f}ms"
    hit, read = node.get("Shared Hit Blocks", 0), node.get("Shared Read Blocks", 0)
    stats += f" buffers hit={hit} read={read}"
    if node.get("Workers Launched"):
        stats += f" workers={node['Workers Launched']}"
    removed = node.get("Rows Removed by Filter")
    if removed:
        stats += f" removed_by_filter={removed}"
    lines = [f"{'  ' * depth}-> {what}  {stats}"]
    for child in node.get("Plans", []):
        lines.extend(_plan_lines(child, depth + 1))
    return lines


def explain(engine: Engine, sql: str, parameters: Any, runs: int) -> Statement:
    times: list[float] = []
    plan: list[str] = []
    with engine.connect() as connection:
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        for _ in range(runs):
            started = time.perf_counter()
            result = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", parameters
            ).scalar_one()[0]
            times.append(result["Planning Time"] + result["Execution Time"])
            plan = _plan_lines(result["Plan"])
            if result.get("JIT"):
                jit = result["JIT"]["Timing"]["Total"]
                plan.append(f"JIT: {jit:.1f} ms of it")
            if time.perf_counter() - started > 2:
                break  # one run is enough for a statement that slow
        connection.rollback()
    return Statement(" ".join(sql.split()), statistics.median(times), plan)


def measure(
    client: FlaskClient,
    engine: Engine,
    engines: list[Engine],
    request: Request,
    *,
    repeats: int,
    runs: int,
    budget_s: float,
) -> Measured:
    response, captured = _capture(engines, lambda: client.get(request.url))
    if response.status_code not in request.statuses:
        raise SystemExit(
            f"GET {request.url} answered {response.status_code}: {response.get_data(as_text=True)}"
        )
    samples: list[float] = []
    spent = 0.0
    while len(samples) < repeats and (spent < budget_s or len(samples) < 2):
        started = time.perf_counter()
        status = client.get(request.url).status_code
        elapsed = time.perf_counter() - started
        if status != response.status_code:
            raise SystemExit(f"GET {request.url} answered {status}, then {response.status_code}")
        samples.append(elapsed * 1000)
        spent += elapsed
    statements = [explain(engine, sql, parameters, runs) for sql, parameters in captured]
    return Measured(
        request.key, request.label, response.status_code, statistics.median(samples), len(samples), statements
    )


def bench_app(url: str, settings: dict[str, Any]) -> Flask:
    ensure_database(url)
    app = create_app(
        Config(
            {
                "DATABASE_URL": url,
                "LOG_LEVEL": "ERROR",
                "RATELIMIT_ENABLED": "false",
                "JOBS_WORKER": "none",  # its poller's SELECTs would mix with the requests'
                "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
                **settings,
            }
        )
    )
    with app.app_context():
        flask_migrate.upgrade()
    return app


def run_size(base_url: str, size: str, args: argparse.Namespace) -> list[Measured]:
    url = make_url(base_url).set(database=f"{make_url(base_url).database}_{size}").render_as_string(False)
    print(f"\n== {size}: {url}")
    settings = dict(setting.split("=", 1) for setting in args.setting)
    app = bench_app(url, settings)
    engine = app.extensions["database"].engine
    seed(engine, SIZES[size], force=args.reseed)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # Statistics a migration added since the seed (CREATE STATISTICS) are empty until
        # ANALYZE; outside a transaction, so they are kept (an uncommitted ANALYZE is not).
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.exec_driver_sql("ANALYZE")
        # The planner settings `make up` and `make cluster-up` give the app's database
        # (docs/database-settings.md), unless the server's own are asked for.
        name = engine.url.database
        for setting in ("jit", "max_parallel_workers_per_gather"):
            if args.server_defaults:
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" RESET {setting}')
            else:
                value = "off" if setting == "jit" else "0"
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET {setting} = {value}')
    app.extensions["database"].dispose()  # new connections take the database's settings
    if args.seed_only:
        app.extensions["database"].dispose()
        return []
    client = app.test_client()
    chosen = [
        r for r in requests_for(app, client, engine, SIZES[size]) if not args.only or r.key in args.only
    ]
    results = []
    for request in chosen:
        measured = measure(
            client,
            engine,
            app.extensions["database"].engines,
            request,
            repeats=args.repeats,
            runs=args.runs,
            budget_s=args.budget,
        )
        results.append(measured)
        print(
            f"  {measured.label:<58} {measured.status} {measured.wall_ms:>9.2f} ms/request "
            f"(n={measured.samples}), database {measured.database_ms:>9.2f} ms "
            f"in {len(measured.statements)} statement(s)"
        )
        if args.plans:
            for statement in measured.statements:
                print(f"     {statement.database_ms:9.2f} ms  {statement.sql[:400]}")
                for line in statement.plan:
                    print(f"         {line}")
    app.extensions["database"].dispose()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"lists-{size}-{stamp}.json").write_text(
        json.dumps([asdict(m) | {"database_ms": m.database_ms} for m in results], indent=2)
    )
    return results


def print_table(by_size: dict[str, list[Measured]]) -> None:
    sizes = list(by_size)
    base = {m.key: m for m in by_size[sizes[0]]}
    print(f"\nms per request (wall, test client) / database ms (EXPLAIN ANALYZE); ratio to {sizes[0]}")
    print("| request | " + " | ".join(sizes) + " | database ratio |")
    print("| --- |" + " ---: |" * (len(sizes) + 1))
    for key, first in base.items():
        cells, ratios = [], []
        for size in sizes:
            found = next((m for m in by_size[size] if m.key == key), None)
            if found is None:
                cells.append("")
                continue
            status = "" if found.status == 200 else f" ({found.status})"
            cells.append(f"{found.wall_ms:.1f} / {found.database_ms:.2f}{status}")
            if size != sizes[0]:
                ratio = found.database_ms / first.database_ms if first.database_ms else float("nan")
                ratios.append(f"{ratio:.1f}x")
        print(f"| {first.label} | " + " | ".join(cells) + f" | {', '.join(ratios)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100k,1m", help="comma-separated, of 100k, 1m, 5m (default 100k,1m)"
    )
    parser.add_argument("--only", action="append", default=[], help="a request key (repeatable)")
    parser.add_argument("--repeats", type=int, default=7, help="timed requests per request (default 7)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timing per request at most")
    parser.add_argument("--runs", type=int, default=3, help="EXPLAIN ANALYZE runs per statement (default 3)")
    parser.add_argument("--plans", action="store_true", help="print every statement's plan")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--reseed", action="store_true", help="replace whatever the databases hold")
    parser.add_argument(
        "--server-defaults",
        action="store_true",
        help="the server's jit and parallel workers, not those docs/database-settings.md sets",
    )
    parser.add_argument(
        "--setting", action="append", default=[], help="an app setting, NAME=value (repeatable)"
    )
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")
    base_url = normalize_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    if make_url(base_url).get_backend_name() != "postgresql":
        parser.error("the benchmark runs on PostgreSQL: set DATABASE_URL to a postgresql:// URL")
    by_size = {size: run_size(base_url, size, args) for size in sizes}
    if not args.seed_only:
        print_table(by_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
