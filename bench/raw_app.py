"""The floor of the framework: Flask + a psycopg2 pool, hand-written SQL, no ORM,
no schemas. It serves the same JSON as the real app from the same tables, so
`make bench` can report the real app's throughput as a ratio of this one."""

from __future__ import annotations

import hashlib
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


def _problem(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"'
    return response


# The app's token check (tokens/repository.py TokenReadRepository.holder): the sha256 hex
# of the token, not revoked, not expired, issued at the user's current token generation,
# for a live, active user.
TOKEN_HOLDER = (
    "SELECT t.id, u.id, u.is_admin FROM access_tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > now() "
    "AND t.generation = u.token_generation AND u.deleted_at IS NULL AND u.is_active"
)


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


@app.post("/api/v1/posts")
def create_post() -> Response:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    holder = _query(TOKEN_HOLDER, (hashlib.sha256(token.encode()).hexdigest(),)) if token else []
    if not holder:
        return _problem(401, "Unauthorized", "The bearer token is invalid, expired or revoked.")
    body = request.get_json(silent=True)
    title = body.get("title") if isinstance(body, dict) else None
    content = body.get("content", "") if isinstance(body, dict) else None
    if not isinstance(title, str) or not 1 <= len(title) <= 200 or not isinstance(content, str):
        return _problem(422, "Unprocessable Content", "title (1..200 characters), content: strings.")
    _token_id, user_id, _is_admin = holder[0]
    connection = pool().getconn()
    try:
        connection.autocommit = False
        with connection, connection.cursor() as cursor:  # one transaction: commits on leaving
            # FOR SHARE as the app does (users/repository.py get_live_for_share): a soft
            # delete of the author waits for this insert, or is seen before it.
            cursor.execute(
                "SELECT full_name FROM users WHERE id = %s AND deleted_at IS NULL FOR SHARE", (user_id,)
            )
            author = cursor.fetchone()
            if author is None:
                return _problem(422, "Unprocessable Content", "The post's author does not exist.")
            cursor.execute(
                "INSERT INTO posts (user_id, title, content, version) VALUES (%s, %s, %s, 1) "
                "RETURNING id, version, created_at, updated_at",
                (user_id, title, content),
            )
            id_, version, created_at, updated_at = cursor.fetchone()
    finally:
        pool().putconn(connection)
    response = _json(
        {
            "id": id_,
            "title": title,
            "content": content,
            "user_id": user_id,
            "author": {"id": user_id, "full_name": author[0]},
            "version": version,
            "created_at": _ts(created_at),
            "updated_at": _ts(updated_at),
        },
        201,
    )
    response.headers["ETag"] = f'"{version}"'
    response.headers["Location"] = f"/api/v1/posts/{id_}"
    return response
