"""Settings classes, read from the environment only (never from code paths at import)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'webapp.db'}"

# The built-in key signs cursors in development only; production refuses it.
DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"
# Keys that have been published (here, in docker-compose.yml, in examples): anyone can sign with them.
KNOWN_SECRET_KEYS = frozenset({DEFAULT_SECRET_KEY, "change-me-for-anything-but-local-use"})
MIN_SECRET_KEY_LENGTH = 32

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def normalize_database_url(url: str) -> str:
    """Map the URLs providers hand out to the driver we ship (psycopg2).

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, and Heroku-style
    ``postgres://`` is not a dialect name at all.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = _int(environ, name, default)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated allowlist of origins (scheme://host[:port]); empty means none."""
    origins = tuple(part.strip() for part in environ.get(name, "").split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(
                f"{name} entries must look like https://example.com[:port] (or *), got {origin!r}"
            )
    return origins


def secret_key_problem(key: str | None) -> str | None:
    """Why ``key`` must not sign anything in production, or None if it may."""
    if not key or not key.strip():
        return "SECRET_KEY must be set in production"
    if key in KNOWN_SECRET_KEYS:
        return "SECRET_KEY is a published default: generate one, e.g. with secrets.token_urlsafe(48)"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters in production"
    return None


def _urls(raw: str) -> list[str]:
    return [normalize_database_url(url.strip()) for url in raw.split(",") if url.strip()]


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


# The span exporters this app ships: OTLP over HTTP with protobuf, and stdout.
TRACES_EXPORTER_NAMES = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"


def traces_exporters(env: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the standard OTEL_* variables ask for; () when traces are off.

    Off unless asked for: an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or an OTEL_TRACES_EXPORTER other than "none", and
    OTEL_SDK_DISABLED is not "true". (The SDK's own default exporter is OTLP to
    localhost: every process would send spans to a collector that is not there.)
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    named = [part.strip().lower() for part in env.get("OTEL_TRACES_EXPORTER", "").split(",") if part.strip()]
    if not named:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        named = ["otlp"] if endpoint and endpoint.strip() else []
    if "none" in named:
        return ()
    for name in named:
        if name not in TRACES_EXPORTER_NAMES:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER must name {' or '.join(TRACES_EXPORTER_NAMES)} (or none), got {name!r}"
            )
    if "otlp" in named:
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol.strip() != OTLP_PROTOCOL:
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL: the OTLP exporter shipped sends {OTLP_PROTOCOL} "
                f"(to port 4318), got {protocol!r}"
            )
    return tuple(dict.fromkeys(named))


class Config:
    """Base settings. Instances read the environment when created, so tests and
    the CLI can change variables before building an app."""

    TESTING = False
    DEBUG = False
    DEFAULT_DATABASE_URL = DEFAULT_SQLITE_URL

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        # Empty counts as unset: a cursor signed with an empty key could be forged by anyone.
        self.SECRET_KEY: str = env.get("SECRET_KEY") or DEFAULT_SECRET_KEY
        self.DATABASE_URL: str = normalize_database_url(env.get("DATABASE_URL") or self.DEFAULT_DATABASE_URL)
        # Past one machine (docs/scaling.md): migrations take the primary directly when
        # DATABASE_URL is a pooler; GET/HEAD read from these replicas when one is fresh enough.
        self.DATABASE_PRIMARY_URL: str = normalize_database_url(env.get("DATABASE_PRIMARY_URL") or "")
        self.DATABASE_REPLICA_URLS: list[str] = _urls(env.get("DATABASE_REPLICA_URLS") or "")
        self.DB_REPLICA_MAX_LAG_MS: int = _int(env, "DB_REPLICA_MAX_LAG_MS", 10_000)
        self.DB_REPLICA_CHECK_REUSE_MS: int = _int(env, "DB_REPLICA_CHECK_REUSE_MS", 100)
        # false behind PgBouncer (transaction mode refuses libpq's startup `options`):
        # the timeouts then come from ALTER ROLE/DATABASE ... SET.
        self.DB_SESSION_OPTIONS: bool = _bool(env, "DB_SESSION_OPTIONS", True)
        # Pool settings; applied only where the dialect's pool takes them.
        self.DB_POOL_SIZE: int = _int(env, "DB_POOL_SIZE", 5)
        self.DB_MAX_OVERFLOW: int = _int(env, "DB_MAX_OVERFLOW", 5)
        self.DB_POOL_TIMEOUT: float = _float(env, "DB_POOL_TIMEOUT", 5.0)
        self.DB_POOL_RECYCLE: int = _int(env, "DB_POOL_RECYCLE", 1800)
        self.DB_POOL_PRE_PING: bool = _bool(env, "DB_POOL_PRE_PING", True)
        # Bounded waits, so an outage answers 503 instead of hanging a worker.
        self.DB_CONNECT_TIMEOUT: int = _int(env, "DB_CONNECT_TIMEOUT", 3)
        self.DB_STATEMENT_TIMEOUT_MS: int = _int(env, "DB_STATEMENT_TIMEOUT_MS", 30_000)
        # No request waits longer than this for a row or table lock (then a 503 with Retry-After).
        self.DB_LOCK_TIMEOUT_MS: int = _int(env, "DB_LOCK_TIMEOUT_MS", 3_000)
        # Safe-method requests run without a transaction on PostgreSQL (no BEGIN/COMMIT).
        self.DB_READS_AUTOCOMMIT: bool = _bool(env, "DB_READS_AUTOCOMMIT", True)
        self.SQL_ECHO: bool = _bool(env, "SQL_ECHO", False)
        self.SLOW_QUERY_MS: float = _float(env, "SLOW_QUERY_MS", 200.0)
        self.MAX_CONTENT_LENGTH: int = _int(env, "MAX_CONTENT_LENGTH", 1024 * 1024)
        # An answer given before the body was read (413, 415, 401...) reads and drops up to
        # this much of it to keep the connection open; past that the connection closes.
        # Behind the edge, which hands over whole bodies at loopback speed, scripts/prod.sh
        # sets it to MAX_CONTENT_LENGTH (webapp/core/unread_body.py, docs/deployment.md).
        self.BODY_DRAIN_LIMIT: int = _int(env, "BODY_DRAIN_LIMIT", 64 * 1024)
        # A list's total is exact up to this many matches, and offset pages end there: the
        # COUNT reads at most this + 1 rows, whatever the table holds (docs/lists.md).
        self.LIST_COUNT_CAP: int = _positive_int(env, "LIST_COUNT_CAP", 10_000)
        self.IDEMPOTENCY_RETENTION_HOURS: float = _float(env, "IDEMPOTENCY_RETENTION_HOURS", 24.0)
        self.RETRY_AFTER_SECONDS: int = _int(env, "RETRY_AFTER_SECONDS", 5)
        self.LOG_LEVEL: str = env.get("LOG_LEVEL", "INFO").upper()
        self.LOG_FORMAT: str = _choice(env, "LOG_FORMAT", "text", ("text", "json"))
        self.PASSWORD_HASH_METHOD: str = env.get("PASSWORD_HASH_METHOD", "scrypt:32768:8:1")
        self.TOKEN_TTL_HOURS: float = _float(env, "TOKEN_TTL_HOURS", 24.0)
        # Rate limits (Flask-Limiter's rate strings). Memory is per process; set a Redis
        # URL so that every app instance counts against one shared limit.
        self.RATELIMIT_ENABLED: bool = _bool(env, "RATELIMIT_ENABLED", True)
        self.RATELIMIT_STORAGE_URI: str = env.get("RATELIMIT_STORAGE_URL") or "memory://"
        self.RATELIMIT_SIGNUP: str = env.get("RATELIMIT_SIGNUP") or "20 per minute"
        # Per account and address: one address cannot lock the owner out (5 of the 10 below).
        self.RATELIMIT_TOKEN_FAILURES_PER_EMAIL_AND_ADDRESS: str = (
            env.get("RATELIMIT_TOKEN_FAILURES_PER_EMAIL_AND_ADDRESS") or "5 per 15 minutes"
        )
        self.RATELIMIT_TOKEN_FAILURES_PER_EMAIL: str = (
            env.get("RATELIMIT_TOKEN_FAILURES_PER_EMAIL") or "10 per 15 minutes"
        )
        self.RATELIMIT_TOKEN_FAILURES_PER_ADDRESS: str = (
            env.get("RATELIMIT_TOKEN_FAILURES_PER_ADDRESS") or "30 per 15 minutes"
        )
        # Password hashes (sign-up, sign-in, password changes) per client address: scrypt is
        # slow on purpose, so this is what keeps one client from occupying every worker.
        self.RATELIMIT_PASSWORD_HASHES_PER_ADDRESS: str = (
            env.get("RATELIMIT_PASSWORD_HASHES_PER_ADDRESS") or "10 per 10 seconds"
        )
        # How many proxies in front of the app set X-Forwarded-For (nginx: 1); 0 trusts none.
        self.PROXY_FIX_X_FOR: int = _int(env, "PROXY_FIX_X_FOR", 0)
        # Which peers are those proxies (gunicorn.conf.py reads the same variable): anyone
        # else's X-Forwarded-For is ignored. "*" trusts any peer (only where nothing but
        # the proxy can reach the app, as in docker-compose.yml).
        self.FORWARDED_ALLOW_IPS: tuple[str, ...] = tuple(
            part.strip()
            for part in (env.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1").split(",")
            if part.strip()
        )
        self._read_telemetry(env)
        # Browser origins allowed to call the API; none by default (no CORS headers at all).
        self.CORS_ORIGINS: tuple[str, ...] = _origins(env, "CORS_ORIGINS")
        self._read_jobs(env)
        # Mail: SMTP when MAIL_URL is set (smtp://[user:pass@]host:port[?starttls=true],
        # smtps://...), else the log and .eml files in MAIL_DIR.
        self.MAIL_URL: str = env.get("MAIL_URL") or ""
        self.MAIL_FROM: str = env.get("MAIL_FROM") or "webapp <no-reply@localhost>"
        self.MAIL_DIR: str = env.get("MAIL_DIR") or str(PROJECT_ROOT / "instance" / "mailbox")
        self.MAIL_TIMEOUT_SECONDS: float = _float(env, "MAIL_TIMEOUT_SECONDS", 10.0)
        # Where the links in mails point (a front end's pages, or this API's host).
        self.APP_BASE_URL: str = (env.get("APP_BASE_URL") or "http://127.0.0.1:5000").rstrip("/")
        # The account lifecycle (docs/accounts.md): whether writes wait for a verified email,
        # how long the tokens mailed for it live, and how often a reset may be asked for.
        self.REQUIRE_VERIFIED_EMAIL: bool = _bool(env, "REQUIRE_VERIFIED_EMAIL", False)
        self.EMAIL_VERIFICATION_TTL_HOURS: int = _int(env, "EMAIL_VERIFICATION_TTL_HOURS", 48)
        self.PASSWORD_RESET_TTL_MINUTES: int = _int(env, "PASSWORD_RESET_TTL_MINUTES", 60)
        # Mails a client can make the server send: resets per address asked for, and
        # resets and verification resends per client address.
        self.RATELIMIT_ACCOUNT_MAILS_PER_EMAIL: str = (
            env.get("RATELIMIT_ACCOUNT_MAILS_PER_EMAIL") or "5 per hour"
        )
        self.RATELIMIT_ACCOUNT_MAILS_PER_ADDRESS: str = (
            env.get("RATELIMIT_ACCOUNT_MAILS_PER_ADDRESS") or "20 per hour"
        )

    def _read_telemetry(self, env: Mapping[str, str]) -> None:
        self._read_metrics(env)
        self._read_traces(env)

    def _read_metrics(self, env: Mapping[str, str]) -> None:
        # Prometheus metrics at /metrics (docs/operations.md), answered only to peers in
        # METRICS_ALLOW_IPS (addresses or networks) and never through a proxy.
        self.METRICS_ENABLED: bool = _bool(env, "METRICS_ENABLED", True)
        self.METRICS_ALLOW_IPS: tuple[str, ...] = tuple(
            part.strip()
            for part in (env.get("METRICS_ALLOW_IPS") or "127.0.0.1,::1").split(",")
            if part.strip()
        )
        for part in self.METRICS_ALLOW_IPS:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"METRICS_ALLOW_IPS entries must be addresses or networks (10.0.0.0/8), got {part!r}"
                ) from None
        # A Celery worker's own metrics (job attempts), on this port of WORKER_METRICS_HOST;
        # 0: none. prometheus-client's server answers whoever reaches it: keep it on loopback
        # or a private network.
        self.WORKER_METRICS_PORT: int = _int(env, "WORKER_METRICS_PORT", 0)
        if not 0 <= self.WORKER_METRICS_PORT <= 65535:
            raise ValueError(
                f"WORKER_METRICS_PORT must be a port (1-65535), or 0 for none, got {self.WORKER_METRICS_PORT}"
            )
        self.WORKER_METRICS_HOST: str = env.get("WORKER_METRICS_HOST") or "127.0.0.1"

    def _read_traces(self, env: Mapping[str, str]) -> None:
        # Traces (docs/operations.md): OpenTelemetry's own OTEL_* variables, no new ones.
        # TRACES_EXPORTERS is what they ask for; empty, nothing is traced or even loaded.
        self.TRACES_EXPORTERS: tuple[str, ...] = traces_exporters(env)
        # An exporter object in place of those (tests hand an in-memory one to an app).
        self.TRACING_EXPORTER: object | None = None

    def _read_jobs(self, env: Mapping[str, str]) -> None:
        # Background jobs (docs/jobs.md). With a broker, Celery workers run them; without
        # one, a thread in each web process does ("thread"); "none" leaves them queued for
        # `flask jobs run`.
        self.CELERY_BROKER_URL: str = env.get("CELERY_BROKER_URL") or ""
        self.JOBS_WORKER: str = _choice(
            env, "JOBS_WORKER", "celery" if self.CELERY_BROKER_URL else "thread", ("celery", "thread", "none")
        )
        self.JOBS_POLL_SECONDS: float = _float(env, "JOBS_POLL_SECONDS", 1.0)
        # A running job whose worker vanished may be claimed again after this long; the
        # Celery time limits sit below it, the broker's visibility timeout above it.
        self.JOBS_LEASE_SECONDS: float = _float(env, "JOBS_LEASE_SECONDS", 300.0)
        # How long Redis keeps a message a worker took but never acknowledged (killed)
        # before it hands it out again; kombu's default is an hour.
        self.CELERY_VISIBILITY_TIMEOUT_SECONDS: float = _float(
            env, "CELERY_VISIBILITY_TIMEOUT_SECONDS", 600.0
        )

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in dir(self) if name.isupper()}


class DevelopmentConfig(Config):
    DEBUG = True


class TestingConfig(Config):
    __test__ = False  # not a pytest test class, despite the name

    TESTING = True

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        super().__init__(env)
        self.DATABASE_URL = normalize_database_url(
            env.get("TEST_DATABASE_URL") or "sqlite:///" + str(PROJECT_ROOT / "instance" / "test.db")
        )
        # A developer's exported cluster URLs must not route the tests' reads elsewhere.
        self.DATABASE_PRIMARY_URL = ""
        self.DATABASE_REPLICA_URLS = []
        # Tests create hundreds of users; scrypt's 50 ms each would dominate the suite.
        self.PASSWORD_HASH_METHOD = env.get("PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
        # Every test signs up from one address; the rate-limit tests turn limits on.
        self.RATELIMIT_ENABLED = _bool(env, "RATELIMIT_ENABLED", False)
        # Jobs stay queued until a test runs them (run_due_jobs), unless it asks for a worker.
        self.JOBS_WORKER = _choice(env, "JOBS_WORKER", "none", ("celery", "thread", "none"))


class ProductionConfig(Config):
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        super().__init__(env)
        problem = secret_key_problem(env.get("SECRET_KEY"))
        if problem is not None:
            raise RuntimeError(problem)
        if self.SQL_ECHO:
            raise RuntimeError(
                "SQL_ECHO logs every statement with its parameters (password hashes, token "
                "digests, emails): refused in production"
            )


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> Config:
    """Build the settings named by ``name`` or ``APP_ENV`` (default: development)."""
    key = (name or os.environ.get("APP_ENV") or "development").lower()
    try:
        return CONFIGS[key]()
    except KeyError:
        raise ValueError(f"unknown APP_ENV {key!r}; expected one of {sorted(CONFIGS)}") from None
