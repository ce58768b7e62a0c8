"""Prometheus metrics: what requests, pools, rate limits, idempotency and jobs do, at /metrics.

``install_metrics`` adds, when METRICS_ENABLED (the default):

- an observer on the request log's middleware (observability.RequestLog) that counts each
  answer and its latency by route template, method and status class, and adds the SQL
  statements and time the request log already counted for the request;
- pool listeners on each engine with a pool of its own (checked out, overflow, size);
- the ``/metrics`` answer itself, in front of Flask, for peers in METRICS_ALLOW_IPS only
  and never for a request that came through a proxy (it carries X-Forwarded-For).

Under gunicorn, PROMETHEUS_MULTIPROC_DIR (set by scripts/prod.sh) makes every worker
write its values to files there and /metrics answers their sum; gunicorn.conf.py's
``child_exit`` drops a dead worker's gauges. The job figures (from the jobs table) and
the replicas' lag (from each replica) are read by whichever process answers the scrape.
A Celery worker serves its own figures (worker.py). docs/operations.md lists every metric.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine
from sqlalchemy.pool import QueuePool

from webapp.core.context import current_flask_app
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.core.db.replicas import lsn_key, replica_label, replica_lag
from webapp.core.jobs import service as jobs_service
from webapp.core.metrics import instruments
from webapp.core.metrics.repository import job_counts
from webapp.core.observability import SqlStats, request_log_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

EXTENSION = "webapp_metrics"
PATH = "/metrics"
# A route label for requests no rule matched (404, 405): one label, however many paths.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# "<id:user_id>" -> "{user_id}": the templates as the OpenAPI document writes them.
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# The jobs table is read at scrape time: a slow database must not make the scrape hang.
JOBS_QUERY_TIMEOUT_S = 2
# So is each replica's lag: each wait on a replica that is down or hung (connect, statement)
# ends after this long.
REPLICA_QUERY_TIMEOUT_S = 2


def install_metrics(app: Flask, database: Database) -> None:
    """Counting and /metrics, unless METRICS_ENABLED is false (then neither, at no cost)."""
    if not app.config.get("METRICS_ENABLED", True):
        return
    allowed = tuple(ipaddress.ip_network(part, strict=False) for part in app.config["METRICS_ALLOW_IPS"])
    recorder = RequestMetrics()
    app.extensions[EXTENSION] = recorder
    request_log_of(app).observe = recorder.observe
    SAMPLER.add(recorder)
    app.extensions[jobs_service.OBSERVE] = record_job_run
    database.on_engine_created(lambda engine: watch_pool(database, engine))
    app.wsgi_app = MetricsEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, allowed, [JobsCollector(database), ReplicaLagCollector(database)]
    )


class Series:
    """One (route, method, status class) and its instruments."""

    __slots__ = ("duration", "requests", "sql_seconds", "statements")

    def __init__(self, route: str, method: str, status: str) -> None:
        self.duration = instruments.REQUEST_DURATION.labels(route, method, status)
        self.requests = instruments.REQUESTS.labels(route, method, status)
        self.statements = instruments.SQL_STATEMENTS.labels(route, method)
        self.sql_seconds = instruments.SQL_SECONDS.labels(route, method)


class RequestMetrics:
    """Counts one answered request: called by the request log as the status is sent.

    The latency is observed at once (the histogram needs each value). The three counters
    are added up here and written to their instruments each second by the Sampler, and
    before every scrape: each write of a prometheus-client value takes a lock and, under
    gunicorn, a memory-mapped file; three per request cost more than the 5% of a GET
    by id the metrics may (bench/README.md).
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], Series] = {}
        self._routes: dict[str, str] = {}
        self._lock = threading.Lock()
        # Per series: [requests, statements, SQL seconds] since the last flush.
        self._pending: dict[Series, list[float]] = {}

    def observe(self, environ: WSGIEnvironment, status: str, stats: SqlStats, elapsed: float) -> None:
        # The request Flask made for this environ (werkzeug's populate_request) carries
        # the rule that matched; none for a 404/405 or an answer from outside Flask.
        request = environ.get("werkzeug.request")
        rule = request.url_rule if request is not None else None
        route = self._route(rule.rule) if rule is not None else UNMATCHED
        method = environ.get("REQUEST_METHOD", "GET")
        key = (route, method if method in _METHODS else "other", status[0])
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, Series(key[0], key[1], f"{key[2]}xx"))
        series.duration.observe(elapsed)
        with self._lock:
            pending = self._pending.get(series)
            if pending is None:
                self._pending[series] = [1, stats.count, stats.seconds]
            else:
                pending[0] += 1
                pending[1] += stats.count
                pending[2] += stats.seconds
        if not SAMPLER.running:
            SAMPLER.start()

    def flush(self) -> None:
        """Write the counts added up since the last flush to the counters."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for series, (requests, statements, sql_seconds) in pending.items():
            series.requests.inc(requests)
            if statements:
                series.statements.inc(statements)
                series.sql_seconds.inc(sql_seconds)

    def _route(self, rule: str) -> str:
        label = self._routes.get(rule)
        if label is None:
            label = self._routes[rule] = _CONVERTER.sub(r"{\1}", rule)
        return label


def watch_pool(database: Database, engine: Engine) -> None:
    """Report one of the app's pools in the pool gauges (Sampler)."""
    engines = database.engines
    if any(engine is candidate for candidate in engines):  # not the readiness probe's engine
        SAMPLER.watch(engine, pool_name(engine, engines))


class Sampler:
    """Each second, in a daemon thread of the process: the request counters' flush, and the
    pool gauges set from the pools' own counts. The process answering a scrape does the
    same at once, and a process that exits normally once more (atexit).

    Sampling, not pool events: a checkout and checkin listener would cost every request
    two gauge writes, for a figure Prometheus reads every 15 s or so anyway.
    """

    INTERVAL_S = 1.0

    def __init__(self) -> None:
        self._engines: list[tuple[weakref.ref[Engine], str]] = []
        self._recorders: weakref.WeakSet[RequestMetrics] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.running = False
        # A forked child (a gunicorn worker of a preloaded app) has no thread of its parent's.
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self.tick)

    def add(self, recorder: RequestMetrics) -> None:
        self._recorders.add(recorder)

    def watch(self, engine: Engine, name: str) -> None:
        with self._lock:
            self._engines.append((weakref.ref(engine), name))
        self.start()
        self.tick()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self.running = True
        threading.Thread(target=self._run, name="webapp-metrics", daemon=True).start()

    def tick(self) -> None:
        for recorder in list(self._recorders):
            recorder.flush()
        self.sample_pools()

    def sample_pools(self) -> None:
        """Each pool's checked-out, overflow and size, summed per pool name."""
        totals: dict[str, list[int]] = {}
        with self._lock:
            self._engines = [(ref, name) for ref, name in self._engines if ref() is not None]
            watched = [(ref(), name) for ref, name in self._engines]
        for engine, name in watched:
            # engine.pool, not a pool kept from before: dispose() gives the engine a new one.
            pool = engine.pool if engine is not None else None
            if not isinstance(pool, QueuePool):
                continue
            figures = totals.setdefault(name, [0, 0, 0])
            figures[0] += pool.checkedout()
            figures[1] += max(0, pool.overflow())
            figures[2] += pool.size()
        for name, (checked_out, overflow, size) in totals.items():
            instruments.POOL_CHECKED_OUT.labels(name).set(checked_out)
            instruments.POOL_OVERFLOW.labels(name).set(overflow)
            instruments.POOL_SIZE.labels(name).set(size)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self.running = False

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL_S)
            try:
                self.tick()
            except Exception:  # figures a second older must not end the sampling
                log.warning("metrics: writing the sampled figures failed", exc_info=True)


SAMPLER = Sampler()


def pool_name(engine: Engine, engines: Sequence[Engine]) -> str:
    """primary (the app's pool), primary_reads (PostgreSQL's autocommit reads), replica host:port."""
    if engine is engines[0]:
        return "primary"
    if engine.url == engines[0].url:
        return "primary_reads"
    return f"replica {replica_label(engine)}"


class JobsCollector(Collector):
    """Jobs by state, retrying, waiting in the outbox, and the oldest due job's wait,
    read from the jobs table when scraped (the same figures from every instance)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("webapp_jobs_scrape_ok", "1 if the job figures below were read, else 0.")
        try:
            engine = self.database.probe_engine(JOBS_QUERY_TIMEOUT_S)
            with engine.connect() as connection:
                _bound_statements(connection, JOBS_QUERY_TIMEOUT_S)
                now = utcnow()
                counts = job_counts(connection, now)
        except Exception:  # database down, table not migrated: answer without the job figures
            log.warning("metrics: reading the jobs table failed", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("webapp_jobs", "Jobs in the jobs table, by state.", labels=["state"])
        for state in ("queued", "running", "succeeded", "failed"):
            jobs.add_metric([state], counts.by_state.get(state, 0))
        for state, count in sorted(counts.by_state.items()):
            if state not in ("queued", "running", "succeeded", "failed"):
                jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "webapp_jobs_retrying",
            "Queued jobs that failed at least once and wait for another attempt.",
            value=counts.retrying,
        )
        yield GaugeMetricFamily(
            "webapp_jobs_outbox_waiting",
            "Queued jobs not yet handed to the broker (the outbox's backlog; with a broker only).",
            value=counts.unpublished,
        )
        oldest = counts.oldest_due
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        yield GaugeMetricFamily(
            "webapp_jobs_oldest_due_seconds",
            "How long the longest-waiting runnable job has waited (0 when none waits).",
            value=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
        )


class ReplicaLagCollector(Collector):
    """Each replica's lag, asked of the replica itself when scraped, on a connection of its own.

    At scrape time, not from what routing learns: routing asks only when reads come, keeps
    a yes or no (and reuses it for a moment), and each worker knows only its own reads; a
    replica that serves none, or that routing has stopped trying, would report nothing or
    an old figure. A scrape costs one connection and one statement per replica (and one
    on the primary, for its WAL position), each wait bounded by REPLICA_QUERY_TIMEOUT_S.

    Seconds are the lag as routing judges it against DB_REPLICA_MAX_LAG_MS (replicas.py).
    Bytes are the primary's WAL position less the replica's replayed one: they also grow
    for a replica that has stopped receiving WAL, which the seconds cannot see (0 when it
    has replayed all it received; docs/scaling.md, "Known gap"). The primary is read first,
    so a replica that replays in between reads as 0, never as behind.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterable[Metric]:
        seconds = GaugeMetricFamily(
            "webapp_db_replica_lag_seconds",
            "How far behind each replica is, as routing judges it against DB_REPLICA_MAX_LAG_MS.",
            labels=["replica"],
        )
        lag_bytes = GaugeMetricFamily(
            "webapp_db_replica_lag_bytes",
            "The primary's WAL position less each replica's replayed position.",
            labels=["replica"],
        )
        up = GaugeMetricFamily(
            "webapp_db_replica_up",
            "1 if the replica answered as a replica that has replayed WAL, else 0.",
            labels=["replica"],
        )
        # Without replicas the families are empty: nothing is asked of any database.
        probes = self.database.replica_probe_engines(REPLICA_QUERY_TIMEOUT_S)
        primary = self._primary_position() if probes else None
        for engine in probes:
            label = replica_label(engine)
            try:
                with engine.connect() as connection:
                    _bound_statements(connection, REPLICA_QUERY_TIMEOUT_S)
                    lag = replica_lag(connection)
            except Exception:  # a replica down or hung: the gauge says so, the scrape goes on
                log.warning("metrics: reading the lag of replica %s failed", label, exc_info=True)
                lag = None
            up.add_metric([label], 0 if lag is None else 1)
            if lag is None:
                continue
            seconds.add_metric([label], lag.seconds)
            if primary is not None:
                lag_bytes.add_metric([label], max(0, lsn_key(primary) - lsn_key(lag.replayed)))
        yield seconds
        yield lag_bytes
        yield up

    def _primary_position(self) -> str | None:
        try:
            with self.database.probe_engine(REPLICA_QUERY_TIMEOUT_S).connect() as connection:
                _bound_statements(connection, REPLICA_QUERY_TIMEOUT_S)
                return str(connection.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar_one())
        except Exception:  # the primary away: the lag in bytes is left out, the seconds stay
            log.warning("metrics: reading the primary's WAL position failed", exc_info=True)
            return None


def _bound_statements(connection: Connection, seconds: int) -> None:
    """A statement timeout for this transaction only: through PgBouncer there are no startup options."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {seconds * 1000}")


class MetricsEndpoint:
    """WSGI middleware: GET /metrics for allowed peers; every other request passes through.

    In front of Flask: a scrape is not a request of the API (no session, hooks or request
    line), and the check costs other requests one string comparison.
    """

    def __init__(
        self,
        app: WSGIApplication,
        allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
        collectors: Sequence[Collector],
    ) -> None:
        self.app = app
        self.allowed = allowed
        # What is read from the databases when scraped (the process's own values are in exposition()).
        self.scraped = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self.scraped.register(collector)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        if not self._may_scrape(environ):
            # As if there were nothing here: the same answer as any unknown path.
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = b'{"title":"Method Not Allowed","status":405}'
            start_response(
                "405 METHOD NOT ALLOWED",
                [
                    ("Content-Type", "application/problem+json"),
                    ("Allow", "GET, HEAD"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        SAMPLER.tick()
        body = exposition() + generate_latest(self.scraped)
        start_response(
            "200 OK",
            [
                ("Content-Type", CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def _may_scrape(self, environ: WSGIEnvironment) -> bool:
        # Behind the edge every request comes from loopback: a forwarded one is refused
        # whatever its peer (the edge also answers /metrics with a 404 itself).
        if "HTTP_X_FORWARDED_FOR" in environ or "HTTP_FORWARDED" in environ:
            return False
        try:
            peer = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
        except ValueError:  # a Unix socket has no address
            return False
        return any(peer in network for network in self.allowed)


def exposition() -> bytes:
    """The process's metrics, or with PROMETHEUS_MULTIPROC_DIR every worker's, summed."""
    return generate_latest(process_registry())


def process_registry() -> CollectorRegistry:
    """What to answer from: with PROMETHEUS_MULTIPROC_DIR every process's values in its
    files, summed when collected; else this process's own."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def record_rate_limited(limit: str) -> None:
    """One request refused by the limit held in the setting ``limit``."""
    if EXTENSION in current_flask_app().extensions:
        instruments.RATE_LIMITED.labels(limit).inc()


def record_job_run(kind: str, outcome: str, seconds: float | None) -> None:
    """One job attempt over (jobs.service.OBSERVE), written at once: beside the job's own
    transactions two metric writes are nothing, and a pool process may exit any time."""
    instruments.JOB_RUNS.labels(kind, outcome).inc()
    if seconds is not None:
        instruments.JOB_DURATION.labels(kind).observe(seconds)


def record_idempotent_replay() -> None:
    if EXTENSION in current_flask_app().extensions:
        instruments.IDEMPOTENT_REPLAYS.inc()
