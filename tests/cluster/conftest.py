"""A primary, a streaming replica and PgBouncer for the session, from scripts/cluster.sh.

The cluster lives in a temporary folder on free ports, so it never meets a developer's
`make cluster-up` (.cluster/, 55432/55433/56432) nor the system PostgreSQL. Tests here
talk to the databases directly (psycopg2): the app is not involved yet.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster.sh"
# Short enough that a test can outlast it in a moment; the script's default is 30s.
STATEMENT_TIMEOUT = "1s"
LOCK_TIMEOUT = "500ms"
IDLE_TX_TIMEOUT = "5s"


@dataclass
class Cluster:
    bouncer_url: str
    primary_url: str
    replica_url: str
    env: dict[str, str] = field(repr=False)

    @property
    def edge_url(self) -> str:
        """nginx in front of the cluster's two app instances (scripts/prod.sh)."""
        return f"http://127.0.0.1:{self.env['CLUSTER_APPS_PORT']}"

    @property
    def edge_access_log(self) -> Path:
        return Path(self.env["CLUSTER_DIR"]) / "apps" / "nginx" / "access.log"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=90, check=check
        )

    def connect(self, url: str, *, autocommit: bool = True, **kwargs: Any) -> Any:
        connection = psycopg2.connect(url, connect_timeout=3, **kwargs)
        connection.autocommit = autocommit
        return connection


def _free_ports(count: int) -> list[int]:
    # Bound together so the kernel cannot hand out the same port twice.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _parse_exports(stdout: str) -> dict[str, str]:
    urls = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            urls[name] = value
    return urls


def _cannot_start(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run the cluster tests: {reason}")
    pytest.skip(f"the local cluster cannot start: {reason}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    # mkdtemp is private to its creator; the servers run as the postgres OS user when we
    # are root, and must reach their data folders inside it.
    folder = Path(tempfile.mkdtemp(prefix="webapp-cluster-"))
    folder.chmod(0o755)
    primary_port, replica_port, bouncer_port, apps_port, redis_port, worker_metrics_port = _free_ports(6)
    env = dict(
        os.environ,
        CLUSTER_DIR=str(folder / "cluster"),
        CLUSTER_PRIMARY_PORT=str(primary_port),
        CLUSTER_REPLICA_PORT=str(replica_port),
        CLUSTER_BOUNCER_PORT=str(bouncer_port),
        # The edge on apps_port, the two app instances on the two ports after it.
        CLUSTER_APPS_PORT=str(apps_port),
        # The Redis the apps' Celery worker takes jobs from.
        CLUSTER_REDIS_PORT=str(redis_port),
        CLUSTER_WORKER_METRICS_PORT=str(worker_metrics_port),
        CLUSTER_STATEMENT_TIMEOUT=STATEMENT_TIMEOUT,
        CLUSTER_LOCK_TIMEOUT=LOCK_TIMEOUT,
        CLUSTER_IDLE_TX_TIMEOUT=IDLE_TX_TIMEOUT,
    )
    env.pop("REPLICA_APPLY_DELAY", None)
    env.pop("CELERY_BROKER_URL", None)
    try:
        started = subprocess.run(
            [str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        started = subprocess.CompletedProcess([str(SCRIPT), "up"], 1, "", str(exc))
    urls = _parse_exports(started.stdout)
    cluster = None
    if started.returncode == 0 and len(urls) == 3:
        cluster = Cluster(
            bouncer_url=urls["DATABASE_URL"],
            primary_url=urls["DATABASE_PRIMARY_URL"],
            replica_url=urls["DATABASE_REPLICA_URLS"],
            env=env,
        )
    try:
        if cluster is None:
            _cannot_start(f"scripts/cluster.sh up exited {started.returncode}: {started.stderr[-2000:]}")
        assert cluster is not None
        yield cluster
    finally:
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def wait_until() -> Callable[..., float]:
    def wait(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
        """Poll until predicate() holds; return the seconds it took."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                pytest.fail(f"{what} did not happen within {timeout}s")
            time.sleep(0.05)
        return time.monotonic() - start

    return wait


# The suite-wide autouse fixtures build the app and clean its tables; nothing here uses
# the app, so these tests run without TEST_DATABASE_URL and without creating it.
@pytest.fixture(autouse=True)
def _clean_tables() -> None:
    return None


@pytest.fixture(scope="session", autouse=True)
def _no_transaction_left_open_at_the_end() -> None:
    return None
