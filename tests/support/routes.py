"""Routes that exist only in tests: they write and then fail in controlled ways."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import Engine, func, insert, select, text, update

from webapp.core.auth import Principal, public
from webapp.core.db import current_database, get_reader, get_session, unit_of_work
from webapp.core.db.mixins import utcnow
from webapp.core.http import if_match_versions
from webapp.core.idempotency.http import idempotent
from webapp.core.idempotency.model import IdempotencyRecord
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User
from webapp.resources.users.service import UserService

testing_routes = Blueprint("testing", __name__, url_prefix="/_test")

# These routes test the transaction machinery, not who may call them: they are public,
# and the services they call act as an admin.
AN_ADMIN = Principal(user_id=0, is_admin=True, credential_id=0)

# Lets a concurrency test hold several requests inside their views at once.
barrier_lock = threading.Lock()
barrier: dict[str, threading.Barrier] = {}

# Lets a test hold one idempotent request inside its view (after its write) and release it.
hold_entered = threading.Event()
hold_release = threading.Event()


@contextmanager
def commit_guard_table(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, the table whose deferred unique constraint fails a COMMIT on demand."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE commit_guard (k int, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)")
            )
    try:
        yield
    finally:
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.execute(text("DROP TABLE commit_guard"))


def _write_user(email: str) -> User:
    session = get_session()
    user = User(email=email, full_name="Written by a test route", hashed_password="x")
    session.add(user)
    session.flush()
    return user


@testing_routes.post("/write-then-raise")
@public
def write_then_raise() -> Response:
    _write_user(request.args["email"])
    raise RuntimeError("boom after the write")


@testing_routes.post("/write-then-error-status")
@public
def write_then_error_status() -> tuple[Response, int]:
    _write_user(request.args["email"])
    return jsonify(error="the view chose a 4xx after writing"), int(request.args.get("status", "422"))


@testing_routes.post("/write-then-fail-at-commit")
@public
def write_then_fail_at_commit() -> tuple[Response, int]:
    """The view succeeds; the database refuses the transaction only at COMMIT."""
    user = _write_user(request.args["email"])
    session = get_session()
    if session.get_bind().dialect.name == "postgresql":
        # A deferred unique constraint is checked at COMMIT, not at INSERT.
        session.execute(text("INSERT INTO commit_guard (k) VALUES (1), (1)"))
    else:
        # SQLite checks deferred foreign keys at COMMIT.
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        session.add(Post(user_id=2_000_000_000, title="orphan", content=""))
        session.flush()
    return jsonify(id=user.id), 201


@public
def write_user() -> tuple[Response, int]:
    user = _write_user(request.args["email"])
    return jsonify(id=user.id), 201


# The same view with and without @idempotent, to compare what the decorator costs.
testing_routes.add_url_rule("/write-user", "write_user", write_user, methods=["POST"])
testing_routes.add_url_rule(
    "/idempotent/write-user", "idempotent_write_user", idempotent(write_user), methods=["POST"]
)


@testing_routes.post("/idempotent/write-a-new-user")
@public
@idempotent
def idempotent_write_a_new_user() -> tuple[Response, int]:
    """A write no unique column guards: only the idempotency key can stop a second row."""
    user = _write_user(f"{uuid.uuid4().hex}@example.com")
    return jsonify(id=user.id), 201


@testing_routes.post("/idempotent/write-then-fail-at-commit")
@public
@idempotent
def idempotent_write_then_fail_at_commit() -> tuple[Response, int]:
    """Fails at COMMIT only when asked by a header, which is not part of the fingerprint."""
    if request.headers.get("X-Fail-At-Commit") == "1":
        return write_then_fail_at_commit()
    return write_user()


@testing_routes.post("/idempotent/hold")
@public
@idempotent
def idempotent_hold() -> tuple[Response, int]:
    response = write_user()
    hold_entered.set()
    hold_release.wait(timeout=10)
    return response


@testing_routes.post("/idempotent/lose-the-key-race")
@public
@idempotent
def idempotent_lose_the_key_race() -> tuple[Response, int]:
    """Another transaction stores this request's key while the view runs (PostgreSQL only)."""
    response = write_user()
    now = utcnow()
    with current_database().engine.begin() as connection:
        connection.execute(
            insert(IdempotencyRecord).values(
                key=request.headers["Idempotency-Key"],
                fingerprint="0" * 64,
                response_status=201,
                response_body="{}",
                response_headers={},
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    return response


@testing_routes.get("/no-database")
def no_database() -> Response:
    return jsonify(ok=True)


@testing_routes.get("/session-identity")
def session_identity() -> Response:
    session = get_session()
    session.execute(text("SELECT 1"))
    name = request.args.get("barrier")
    if name:
        barrier[name].wait(timeout=10)
    time.sleep(float(request.args.get("sleep", "0")))
    return jsonify(session=id(session), same_on_second_call=get_session() is session)


# How many times each fault route's view ran: a retried request runs its view twice.
calls: Counter[str] = Counter()


def _terminate_own_backend() -> None:
    """Kill the request's connection from another one, as an operator or a failover would."""
    pid = get_session().scalar(text("SELECT pg_backend_pid()"))
    with current_database().engine.connect() as other:
        # The timeout form waits until the backend is gone, so the next statement fails.
        other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        other.commit()


@testing_routes.route("/read-on-a-dying-connection", methods=["GET", "HEAD", "POST"])
@public
def read_on_a_dying_connection() -> Response:
    """Lose the connection on each of the first ``kills`` runs of the view, then read."""
    calls["dying"] += 1
    if calls["dying"] <= int(request.args.get("kills", "1")):
        _terminate_own_backend()
    pid = get_session().scalar(text("SELECT pg_backend_pid()"))
    return jsonify(runs=calls["dying"], pid=pid)


@testing_routes.post("/write-then-lose-connection-before-commit")
@public
def write_then_lose_connection_before_commit() -> tuple[Response, int]:
    """The view wrote and flushed; the connection dies before the hook's COMMIT."""
    user = _write_user(request.args["email"])
    _terminate_own_backend()
    return jsonify(id=user.id), 201


@testing_routes.get("/sleep")
def sleep_in_the_database() -> Response:
    """A runaway query: pg_sleep for longer than statement_timeout allows."""
    calls["sleep"] += 1
    get_session().execute(text("SELECT pg_sleep(:seconds)"), {"seconds": float(request.args["seconds"])})
    return jsonify(slept=True)


@testing_routes.post("/users/<int:user_id>/update-behind-the-orms-back")
@public
def update_behind_the_orms_back(user_id: int) -> Response:
    """A concurrent writer's commit as the ORM meets it: the row's version moved on."""
    service = UserService(get_session())
    seen = service.get(user_id)
    get_session().execute(
        update(User)
        .where(User.id == user_id)
        .values(version=User.version + 1)
        .execution_options(synchronize_session=False)
    )
    user = service.update(user_id, {"full_name": "Overwrites a newer version"}, {seen.version}, AN_ADMIN)
    return jsonify(version=user.version)


@testing_routes.patch("/users/<int:user_id>/rename-after-barrier")
@public
def rename_after_barrier(user_id: int) -> Response:
    """UserService.update with every racer holding the same version before anyone writes."""
    service = UserService(get_session())
    service.get(user_id)
    barrier[request.args["barrier"]].wait(timeout=10)
    user = service.update(user_id, {"full_name": request.args["name"]}, if_match_versions(), AN_ADMIN)
    return jsonify(version=user.version)


@testing_routes.get("/write-in-a-get")
def write_in_a_get() -> Response:
    """A buggy view: safe methods must not write."""
    _write_user(request.args["email"])
    return jsonify(ok=True)


@testing_routes.get("/insert-through-the-reader")
def insert_through_the_reader() -> Response:
    """A buggy view: a compiled INSERT sent on a GET's read connection."""
    get_reader().execute(insert(User).values(email=request.args["email"], full_name="R", hashed_password="x"))
    return jsonify(ok=True)


@testing_routes.get("/text-insert-through-the-reader")
def text_insert_through_the_reader() -> Response:
    """A buggy view: hand-written INSERT SQL on a GET's read connection (no compiled DML)."""
    get_reader().execute(
        text("INSERT INTO users (email, full_name, hashed_password) VALUES (:email, 'R', 'x')"),
        {"email": request.args["email"]},
    )
    return jsonify(ok=True)


@testing_routes.get("/unit-of-work-in-a-get")
def unit_of_work_in_a_get() -> Response:
    """A buggy view: a unit of work is for code outside requests; in a GET it cannot write."""
    with unit_of_work() as uow:
        uow.session.add(User(email=request.args["email"], full_name="U", hashed_password="x"))
    return jsonify(ok=True)


@testing_routes.get("/reader-kind")
def reader_kind() -> Response:
    """What this request reads with, and whether it made a Session."""
    reader = get_reader()
    reader.execute(select(User.__table__.c.id).limit(1))
    database = current_database()
    return jsonify(reader=type(reader).__name__, session=database.active_request_session() is not None)


@testing_routes.post("/reader-kind")
@public
def reader_kind_in_a_write() -> Response:
    """What a write request reads with: its Session, which sees its own pending rows."""
    session = get_session()
    session.add(User(email=request.args["email"], full_name="P", hashed_password="x"))
    session.flush()
    seen = get_reader().scalar(select(func.count()).select_from(User.__table__))
    return jsonify(reader=type(get_reader()).__name__, seen=seen)


@testing_routes.post("/insert-two-emails")
@public
def insert_two_emails() -> Response:
    """Insert two users in the given order, pausing between them at a named barrier.

    Two requests with the emails in opposite order deadlock on the unique index.
    """
    first, second = request.args["first"], request.args["second"]
    session = get_session()
    session.add(User(email=first, full_name="Order", hashed_password="x"))
    session.flush()
    barrier[request.args["barrier"]].wait(timeout=10)
    session.add(User(email=second, full_name="Order", hashed_password="x"))
    session.flush()
    return jsonify(ok=True), 201  # type: ignore[return-value]
