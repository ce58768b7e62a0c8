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
``child_exit`` drops a dead worker's gauges. The job figures are read from the jobs
table by whichever process answers the scrape. docs/operations.md lists every metric.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

from webapp.core.context import current_flask_app
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
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


def install_metrics(app: Flask, database: Database) -> None:
    """Counting and /metrics, unless METRICS_ENABLED is false (then neither, at no cost)."""
    if not app.config.get("METRICS_ENABLED", True):
        return
    allowed = tuple(ipaddress.ip_network(part, strict=False) for part in app.config["METRICS_ALLOW_IPS"])
    recorder = RequestMetrics()
    app.extensions[EXTENSION] = recorder
    request_log_of(app).observe = recorder.observe
    database.on_engine_created(lambda engine: watch_pool(database, engine))
    app.wsgi_app = MetricsEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, allowed, JobsCollector(database)
    )


class RequestMetrics:
    """Counts one answered request: called by the request log as the status is sent."""

    def __init__(self) -> None:
        # (route, method, status class) -> the label children, looked up once each.
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}
        self._routes: dict[str, str] = {}
        self._lock = threading.Lock()

    def observe(self, environ: WSGIEnvironment, status: str, stats: SqlStats, elapsed: float) -> None:
        # The request Flask made for this environ (werkzeug's populate_request) carries
        # the rule that matched; none for a 404/405 or an answer from outside Flask.
        request = environ.get("werkzeug.request")
        rule = request.url_rule if request is not None else None
        route = self._route(rule.rule) if rule is not None else UNMATCHED
        method = environ.get("REQUEST_METHOD", "GET")
        key = (route, method, status[0])
        children = self._children.get(key)
        if children is None:
            children = self._label(route, method, status[0])
        requests, duration, statements, sql_seconds = children
        requests.inc()
        duration.observe(elapsed)
        if stats.count:
            statements.inc(stats.count)
            sql_seconds.inc(stats.seconds)

    def _route(self, rule: str) -> str:
        label = self._routes.get(rule)
        if label is None:
            label = self._routes[rule] = _CONVERTER.sub(r"{\1}", rule)
        return label

    def _label(self, route: str, method: str, status_digit: str) -> tuple[Any, Any, Any, Any]:
        method_label = method if method in _METHODS else "other"
        status_label = f"{status_digit}xx"
        children = (
            instruments.REQUESTS.labels(route, method_label, status_label),
            instruments.REQUEST_DURATION.labels(route, method_label, status_label),
            instruments.SQL_STATEMENTS.labels(route, method_label),
            instruments.SQL_SECONDS.labels(route, method_label),
        )
        with self._lock:
            # Bounded: routes x 8 methods x 5 classes. A method outside _METHODS is keyed by
            # its own text, so past the bound it is labelled without being remembered.
            if method in _METHODS or len(self._children) < 4096:
                self._children[(route, method, status_digit)] = children
        return children


def watch_pool(database: Database, engine: Engine) -> None:
    """Checked-out and overflow gauges for one of the app's pools, kept by its events."""
    engines = database.engines
    if not any(engine is candidate for candidate in engines):
        return  # the readiness probe's engine: no pool, a connection per probe
    name = pool_name(engine, engines)
    pool = engine.pool
    size = pool.size() if isinstance(pool, QueuePool) else None
    checked_out = instruments.POOL_CHECKED_OUT.labels(name)
    overflow = instruments.POOL_OVERFLOW.labels(name)
    if size is not None:
        instruments.POOL_SIZE.labels(name).inc(size)
    lock = threading.Lock()
    # This process's connections of this pool in use; a gauge's inc/dec would do, but the
    # overflow needs the count itself, and pool.checkedout() is not yet current when the
    # checkin event fires.
    in_use = [0]

    def changed(delta: int) -> None:
        with lock:
            before = in_use[0]
            now = in_use[0] = before + delta
        checked_out.inc(delta)
        # In a QueuePool, overflow connections exist only while more than ``size`` are
        # checked out: one returned to a full pool is closed.
        if size is not None and (now > size or before > size):
            overflow.inc(max(0, now - size) - max(0, before - size))

    @event.listens_for(pool, "checkout")
    def _checkout(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        changed(1)

    @event.listens_for(pool, "checkin")
    def _checkin(_dbapi_connection: Any, _record: Any) -> None:
        changed(-1)


def pool_name(engine: Engine, engines: Sequence[Engine]) -> str:
    """primary (the app's pool), primary_reads (PostgreSQL's autocommit reads), replica host:port."""
    if engine is engines[0]:
        return "primary"
    url = engine.url
    if url == engines[0].url:
        return "primary_reads"
    return f"replica {url.host or 'local'}:{url.port or 5432}"


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
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {JOBS_QUERY_TIMEOUT_S * 1000}")
                now = utcnow()
                counts = job_counts(connection, now)
        # Any failure (database down, table not migrated yet): the scrape still answers,
        # with the request figures, and says the job figures are missing.
        except Exception:
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


class MetricsEndpoint:
    """WSGI middleware: GET /metrics for allowed peers; every other request passes through.

    In front of Flask: a scrape is not a request of the API (no session, hooks or request
    line), and the check costs other requests one string comparison.
    """

    def __init__(
        self,
        app: WSGIApplication,
        allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
        jobs: Collector,
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.jobs = CollectorRegistry(auto_describe=False)
        self.jobs.register(jobs)

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
        body = exposition() + generate_latest(self.jobs)
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
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def record_rate_limited(limit: str) -> None:
    """One request refused by the limit held in the setting ``limit``."""
    if EXTENSION in current_flask_app().extensions:
        instruments.RATE_LIMITED.labels(limit).inc()


def record_idempotent_replay() -> None:
    if EXTENSION in current_flask_app().extensions:
        instruments.IDEMPOTENT_REPLAYS.inc()
