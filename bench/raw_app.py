"""The floor of the framework: Flask + a psycopg2 pool, hand-written SQL, no ORM,
no schemas. It serves the same JSON as the real app from the same tables, so
`make bench` can report the real app's throughput as a ratio of this one."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from psycopg2.pool import ThreadedConnectionPool

DSN = os.environ.get("RAW_DSN", "postgresql://postgres@127.0.0.1:5432/bench")

app = Flask(__name__)
_pool: ThreadedConnectionPool | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadedConnectionPool:
    global _pool  # noqa: PLW0603 -- one pool per worker process, made after fork
    if _pool is None:
        # gunicorn.conf.py's gthread workers: two threads must not each make a pool (a
        # connection handed back to the other one raised "trying to put unkeyed connection").
        with _pool_lock:
            if _pool is None:
                # minconn = maxconn: psycopg2 closes a returned connection beyond minconn,
                # so with 1 every concurrent request of the 4 threads opened a new one.
                _pool = ThreadedConnectionPool(4, 4, DSN)
    return _pool


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _query(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    connection = pool().getconn()
    try:
        connection.autocommit = True  # a read needs no BEGIN/COMMIT round trips
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        pool().putconn(connection)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


@app.get("/api/v1/users/<int:user_id>")
def get_user(user_id: int) -> Response:
    rows = _query(
        "SELECT id, email, full_name, is_active, version, created_at, updated_at "
        "FROM users WHERE id = %s AND deleted_at IS NULL",
        (user_id,),
    )
    if not rows:
        return _json({"type": "about:blank", "title": "Not Found", "status": 404}, 404)
    # The app sends the email only to the user and admins; the bench reads anonymously.
    id_, _email, full_name, is_active, version, created_at, updated_at = rows[0]
    response = _json(
        {
            "id": id_,
            "full_name": full_name,
            "is_active": is_active,
            "version": version,
            "created_at": _ts(created_at),
            "updated_at": _ts(updated_at),
        }
    )
    response.headers["ETag"] = f'"{version}"'
    return response


@app.get("/api/v1/posts")
def list_posts() -> Response:
    per_page = int(request.args.get("per_page", "20"))
    rows = _query(
        "SELECT p.id, p.title, p.content, p.user_id, u.id, u.full_name, p.version, p.created_at, "
        "p.updated_at FROM posts p JOIN users u ON u.id = p.user_id WHERE p.deleted_at IS NULL "
        "ORDER BY p.id LIMIT %s",
        (per_page + 1,),
    )
    total = _query("SELECT count(*) FROM posts WHERE deleted_at IS NULL", ())[0][0]
    items = [
        {
            "id": r[0],
            "title": r[1],
            "content": r[2],
            "user_id": r[3],
            "author": {"id": r[4], "full_name": r[5]},
            "version": r[6],
            "created_at": _ts(r[7]),
            "updated_at": _ts(r[8]),
        }
        for r in rows[:per_page]
    ]
    meta = {
        "per_page": per_page,
        "next_cursor": "x" if len(rows) > per_page else None,
        "page": 1,
        "total": total,
    }
    return _json({"items": items, "meta": meta})
