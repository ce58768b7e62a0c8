"""One edge (nginx + gunicorn, started by scripts/prod.sh) for the whole session.

It runs exactly what `make prod` runs, on free ports, against a SQLite file in a
temporary folder. Without nginx (and no way to install it) the tests are skipped,
except in CI, where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.smtp import Inbox, smtp_server

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROD_SH = PROJECT_ROOT / "scripts" / "prod.sh"
# Not the default (1 MiB): the edge must take the app's limit, whatever it is.
MAX_CONTENT_LENGTH = 768 * 1024
# Small, so a test can reach it with a few sockets.
EDGE_CONNECTIONS_PER_CLIENT = 20


@dataclass(frozen=True)
class Edge:
    port: int
    app_port: int
    run_dir: Path
    # What scripts/prod.sh was started with (a process of the same app uses it too).
    env: dict[str, str] = field(default_factory=dict)
    # The SMTP server the edge's worker sends mail to.
    inbox: Inbox | None = None

    @property
    def access_log(self) -> Path:
        return self.run_dir / "nginx" / "access.log"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _nginx_available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI must run the proxy tests: {reason}")
    pytest.skip(reason)


# The suite's autouse fixtures clean the app's test database after every test; these
# tests never touch it (the edge has a database of its own), so they need no app at all.
@pytest.fixture(autouse=True)
def _clean_tables() -> None:
    return None


@pytest.fixture(scope="session", autouse=True)
def _no_transaction_left_open_at_the_end() -> None:
    return None


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    # Not under pytest's own temp folder: that one is private to root, and nginx's workers
    # run as an unprivileged user when we are root and must reach their temp folders.
    run_dir = Path(tempfile.mkdtemp(prefix="webapp-edge-"))
    run_dir.chmod(0o755)
    database = tmp_path_factory.mktemp("edge-db") / "edge.db"
    with smtp_server() as (mail_url, inbox):
        env = {
            **os.environ,
            "PORT": str(_free_port()),
            "APP_PORT": str(_free_port()),
            # The jobs' Redis that prod.sh starts, on a port of its own; the worker mails here.
            "REDIS_PORT": str(_free_port()),
            "WORKER_METRICS_PORT": str(_free_port()),
            "CELERY_CONCURRENCY": "1",
            "MAIL_URL": mail_url,
            "PROD_RUN_DIR": str(run_dir),
            "DATABASE_URL": f"sqlite:///{database}",
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "FLASK_SKIP_DOTENV": "1",
            # Two sync workers, one request each: the stalled-client test proves the edge,
            # not spare workers.
            "WEB_CONCURRENCY": "2",
            "RATELIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "MAX_CONTENT_LENGTH": str(MAX_CONTENT_LENGTH),
            "EDGE_CONNECTIONS_PER_CLIENT": str(EDGE_CONNECTIONS_PER_CLIENT),
        }
        env.pop("CELERY_BROKER_URL", None)
        edge = Edge(
            port=int(env["PORT"]), app_port=int(env["APP_PORT"]), run_dir=run_dir, env=env, inbox=inbox
        )
        try:
            started = subprocess.run(
                [str(PROD_SH), "up"], env=env, capture_output=True, text=True, timeout=180, check=False
            )
            if started.returncode != 0:
                if not _nginx_available():
                    _unavailable(
                        f"nginx is not installed and scripts/prod.sh could not install it:\n{started.stderr}"
                    )
                pytest.fail(f"scripts/prod.sh up failed ({started.returncode}):\n{started.stderr}")
            assert started.stdout.strip() == f"http://127.0.0.1:{edge.port}"
            yield edge
        finally:
            subprocess.run([str(PROD_SH), "down"], env=env, capture_output=True, timeout=90, check=False)
            shutil.rmtree(run_dir, ignore_errors=True)
