"""Page 1 vs a page at depth 90,000, offset and cursor mode, through the whole request path.

Seeds PostgreSQL (DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/bench,
created if missing) with 100,000 posts by COPY, then times GET /api/v1/posts through
the app's WSGI test client: A/B alternated, medians over every sample, and every
answer checked to be a 200. Run: make bench-pagination (or python -m bench.pagination).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flask_migrate
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from config import Config, normalize_database_url
from webapp import create_app
from webapp.core.lists import Lister, parse_sort
from webapp.core.lists.http import make_cursor
from webapp.resources.posts.repository import PostReadRepository

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench"
POSTS = "/api/v1/posts"
PER_PAGE = 20
DEPTH = 90_000
SORTS = ("id", "-created_at", "title")
RESULTS = Path(__file__).resolve().parent / "results"

WORDS = [
    "engine",
    "analytical",
    "difference",
    "bernoulli",
    "numbers",
    "loom",
    "jacquard",
    "card",
    "punch",
    "note",
    "menabrea",
    "algebra",
    "operation",
    "variable",
    "store",
    "mill",
    "cycle",
    "figure",
    "weaving",
    "pattern",
    "poetical",
    "science",
    "calculus",
    "symbol",
    "function",
    "table",
    "logarithm",
    "series",
    "machine",
    "gear",
    "column",
    "carriage",
    "lever",
    "number",
    "memory",
    "program",
    "loop",
    "branch",
    "condition",
    "result",
    "process",
    "input",
    "output",
    "design",
    "draft",
    "letter",
    "essay",
    "lecture",
    "review",
    "summary",
    "proof",
    "theorem",
    "lemma",
    "method",
    "theory",
    "practice",
]


# -- seeding -------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    """CREATE DATABASE if it does not exist (needs rights on the server's postgres db)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{target.database}"'))
                print(f"created database {target.database}")
    finally:
        admin.dispose()


def _coined_words(rng: random.Random, number: int) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < number:
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(3)))
    return sorted(words)


def _copy(engine: Engine, table: str, columns: list[str], rows: Iterator[list[Any]]) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if value is None else str(value) for value in row))
        buffer.write("\n")
    buffer.seek(0)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
        raw.commit()
    finally:
        raw.close()


START = datetime(2025, 1, 1, tzinfo=UTC)


def _user_rows(users: int) -> Iterator[list[Any]]:
    rng = random.Random(20261123)
    for n in range(1, users + 1):
        created = (START + timedelta(seconds=n * 7, microseconds=rng.randrange(1_000_000))).isoformat()
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {n}"
        yield [n, f"user{n}@example.com", name, "x", "true", created, created, None, 1]


def _post_rows(posts: int, users: int) -> Iterator[list[Any]]:
    rng = random.Random(20261124)
    # Titles mix common words with one rarer coined word (a name, a topic) from a
    # vocabulary of posts/5 words, so a title search can be selective or not.
    rare = _coined_words(rng, max(posts // 5, 1))
    for n in range(1, posts + 1):
        # Four posts share each timestamp (an import, a burst): ties the id must break.
        created = (START + timedelta(seconds=(n // 4) * 300, microseconds=(n // 4) % 997)).isoformat()
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(rare))
        content = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
        deleted = created if n % 50 == 0 else None
        # User 1 is a prolific author (a tenth of all posts): their lists are deep too.
        author = 1 if n % 10 == 0 else rng.randint(1, users)
        yield [n, author, " ".join(words), content, created, created, deleted, 1]


def seeded_state(engine: Engine, posts: int) -> str:
    """ "empty", "ours" (this exact seed is there) or "foreign" (somebody else's rows)."""
    users = max(posts // 10, 1)
    if not inspect(engine).has_table("posts"):
        return "empty"
    with engine.connect() as connection:
        have_posts = connection.scalar(text("SELECT count(*) FROM posts"))
        have_users = connection.scalar(text("SELECT count(*) FROM users"))
        first_title = connection.scalar(text("SELECT title FROM posts WHERE id = 1"))
    if not have_posts and not have_users:
        return "empty"
    ours = first_title == next(_post_rows(posts, users))[2]
    return "ours" if ours and have_posts == posts and have_users == users else "foreign"


def refuse_foreign_data(engine: Engine, posts: int, *, force: bool) -> None:
    """Stop before touching (migrating, truncating) a database this benchmark did not seed.

    DATABASE_URL may well name somebody's development database.
    """
    if not force and seeded_state(engine, posts) == "foreign":
        raise SystemExit(
            f"{engine.url.render_as_string()} holds users or posts this benchmark did not seed; "
            "pass --reseed to replace them, or point DATABASE_URL at a database of its own."
        )


def seed(engine: Engine, posts: int, *, force: bool = False) -> None:
    """``posts`` posts (2% soft-deleted) by posts/10 users, unless this seed is there already."""
    users = max(posts // 10, 1)
    refuse_foreign_data(engine, posts, force=force)
    if not force and seeded_state(engine, posts) == "ours":
        print(f"database already seeded: {users} users, {posts} posts")
        return
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE posts, users RESTART IDENTITY CASCADE"))
    user_columns = ["id", "email", "full_name", "hashed_password", "is_active"]
    _copy(
        engine,
        "users",
        [*user_columns, "created_at", "updated_at", "deleted_at", "version"],
        _user_rows(users),
    )
    post_columns = ["id", "user_id", "title", "content", "created_at", "updated_at", "deleted_at", "version"]
    _copy(engine, "posts", post_columns, _post_rows(posts, users))
    with engine.begin() as connection:
        for table in ("users", "posts"):
            connection.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE users"))
        connection.execute(text("VACUUM ANALYZE posts"))
    print(f"seeded {users} users and {posts} posts in {time.perf_counter() - started:.1f}s")


# -- measuring -----------------------------------------------------------------------


@dataclass
class Case:
    mode: str
    sort: str
    shallow: str  # URL of page 1 (cursor mode: the first page a cursor leads to)
    deep: str  # URL of the page that starts at row DEPTH + 1


@dataclass
class Result:
    mode: str
    sort: str
    page1_ms: float
    deep_ms: float

    @property
    def ratio(self) -> float:
        return self.deep_ms / self.page1_ms


def _get(client: FlaskClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}: {response.get_data(as_text=True)}")
    body: dict[str, Any] = response.get_json()
    return body


def cursor_after(
    app: Flask,
    client: FlaskClient,
    *,
    path: str,
    lister: Lister,
    sort: str,
    position: int,
    filters: str = "",
    per_page: int = PER_PAGE,
) -> str:
    """The cursor that resumes ``path?filters`` after row ``position`` (1-based), signed by the app."""
    resource = path.rstrip("/").rsplit("/", 1)[-1]
    query = f"{filters}&" if filters else ""
    row = _get(client, f"{path}?{query}sort={sort}&per_page=1&page={position}")["items"][0]
    keys = parse_sort(sort, lister.allowed)
    key = lister.decode_key(keys, [row[key.name] for key in keys])
    spec = ",".join(key.render() for key in keys)
    with app.test_request_context(f"{path}?{query}sort={sort}&per_page={per_page}"):
        return make_cursor(resource, lister, spec, key)


def build_cases(app: Flask, client: FlaskClient) -> list[Case]:
    cases = []
    for sort in SORTS:
        base = f"{POSTS}?sort={sort}&per_page={PER_PAGE}"
        offset = Case("offset", sort, base, f"{base}&page={DEPTH // PER_PAGE + 1}")
        first = _get(client, base)
        shallow_cursor = cursor_after(
            app, client, path=POSTS, lister=PostReadRepository.lister, sort=sort, position=PER_PAGE
        )
        if shallow_cursor != first["meta"]["next_cursor"]:
            raise SystemExit("a constructed cursor differs from the one the app hands out")
        deep_cursor = cursor_after(
            app, client, path=POSTS, lister=PostReadRepository.lister, sort=sort, position=DEPTH
        )
        cursor = Case(
            "cursor", sort, f"{base}&cursor={quote(shallow_cursor)}", f"{base}&cursor={quote(deep_cursor)}"
        )
        # Both modes must agree on what the deep page holds, or the timing means nothing.
        if _get(client, cursor.deep)["items"] != _get(client, offset.deep)["items"]:
            raise SystemExit(f"cursor and offset disagree on the page at depth {DEPTH} for sort={sort}")
        cases += [offset, cursor]
    return cases


def _time(client: FlaskClient, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return elapsed


def measure(client: FlaskClient, case: Case, rounds: int, repeats: int) -> tuple[list[float], list[float]]:
    """A/B alternated request by request (B first on odd rounds), so load drifting on a
    shared machine hits both sides alike."""
    for _ in range(3):  # warm the caches and the connection pool
        _time(client, case.shallow)
        _time(client, case.deep)
    shallow: list[float] = []
    deep: list[float] = []
    for round_number in range(rounds):
        for _ in range(repeats):
            if round_number % 2:
                deep.append(_time(client, case.deep))
                shallow.append(_time(client, case.shallow))
            else:
                shallow.append(_time(client, case.shallow))
                deep.append(_time(client, case.deep))
    return shallow, deep


def bench_app(parser: argparse.ArgumentParser, posts: int, *, force: bool, upgrade: bool = True) -> Flask:
    """The app on DATABASE_URL (PostgreSQL only), its database created and migrated to head.

    Refuses a database that holds data this benchmark did not seed, unless ``force``.
    """
    url = normalize_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    if make_url(url).get_backend_name() != "postgresql":
        parser.error("the benchmark runs on PostgreSQL: set DATABASE_URL to a postgresql:// URL")
    ensure_database(url)
    settings = Config(
        {
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
        }
    )
    app = create_app(settings)
    refuse_foreign_data(app.extensions["database"].engine, posts, force=force)
    if upgrade:
        with app.app_context():
            flask_migrate.upgrade()
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=100_000, help="posts to seed (default 100000)")
    parser.add_argument("--rounds", type=int, default=12, help="A/B rounds per case (default 12)")
    parser.add_argument("--repeats", type=int, default=5, help="requests per side per round (default 5)")
    parser.add_argument("--seed-only", action="store_true", help="seed the database and stop")
    parser.add_argument(
        "--reseed", action="store_true", help="replace whatever posts and users the database holds"
    )
    args = parser.parse_args(argv)
    if args.posts < DEPTH + 2 * PER_PAGE and not args.seed_only:
        parser.error(f"--posts must leave rows beyond depth {DEPTH}")

    app = bench_app(parser, args.posts, force=args.reseed)
    engine = app.extensions["database"].engine
    seed(engine, args.posts, force=args.reseed)
    if args.seed_only:
        return 0

    client = app.test_client()
    cases = build_cases(app, client)
    rows: list[Result] = []
    for case in cases:
        shallow, deep = measure(client, case, args.rounds, args.repeats)
        rows.append(Result(case.mode, case.sort, statistics.median(shallow), statistics.median(deep)))

    samples = args.rounds * args.repeats
    print(
        f"\nGET /api/v1/posts, per_page={PER_PAGE}, depth {DEPTH:,}; median of {samples} requests each side"
    )
    print(f"{'mode':<8} {'sort':<12} {'page 1 ms':>10} {'depth ms':>10} {'deep/page1':>11}")
    for row in rows:
        print(f"{row.mode:<8} {row.sort:<12} {row.page1_ms:>10.2f} {row.deep_ms:>10.2f} {row.ratio:>10.2f}x")
    worst = max(row.ratio for row in rows if row.mode == "cursor")
    print(f"\ncursor mode, worst deep/page1 ratio: {worst:.2f}x (goal <= 1.20x)")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"pagination-{stamp}.json").write_text(
        json.dumps([asdict(row) | {"ratio": row.ratio} for row in rows], indent=2)
    )
    app.extensions["database"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
