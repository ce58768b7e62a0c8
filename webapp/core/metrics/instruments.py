"""The process's Prometheus instruments: one set per process, whatever the number of apps.

prometheus-client registers each metric once in its default registry; under gunicorn
with PROMETHEUS_MULTIPROC_DIR set (docs/operations.md) every worker writes its values to
files in that folder, and /metrics sums them. Label values are bounded sets: route
templates (never raw paths), methods, status classes, pool and limit names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# A *_created sample per series says when this process first counted it: a third more
# series to store, which Prometheus's rate() does not need.
disable_created_metrics()  # type: ignore[no-untyped-call]

# From a cached GET (about a millisecond) to the worker's 30 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "webapp_http_requests",
    "HTTP requests answered, by route template, method and status class.",
    ("route", "method", "status"),
)
REQUEST_DURATION = Histogram(
    "webapp_http_request_duration_seconds",
    "Time from the request reaching the app to its status being sent, commit included.",
    ("route", "method", "status"),
    buckets=LATENCY_BUCKETS,
)
SQL_STATEMENTS = Counter(
    "webapp_sql_statements",
    "SQL statements sent to the database by requests, by route template and method.",
    ("route", "method"),
)
SQL_SECONDS = Counter(
    "webapp_sql_seconds",
    "Time requests spent in the database driver's execute, by route template and method.",
    ("route", "method"),
)
# Each live process sets its own value, sampled each second; /metrics answers their sum,
# and a dead worker's value goes with it (gunicorn.conf.py's child_exit).
POOL_CHECKED_OUT = Gauge(
    "webapp_db_pool_checked_out",
    "Database connections in use, per pool, summed over the instance's workers.",
    ("pool",),
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "webapp_db_pool_overflow",
    "Connections open beyond the pools' size (DB_MAX_OVERFLOW's), summed over the workers.",
    ("pool",),
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "webapp_db_pool_size",
    "The pools' size (DB_POOL_SIZE), summed over the workers that have opened that pool.",
    ("pool",),
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter(
    "webapp_rate_limited",
    "Requests refused with 429, by the setting that holds the limit.",
    ("limit",),
)
IDEMPOTENT_REPLAYS = Counter(
    "webapp_idempotent_replays",
    "Requests answered with the stored response of an earlier one with the same Idempotency-Key.",
)
# From a mail handed to a local SMTP server to a task that runs into the jobs' lease
# (JOBS_LEASE_SECONDS, minutes).
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Written by the process that runs the job: a Celery worker's pool process (the worker's
# own endpoint, worker.py), or a web process with JOBS_WORKER=thread.
JOB_RUNS = Counter(
    "webapp_job_runs",
    "Job attempts that ran, by task kind and outcome: succeeded, failed (for good) or retried.",
    ("kind", "outcome"),
)
JOB_DURATION = Histogram(
    "webapp_job_duration_seconds",
    "Time a job's attempt took, from its claim's commit to its outcome's, by task kind.",
    ("kind",),
    buckets=JOB_BUCKETS,
)
WORKER_TASK_RETRIES = Counter(
    "webapp_worker_task_retries",
    "Celery tasks retried by Celery: the job could not be claimed or its outcome recorded.",
)
