"""The app's database handle: a lazily built engine and the per-request session registry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, has_request_context
from sqlalchemy import Connection, Engine, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from webapp.core.context import current_flask_app, current_request
from webapp.core.db.base import Base
from webapp.core.db.engine import READ_ONLY_ENGINE, SQLITE_BEGIN, build_engine, build_probe_engine
from webapp.core.db.replicas import ReplicaSet

log = logging.getLogger(__name__)

T = TypeVar("T")


# Session.info key: a safe-method request's session, which must not write (on PostgreSQL
# it has no transaction, so a write there would be committed statement by statement).
READ_ONLY = "webapp.read_only"
# Session.info key: a safe-method request's session picks its replica on first use.
ROUTE_TO_REPLICA = "webapp.route_to_replica"
# request.environ keys: the request's Session (request_session()), a safe-method
# request's read connection (request_reader()), and the mark of a request whose view is
# running (set by the app's dispatch). One per request, not per thread: gthread workers
# reuse threads and gevent runs many requests on one; the environ is made per request and
# outlives nothing but its request. (A scoped_session keyed by the request went through
# a LocalProxy on every lookup, bench/README.md.)
SESSION = "webapp.session"
READER = "webapp.reader"
IN_VIEW = "webapp.in_view"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# What reads take: a safe request's Connection, or the Session of a request that writes
# (its reads must see its own uncommitted changes). Both answer execute/scalar/scalars.
Reader = Session | Connection


class WriteInReadOnlyRequest(RuntimeError):
    """A GET/HEAD/OPTIONS request tried to write: a bug in the view, never the client's."""


def forbid_writes_in_read_only_sessions(factory: sessionmaker[Session]) -> None:
    @event.listens_for(factory, "before_flush")
    def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
        if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
            raise WriteInReadOnlyRequest("a GET/HEAD/OPTIONS request must not write")

    @event.listens_for(factory, "do_orm_execute")
    def _before_execute(state: ORMExecuteState) -> None:
        if state.session.info.get(READ_ONLY) and (state.is_insert or state.is_update or state.is_delete):
            raise WriteInReadOnlyRequest("a GET/HEAD/OPTIONS request must not write")


def forbid_writes_on_read_engines(engine: Engine) -> None:
    """Refuse compiled DML on connections whose engine carries READ_ONLY_ENGINE.

    A dialect event, not a ConnectionEvents one (those build a dispatcher per Connection,
    bench/README.md); inserted first, because the SQL timers run the cursor themselves and
    stop the chain. Text SQL is not compiled DML: on PostgreSQL the read pool also sets
    default_transaction_read_only (engine.py), which the server enforces for everything.
    """

    def guard(_cursor: Any, _statement: Any, _parameters: Any, context: DefaultExecutionContext) -> None:
        if context.execution_options.get(READ_ONLY_ENGINE) and (
            context.isinsert or context.isupdate or context.isdelete
        ):
            raise WriteInReadOnlyRequest("a GET/HEAD/OPTIONS request must not write")

    def guard_no_params(cursor: Any, statement: Any, context: DefaultExecutionContext) -> None:
        guard(cursor, statement, None, context)

    event.listen(engine, "do_execute", guard, insert=True)
    event.listen(engine, "do_executemany", guard, insert=True)
    event.listen(engine, "do_execute_no_params", guard_no_params, insert=True)


class RoutingSession(Session):
    """A Session that, when asked to, binds itself to a replica before its first statement.

    Deciding on first use, not when the request starts, keeps requests that never touch
    the database (OpenAPI, 404s) free of the replica check.
    """

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine | Connection:
        route: Callable[[], Engine | None] | None = self.info.pop(ROUTE_TO_REPLICA, None)
        if route is not None:
            self.bind = route() or self.bind
        return super().get_bind(mapper, **kw)


class Database:
    """Owns the engine (built on first use), the session factory and the request registry.

    It also has the shape Flask-Migrate's env.py expects (``metadata``, ``engine``,
    ``get_engine()``), so migrations run without Flask-SQLAlchemy.
    """

    def __init__(self, metadata: MetaData = Base.metadata) -> None:
        self.metadata = metadata
        self._settings: dict[str, Any] = {}
        self._engine: Engine | None = None
        self._read_engine: Engine | None = None
        self._request_read_engine: Engine | None = None
        self._engines: list[Engine] = []
        self._probe_engine: Engine | None = None
        self._replica_probe_engines: list[Engine] | None = None
        self._engine_lock = threading.Lock()
        self._engine_callbacks: list[Callable[[Engine], None]] = []
        self._replicas: ReplicaSet | None = None
        self._migration_engine: Engine | None = None
        # The WAL position the current request must see on a replica (read_your_writes.py).
        self.required_position: Callable[[], str | None] = lambda: None
        # Objects stay usable after commit: responses are serialized after the hook
        # commits, and reloading every attribute would cost a SELECT per object.
        self.session_factory: sessionmaker[Session] = sessionmaker(
            class_=RoutingSession, expire_on_commit=False
        )
        forbid_writes_in_read_only_sessions(self.session_factory)

    def init_app(self, app: Flask) -> None:
        self._settings = app.config
        app.extensions["database"] = self

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    settings = dict(self._settings)
                    engine = build_engine(settings)
                    self.session_factory.configure(bind=engine)
                    # Made once: an option engine built per request is work on every GET.
                    forbid_writes_on_read_engines(engine)
                    self._read_engine = engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
                    self._request_read_engine = engine.execution_options(
                        **{SQLITE_BEGIN: "DEFERRED", READ_ONLY_ENGINE: True}
                    )
                    if engine.dialect.name == "postgresql" and settings.get("DB_READS_AUTOCOMMIT", True):
                        # GET/HEAD/OPTIONS write nothing: in autocommit psycopg2 sends no
                        # BEGIN and COMMIT. A pool of its own, not an isolation_level
                        # option on this one: switching a pooled connection to autocommit
                        # and back cost more than the BEGIN/COMMIT it saved (docs/architecture.md).
                        self._request_read_engine = build_engine(settings, autocommit_reads=True)
                        forbid_writes_on_read_engines(self._request_read_engine)
                    self._engines = [engine]
                    if self._request_read_engine.pool is not engine.pool:
                        self._engines.append(self._request_read_engine)
                    if settings.get("DATABASE_REPLICA_URLS"):
                        self._replicas = self._build_replicas(settings, engine)
                        self._engines.extend(self._replicas.engines)
                    for built in self._engines:
                        for callback in self._engine_callbacks:
                            callback(built)
                    self._engine = engine
        return self._engine

    @staticmethod
    def _build_replicas(settings: dict[str, Any], primary: Engine) -> ReplicaSet:
        if primary.dialect.name != "postgresql":
            raise ValueError("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL")
        # The same kind of engine as the primary's GET/HEAD reads: autocommit, a pool each.
        engines = [
            build_engine(settings, autocommit_reads=True, database_url=url)
            for url in settings["DATABASE_REPLICA_URLS"]
        ]
        for engine in engines:
            forbid_writes_on_read_engines(engine)
        return ReplicaSet(
            engines,
            int(settings.get("DB_REPLICA_MAX_LAG_MS", 10_000)),
            int(settings.get("DB_REPLICA_CHECK_REUSE_MS", 100)),
        )

    @property
    def has_replicas(self) -> bool:
        self.engine  # noqa: B018 -- builds every engine on first use
        return self._replicas is not None

    @property
    def migration_engine(self) -> Engine:
        """Where migrations run: DATABASE_PRIMARY_URL (the primary, not a pooler) if set."""
        primary_url = self._settings.get("DATABASE_PRIMARY_URL")
        if not primary_url:
            return self.engine
        with self._engine_lock:
            if self._migration_engine is None:
                self._migration_engine = build_engine(dict(self._settings), database_url=primary_url)
        return self._migration_engine

    def current_wal_position(self) -> str:
        """The primary's WAL position now: one autocommit statement, no BEGIN/COMMIT."""
        self.engine  # noqa: B018 -- builds every engine on first use
        assert self._request_read_engine is not None
        with self._request_read_engine.connect() as connection:
            return str(connection.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar_one())

    @property
    def engines(self) -> list[Engine]:
        """Every engine with a pool of its own, once built: the app's, on PostgreSQL the
        autocommit one of GET/HEAD requests, then each replica's. Empty until first use."""
        return list(self._engines)

    def on_engine_created(self, callback: Callable[[Engine], None]) -> None:
        """Run ``callback(engine)`` for each engine once it exists, before its first connection.

        The hook point for engine events (observability attaches its SQL timers here),
        so this package never imports what listens to it.
        """
        with self._engine_lock:
            self._engine_callbacks.append(callback)
            engines = list(self._engines)
        for engine in engines:
            callback(engine)

    def probe_engine(self, budget_s: int) -> Engine:
        """The readiness probe's engine: outside every pool, built on first use."""
        if self._probe_engine is None:
            self.engine  # noqa: B018 -- callbacks registered for the app's engines see this one too
            with self._engine_lock:
                if self._probe_engine is None:
                    probe = build_probe_engine(dict(self._settings), budget_s)
                    for callback in self._engine_callbacks:
                        callback(probe)
                    self._probe_engine = probe
        return self._probe_engine

    def replica_probe_engines(self, budget_s: int) -> list[Engine]:
        """One probe engine per replica (as probe_engine, outside every pool), in
        DATABASE_REPLICA_URLS's order; empty without replicas. Built on first use."""
        if self._replica_probe_engines is None:
            self.engine  # noqa: B018 -- callbacks registered for the app's engines see these too
            with self._engine_lock:
                if self._replica_probe_engines is None:
                    settings = dict(self._settings)
                    probes = [
                        build_probe_engine(settings, budget_s, database_url=url)
                        for url in settings.get("DATABASE_REPLICA_URLS") or ()
                    ]
                    for probe in probes:
                        for callback in self._engine_callbacks:
                            callback(probe)
                    self._replica_probe_engines = probes
        return list(self._replica_probe_engines)

    def get_engine(self) -> Engine:
        return self.engine

    @property
    def read_engine(self) -> Engine:
        """The same engine and pool, for sessions that only read (SQLite begins DEFERRED)."""
        self.engine  # noqa: B018 -- builds both engines on first use
        assert self._read_engine is not None
        return self._read_engine

    def new_session(self, *, read_only: bool = False) -> Session:
        """A session of its own, for code outside the request registry."""
        return self.session_factory(bind=self.read_engine if read_only else self.engine)

    def read_on_primary(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a connection of the primary's read pool, outside the request's transaction.

        For lookups that must see the latest commit (a token issued a moment ago, which a
        lagging replica has not replayed) and must not open the request's transaction
        early: on PostgreSQL the autocommit pool (no BEGIN), on SQLite a DEFERRED read (no
        write lock). Once more on a fresh connection if the pooled one turned out dead:
        that pool has no pre-ping (reads retry instead, read_retry.py), and a lookup that
        failed there has written nothing.
        """
        self.engine  # noqa: B018 -- builds the engines on first use
        assert self._request_read_engine is not None
        for attempt in (1, 2):
            with self._request_read_engine.connect() as connection:
                try:
                    return work(connection)
                except sa_exc.DBAPIError as error:
                    if attempt == 2 or not error.connection_invalidated:
                        raise
                    log.warning("a pooled read connection was dead; reading once more on a fresh one")
        raise AssertionError("unreachable")

    def request_session(self, *, read_only: bool | None = None) -> Session:
        """The current request's session, created on first call (no connection yet).

        It is read-only (writes raise) when ``read_only`` says so or, by default, when the
        request's method is safe; ``read_only`` only applies when this call creates it.
        """
        current = current_request()
        environ = current.environ
        session: Session | None = environ.get(SESSION)
        if session is not None:
            return session
        if read_only is None:
            read_only = current.method in SAFE_METHODS
        engine = self.engine
        session = self.session_factory(bind=self._request_read_engine if read_only else engine)
        if read_only:
            session.info[READ_ONLY] = True
            replicas = self._replicas
            if replicas is not None:
                session.info[ROUTE_TO_REPLICA] = lambda: replicas.choose(self.required_position())
        environ[SESSION] = session
        return session

    def request_reader(self) -> Reader:
        """What the current request reads with.

        A safe-method request reads on a Connection of its own from the read pool (a
        replica's when routed), checked out on first call and held until the response:
        no Session, no ORM objects, one transaction owner (nobody: it cannot write). A
        request that writes reads through its Session, so it sees its own changes.
        """
        current = current_request()
        environ = current.environ
        reader: Connection | None = environ.get(READER)
        if reader is not None:
            return reader
        if current.method not in SAFE_METHODS:
            return self.request_session()
        self.engine  # noqa: B018 -- builds every engine on first use
        assert self._request_read_engine is not None
        reader = None
        if self._replicas is not None:
            # Checked on the connection the request then reads on: one checkout, not two.
            reader = self._replicas.connect(self.required_position())
        if reader is None:
            reader = self._request_read_engine.connect()
        environ[READER] = reader
        return reader

    def active_request_reader(self) -> Connection | None:
        """The safe request's read connection if it has checked one out, else None."""
        if has_request_context():
            reader: Connection | None = current_request().environ.get(READER)
            return reader
        return None

    def release_request_reader(self) -> None:
        """Hand the request's read connection back to its pool; never raises."""
        reader: Connection | None = current_request().environ.pop(READER, None)
        if reader is None:
            return
        try:
            reader.close()
        except Exception:  # close() can raise on a connection the server dropped: not the answer's concern
            log.warning("releasing the read connection failed; it is discarded", exc_info=True)

    def active_request_session(self) -> Session | None:
        """The request's session if this request has opened one, else None."""
        if has_request_context():
            session: Session | None = current_request().environ.get(SESSION)
            return session
        return None

    def discard_request_session(self) -> None:
        """Roll back and drop the request's session (e.g. its connection died); never raises."""
        session: Session | None = current_request().environ.pop(SESSION, None)
        if session is None:
            return
        try:
            session.close()
        except Exception:  # teardown must never raise: the response has been sent
            log.warning("discarding the request session failed", exc_info=True)

    def dispose(self) -> None:
        for engine in self._engines:
            engine.dispose()
        if self._probe_engine is not None:
            self._probe_engine.dispose()
        for probe in self._replica_probe_engines or ():
            probe.dispose()
        if self._migration_engine is not None:
            self._migration_engine.dispose()


def in_view() -> bool:
    """Whether a view of this app is running (not a bare request context, as tests push)."""
    return has_request_context() and bool(current_request().environ.get(IN_VIEW))


def current_database() -> Database:
    database: Database = current_flask_app().extensions["database"]
    return database


def get_session() -> Session:
    """The session of the request being handled."""
    return current_database().request_session()


def get_reader() -> Reader:
    """What the request being handled reads with (Database.request_reader)."""
    return current_database().request_reader()
