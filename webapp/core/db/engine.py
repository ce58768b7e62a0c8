"""Engine construction from settings: lazy, bounded waits, per-dialect tuning."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool, QueuePool

# Execution option naming how a SQLite transaction begins. Writers take the write lock
# at BEGIN (IMMEDIATE, the default) so concurrent writers queue on the busy timeout
# instead of failing with "database is locked" when a reader upgrades; read-only
# sessions begin DEFERRED and, with WAL, run beside a writer.
SQLITE_BEGIN = "sqlite_begin"
# Execution option of the engines that only read (GET/HEAD, lookups on the primary): a
# compiled INSERT/UPDATE/DELETE sent through one of them raises (database.py).
READ_ONLY_ENGINE = "webapp_read_only"

log = logging.getLogger(__name__)


def build_engine(
    settings: dict[str, Any], *, autocommit_reads: bool = False, database_url: str | None = None
) -> Engine:
    """Create (but do not connect) the engine described by the app's settings.

    ``autocommit_reads`` builds the PostgreSQL engine of GET/HEAD requests (see
    Database.engine): a pool of its own whose connections stay in autocommit, without
    pre-ping, because a safe request that loses its connection is retried (core/read_retry.py).
    ``database_url`` replaces DATABASE_URL (a replica; the primary, for migrations).
    """
    url = make_url(database_url or settings["DATABASE_URL"])
    echo = bool(settings.get("SQL_ECHO", False))
    options: dict[str, Any] = {
        "echo": echo,
        "pool_pre_ping": bool(settings.get("DB_POOL_PRE_PING", True)) and not autocommit_reads,
        "pool_recycle": int(settings.get("DB_POOL_RECYCLE", 1800)),
        # Error messages (and so logs) must not carry bound values: password hashes, emails.
        # SQL_ECHO is the development switch that asks for them: with it on, the echo and
        # error messages show parameters, which is the point of turning it on.
        "hide_parameters": not echo,
    }
    # get_pool_class is DefaultDialect API, not part of the typed Dialect protocol.
    dialect_class: Any = url.get_dialect()
    pool_class = dialect_class.get_pool_class(url)
    if issubclass(pool_class, QueuePool):
        options["pool_size"] = int(settings.get("DB_POOL_SIZE", 5))
        options["max_overflow"] = int(settings.get("DB_MAX_OVERFLOW", 5))
        options["pool_timeout"] = float(settings.get("DB_POOL_TIMEOUT", 5.0))

    if url.get_backend_name() == "postgresql":
        options["connect_args"] = _postgresql_connect_args(settings)
        if autocommit_reads:
            options["isolation_level"] = "AUTOCOMMIT"
            options["execution_options"] = {READ_ONLY_ENGINE: True}
            # An autocommit connection holds no transaction to roll back on its way back to
            # the pool: SQLAlchemy's docs name this case for turning the reset off.
            options["pool_reset_on_return"] = None
            if "options" in options["connect_args"]:
                # The server's own guard for a pool that only reads: any write, text SQL
                # included, fails with "cannot execute ... in a read-only transaction".
                # Through PgBouncer there are no startup options; the compiled-DML guard
                # (database.py) still holds there.
                options["connect_args"]["options"] += " -c default_transaction_read_only=on"
        engine = create_engine(url, **options)
        if not settings.get("DB_SESSION_OPTIONS", True):
            _warn_if_timeouts_are_off(engine)
    elif url.get_backend_name() == "sqlite":
        lock_timeout_s = int(settings.get("DB_LOCK_TIMEOUT_MS", 3_000)) / 1000
        options["connect_args"] = {"timeout": lock_timeout_s, "check_same_thread": False}
        engine = create_engine(url, **options)
        _configure_sqlite(engine, url)
    else:
        engine = create_engine(url, **options)
    return engine


def build_probe_engine(settings: dict[str, Any], budget_s: int, *, database_url: str | None = None) -> Engine:
    """An engine for readiness probes: no pool to wait for, each wait bounded by ``budget_s``.

    A fresh connection per probe, apart from the request pools: a saturated pool means
    the app is busy, not that the database is gone, and an orchestrator that reads it
    as "down" restarts a healthy process at the worst moment. ``database_url`` replaces
    DATABASE_URL (a replica, for the metrics' lag figures).
    """
    url = make_url(database_url or settings["DATABASE_URL"])
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {
            # libpq's smallest real connect timeout is 2 s (it reads 1 as 2).
            "connect_timeout": max(2, budget_s),
            "application_name": "webapp-probe",
        }
        # Through PgBouncer (DB_SESSION_OPTIONS off) startup options are refused and the probe
        # would report a healthy database as down; its SELECT still runs under a SET LOCAL
        # statement_timeout (core/health.py ping).
        if settings.get("DB_SESSION_OPTIONS", True):
            connect_args["options"] = (
                f"-c statement_timeout={budget_s * 1000} -c lock_timeout={budget_s * 1000}"
            )
    elif url.get_backend_name() == "sqlite":
        connect_args = {"timeout": budget_s, "check_same_thread": False}
    else:
        connect_args = {}
    return create_engine(url, poolclass=NullPool, connect_args=connect_args, hide_parameters=True)


def _postgresql_connect_args(settings: dict[str, Any]) -> dict[str, Any]:
    server_options = [
        f"-c statement_timeout={int(settings.get('DB_STATEMENT_TIMEOUT_MS', 30_000))}",
        f"-c lock_timeout={int(settings.get('DB_LOCK_TIMEOUT_MS', 10_000))}",
        # A worker that dies mid-request must not pin locks forever.
        "-c idle_in_transaction_session_timeout=60000",
    ]
    connect_args = {
        # libpq reads 0 (or less) as "wait forever": an outage would hang every worker.
        "connect_timeout": max(1, int(settings.get("DB_CONNECT_TIMEOUT", 3))),
        "application_name": "webapp",
        "options": " ".join(server_options),
        # A server that vanishes without a TCP reset (host down, network partition) would
        # leave a query waiting for hours; keepalives notice within about a minute.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if not settings.get("DB_SESSION_OPTIONS", True):
        # PgBouncer in transaction mode refuses `options`: the role's or database's own
        # settings rule instead (docs/scaling.md). SET LOCAL per transaction would cost a
        # round trip per write and cannot reach autocommit reads at all.
        del connect_args["options"]
    return connect_args


def _warn_if_timeouts_are_off(engine: Engine) -> None:
    """Without startup options, say once if the server lets statements wait forever."""

    @event.listens_for(engine, "first_connect")
    def _check(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
            settings = dict(zip(("statement_timeout", "lock_timeout"), cursor.fetchone(), strict=True))
        finally:
            cursor.close()
            dbapi_connection.rollback()  # no transaction left open on a pooled connection
        unlimited = [name for name, value in settings.items() if value == "0"]
        if unlimited:
            log.warning(
                "DB_SESSION_OPTIONS is off and %s is 0 on %s: set it with ALTER ROLE/DATABASE ... SET",
                " and ".join(unlimited),
                engine.url.render_as_string(hide_password=True),
            )


def _configure_sqlite(engine: Engine, url: URL) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT (used by nested units of
    # work), so SQLAlchemy's documented recipe takes BEGIN over.
    in_memory = url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")
