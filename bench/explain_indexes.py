"""EXPLAIN ANALYZE of the SQL the app really sends for each list the indexes are meant for.

Each scenario is one GET through the app's test client; its statements are captured
with an engine event and each is explained (ANALYZE, BUFFERS) several times. Prints the
median execution time and the plan's scan nodes. The figures of docs/indexes.md come
from here, run once at the revision before the index migration and once at head:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/dev_posts python -m bench.explain_indexes
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, text

from bench.pagination import DEPTH, POSTS, WORDS, bench_app, cursor_after, seed
from webapp.resources.posts.repository import PostReadRepository
from webapp.resources.users.repository import UserReadRepository

USERS = "/api/v1/users"


def _scenarios(app: Flask, client: FlaskClient, engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        # A typical author (median post count) and a coined title word used by a few posts.
        author = connection.scalar(
            text(
                "SELECT user_id FROM posts WHERE deleted_at IS NULL GROUP BY user_id "
                "ORDER BY count(*), user_id OFFSET 5000 LIMIT 1"
            )
        )
        title = str(connection.scalar(text("SELECT title FROM posts WHERE id = 4242")))
        rare = next(word for word in title.split() if word not in WORDS)
        users = connection.scalar(text("SELECT count(*) FROM users WHERE deleted_at IS NULL")) or 0
    posts_lister, users_lister = PostReadRepository.lister, UserReadRepository.lister

    def deep(path: str, lister: Any, sort: str, depth: int, filters: str = "") -> str:
        cursor = cursor_after(
            app, client, path=path, lister=lister, sort=sort, position=depth, filters=filters
        )
        return f"{path}?{filters + '&' if filters else ''}sort={sort}&cursor={quote(cursor)}"

    user_depth = int(users * 0.9)
    return [
        ("posts, sort=id, page 1", f"{POSTS}"),
        ("posts, sort=id, offset 90,000", f"{POSTS}?page={DEPTH // 20 + 1}"),
        ("posts, sort=id, cursor 90,000", deep(POSTS, posts_lister, "id", DEPTH)),
        ("posts, sort=-created_at, page 1", f"{POSTS}?sort=-created_at"),
        ("posts, sort=-created_at, cursor 90,000", deep(POSTS, posts_lister, "-created_at", DEPTH)),
        ("posts, sort=title, page 1", f"{POSTS}?sort=title"),
        ("posts, sort=title, cursor 90,000", deep(POSTS, posts_lister, "title", DEPTH)),
        (
            "posts, sort=title,-created_at, cursor 90,000",
            deep(POSTS, posts_lister, "title,-created_at", DEPTH),
        ),
        ("posts, user_id=U, sort=-created_at", f"{POSTS}?user_id={author}&sort=-created_at"),
        ("users/U/posts, sort=id", f"{USERS}/{author}/posts"),
        ("posts, user_id=1 (prolific), sort=-created_at", f"{POSTS}?user_id=1&sort=-created_at"),
        (
            "posts, user_id=1, sort=-created_at, cursor 7,000",
            deep(f"{POSTS}", posts_lister, "-created_at", 7_000, "user_id=1"),
        ),
        ("users/1/posts, sort=id", f"{USERS}/1/posts"),
        ("users/1/posts, sort=id, cursor 7,000", deep(f"{USERS}/1/posts", posts_lister, "id", 7_000)),
        (f"posts, q={rare} (rare)", f"{POSTS}?q={rare}"),
        ("posts, q=engine (common)", f"{POSTS}?q=engine"),
        ("posts, q=qqq (no match)", f"{POSTS}?q=qqq"),
        ("users, sort=id, page 1", f"{USERS}"),
        ("users, sort=email, page 1", f"{USERS}?sort=email"),
        (f"users, sort=email, cursor {user_depth:,}", deep(USERS, users_lister, "email", user_depth)),
        ("users, sort=full_name, page 1", f"{USERS}?sort=full_name"),
        ("users, sort=-created_at, page 1", f"{USERS}?sort=-created_at"),
        (
            f"users, sort=-created_at, cursor {user_depth:,}",
            deep(USERS, users_lister, "-created_at", user_depth),
        ),
        ("users, q=lever", f"{USERS}?q=lever"),
        ("users, email=...", f"{USERS}?email=user77@example.com"),
        (f"users, post_title={rare} (rare)", f"{USERS}?post_title={rare}"),
        ("users, post_title=engine (common)", f"{USERS}?post_title=engine"),
    ]


def _capture(client: FlaskClient, engine: Engine, url: str) -> list[tuple[str, Any]]:
    captured: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}: {response.get_data(as_text=True)}")
    return captured


def _scans(plan: dict[str, Any]) -> list[str]:
    node = plan["Node Type"]
    found = []
    if "Scan" in node:
        index = f" {plan['Index Name']}" if "Index Name" in plan else ""
        found.append(f"{node}{index} ({plan.get('Relation Name', 'bitmap')})")
    for child in plan.get("Plans", []):
        found.extend(_scans(child))
    return found


def explain(engine: Engine, statement: str, parameters: Any, runs: int) -> tuple[float, list[str]]:
    times: list[float] = []
    scans: list[str] = []
    with engine.connect() as connection:
        for _ in range(runs):
            result = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters
            ).scalar_one()
            times.append(result[0]["Execution Time"] + result[0]["Planning Time"])
            scans = _scans(result[0]["Plan"])
    return statistics.median(times), scans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="EXPLAIN ANALYZE runs per statement (default 7)")
    parser.add_argument("--no-upgrade", action="store_true", help="measure the schema as it is")
    args = parser.parse_args(argv)
    app = bench_app(parser, args.posts, force=False, upgrade=not args.no_upgrade)
    engine = app.extensions["database"].engine
    seed(engine, args.posts)
    with engine.connect() as connection:
        revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
    client = app.test_client()
    print(f"schema revision {revision}; median of {args.runs} EXPLAIN ANALYZE runs (planning + execution)")
    print(f"{'scenario':<46} {'ms':>8}  statement: scans")
    for name, url in _scenarios(app, client, engine):
        for index, (statement, parameters) in enumerate(_capture(client, engine, url)):
            ms, scans = explain(engine, statement, parameters, args.runs)
            kind = "count" if "count(*)" in statement else "page" if "LIMIT" in statement else "other"
            label = name if index == 0 else ""
            print(f"{label:<46} {ms:>8.2f}  {kind}: {'; '.join(scans)}")
    app.extensions["database"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
