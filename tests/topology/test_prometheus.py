"""`make prod METRICS=1`: a real Prometheus scrapes every instance, and answers for it.

Its own topology (two gunicorn instances, nginx, Prometheus on free ports, scraping every
second), started and stopped by scripts/prod.sh as `make prod METRICS=1` and `make
prod-down` do. Without Prometheus (and no way to install it) the tests are skipped,
except in CI.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.topology.conftest import PROD_SH, _free_port, _nginx_available, _unavailable

pytestmark = pytest.mark.proxy


@dataclass(frozen=True)
class Monitored:
    port: int
    app_ports: tuple[int, ...]
    prometheus_port: int
    worker_metrics_port: int
    run_dir: Path

    def get(self, port: int, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through Prometheus's HTTP API: its result vector."""
        status, body = self.get(
            self.prometheus_port, "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        )
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def _two_free_ports() -> int:
    """A port free along with the next one: APP_PORT and APP_PORT+1 for two instances."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")


def _prometheus_available() -> bool:
    return shutil.which("prometheus") is not None or Path("/usr/bin/prometheus").exists()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    run_dir = Path(tempfile.mkdtemp(prefix="webapp-metrics-"))
    run_dir.chmod(0o755)
    database = tmp_path_factory.mktemp("metrics-db") / "metrics.db"
    app_port = _two_free_ports()
    topology = Monitored(_free_port(), (app_port, app_port + 1), _free_port(), _free_port(), run_dir)
    env = {
        **os.environ,
        "PORT": str(topology.port),
        "APP_PORT": str(app_port),
        "APP_INSTANCES": "2",
        "METRICS": "1",
        "PROMETHEUS_PORT": str(topology.prometheus_port),
        "PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "WORKER_METRICS_PORT": str(topology.worker_metrics_port),
        "CELERY_CONCURRENCY": "1",
        # Sign-ups mail a verification link: into files here, not the checkout's instance/.
        "MAIL_DIR": str(run_dir / "mailbox"),
        "PROD_RUN_DIR": str(run_dir),
        "DATABASE_URL": f"sqlite:///{database}",
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "FLASK_SKIP_DOTENV": "1",
        "WEB_CONCURRENCY": "2",
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    try:
        started = subprocess.run(
            [str(PROD_SH), "up"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if started.returncode != 0:
            if not _nginx_available() or not _prometheus_available():
                _unavailable(f"nginx or prometheus is missing and could not be installed:\n{started.stderr}")
            pytest.fail(f"scripts/prod.sh up failed ({started.returncode}):\n{started.stderr}")
        assert started.stdout.strip() == f"http://127.0.0.1:{topology.port}"
        assert f"Prometheus: http://127.0.0.1:{topology.prometheus_port}" in started.stderr
        yield topology
    finally:
        subprocess.run([str(PROD_SH), "down"], env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)


def _eventually(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_prometheus_counts_the_requests_sent_through_the_edge(monitored: Monitored) -> None:
    for _ in range(12):
        assert monitored.get(monitored.port, "/health/live")[0] == 200
    promql = 'sum(webapp_http_requests_total{route="/health/live", status="2xx"})'

    def counted() -> float:
        result = monitored.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    assert _eventually(lambda: counted() >= 12) is True
    assert counted() == 12


def test_prometheus_scrapes_every_instance(monitored: Monitored) -> None:
    def instances() -> set[str]:
        return {sample["metric"]["instance"] for sample in monitored.query('up{job="webapp"} == 1')}

    expected = {f"127.0.0.1:{port}" for port in monitored.app_ports}
    assert _eventually(lambda: instances() == expected) is True


def test_prometheus_scrapes_the_worker_and_counts_the_jobs_it_ran(monitored: Monitored) -> None:
    signup = urllib.request.Request(
        f"http://127.0.0.1:{monitored.port}/api/v1/users",
        data=json.dumps(
            {"email": "scraped@example.com", "full_name": "S", "password": "password123"}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(signup, timeout=10) as answer:
        assert answer.status == 201  # and a verification mail, which the worker sends

    def worker_up() -> bool:
        return bool(monitored.query('up{job="webapp-worker"} == 1'))

    def succeeded() -> float:
        result = monitored.query('sum(webapp_job_runs_total{job="webapp-worker", outcome="succeeded"})')
        return float(result[0]["value"][1]) if result else 0.0

    assert _eventually(worker_up) is True
    assert _eventually(lambda: succeeded() >= 1) is True


def test_prometheus_loaded_the_alert_rules(monitored: Monitored) -> None:
    status, body = monitored.get(monitored.prometheus_port, "/api/v1/rules")

    assert status == 200
    names = {rule["name"] for group in json.loads(body)["data"]["groups"] for rule in group["rules"]}
    assert len(names) == 5
    assert "WebappJobsWaiting" in names


def test_the_edge_answers_metrics_with_a_404_and_gunicorn_only_to_loopback(monitored: Monitored) -> None:
    through_edge, edge_body = monitored.get(monitored.port, "/metrics")
    encoded, _ = monitored.get(monitored.port, "/%6detrics")
    direct, direct_body = monitored.get(monitored.app_ports[0], "/metrics")

    assert through_edge == 404
    assert json.loads(edge_body)["status"] == 404
    assert encoded == 404
    assert direct == 200
    assert b"webapp_http_requests_total" in direct_body
