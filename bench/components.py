"""Instructions of single operations of a GET, beside the raw app's equivalents.

What bench.instructions counts per request, split into the pieces that separate the app
from the raw Flask + psycopg2 app (bench/README.md, "Where the rest of the GET user gap
goes"). Each operation runs ``--repetitions`` and twice as many times under callgrind,
in one process with the app built as bench.instructions builds it; the difference, per
repetition, is the figure.

    python -m bench.components                 # every operation
    python -m bench.components checkout raw_checkout
"""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import Callable
from typing import Any

from bench.instructions import callgrind_total
from config import normalize_database_url

RAW_USER_BY_ID = (
    "SELECT id, email, full_name, is_active, version, created_at, updated_at "
    "FROM users WHERE id = %s AND deleted_at IS NULL"
)


def operations(url: str) -> dict[str, Callable[[], Any]]:
    """Each operation, ready to repeat; the app's read pool and the raw app's pool warm."""
    from psycopg2.pool import ThreadedConnectionPool

    from bench.instructions import build
    from bench.run import dsn
    from webapp.core.dumpers import compile_dump
    from webapp.core.lists import PageRequest, parse_sort
    from webapp.resources.posts.repository import PostReadRepository
    from webapp.resources.posts.schemas import PostSchema
    from webapp.resources.users.repository import UserReadRepository

    database = build("app", url).extensions["database"]
    database.engine  # noqa: B018 -- builds the engines, the GET read pool's among them
    read_engine = database._request_read_engine
    assert read_engine is not None
    held = read_engine.connect()
    users, posts = UserReadRepository(held), PostReadRepository(held)
    page = posts.page(PageRequest(sort=parse_sort(None, posts.lister.allowed), per_page=20)).items
    schema = PostSchema()
    dump_post = compile_dump(schema)
    raw_pool = ThreadedConnectionPool(2, 2, dsn(url))
    raw = raw_pool.getconn()
    raw.autocommit = True

    def raw_checkout() -> None:
        connection = raw_pool.getconn()
        connection.autocommit = True
        raw_pool.putconn(connection)

    def raw_select() -> None:
        with raw.cursor() as cursor:
            cursor.execute(RAW_USER_BY_ID, (5,))
            cursor.fetchall()

    return {
        # The request's read Connection: engine.connect() and close().
        "checkout": lambda: read_engine.connect().close(),
        # The pool alone (no Connection object), and its queue alone.
        "pool_checkout": lambda: read_engine.pool.connect().close(),
        "raw_checkout": raw_checkout,
        # GET by id's SELECT: the app's (Connection.execute, a row by name), raw.
        "read_by_id": lambda: users.get_live(5),
        "raw_select": raw_select,
        # A page of 20 posts with their authors to dicts: compiled (the app), marshmallow's own.
        "dump_page": lambda: [dump_post(post) for post in page],
        "marshmallow_page": lambda: schema.dump(page, many=True),
    }


def repeat(url: str, name: str, count: int) -> None:
    """The child: warm up, then run the operation ``count`` times."""
    operation = operations(url)[name]
    for _ in range(50):
        operation()
    gc.collect()
    gc.freeze()
    for _ in range(count):
        operation()


def instructions(url: str, name: str, count: int) -> int:
    return callgrind_total("bench.components", [name, "--url", url, "--repetitions", str(count)])


NAMES = (
    "checkout",
    "pool_checkout",
    "raw_checkout",
    "read_by_id",
    "raw_select",
    "dump_page",
    "marshmallow_page",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(NAMES)} (default: all)")
    parser.add_argument(
        "--url",
        default=normalize_database_url(
            os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/bench"
        ),
    )
    parser.add_argument("--repetitions", type=int, default=300)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.names) - set(NAMES)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    args.names = args.names or list(NAMES)
    if args.child:
        repeat(args.url, args.names[0], args.repetitions)
        return
    for name in args.names:
        low = instructions(args.url, name, args.repetitions)
        high = instructions(args.url, name, 2 * args.repetitions)
        print(f"{name}: {(high - low) / args.repetitions / 1000:,.0f} thousand instructions")


if __name__ == "__main__":
    main()
