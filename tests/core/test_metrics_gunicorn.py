"""/metrics under gunicorn with two workers: one answer sums both (prometheus-client's
multiprocess mode), and a worker that dies takes its gauges with it (child_exit)."""

from __future__ import annotations

import os
import secrets
import signal
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import GunicornServer


@dataclass
class Served:
    server: GunicornServer
    metrics_dir: Path

    def get(self, path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.server.port}{path}", timeout=10) as answer:
            return answer.status, answer.read()

    def health_count(self) -> float:
        status, body = self.get("/metrics")
        assert status == 200
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "webapp_http_requests_total" and sample.labels["route"] == "/health":
                    return sample.value
        return 0.0

    def settle(self) -> None:
        """Past the workers' next flush of their request counts (webapp/core/metrics)."""
        time.sleep(1.5)

    def pids(self, kind: str) -> set[int]:
        return {int(path.stem.rsplit("_", 1)[1]) for path in self.metrics_dir.glob(f"{kind}_*.db")}


@pytest.fixture(scope="module")
def served(app: Flask, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Depends on ``app``: its fixture creates the tables the server's app reads."""
    metrics_dir = tmp_path_factory.mktemp("metrics")
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "2",
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    # Sync workers, as configured: one request at a time each, so concurrent requests reach
    # both (two gthread workers may take turns accepting, one serving everything).
    server = GunicornServer(env, tmp_path_factory.mktemp("gunicorn") / "metrics.log")
    server.start()
    try:
        yield Served(server, metrics_dir)
    finally:
        server.stop()


def test_every_scrape_sums_the_requests_of_both_workers(served: Served) -> None:
    before = served.health_count()
    sent = 0
    # Until both workers have served some: each writes its counters to a file of its own.
    with ThreadPoolExecutor(max_workers=8) as pool:
        while sent < 400 and (sent < 40 or len(served.pids("counter")) < 2):
            statuses = list(pool.map(lambda _: served.get("/health")[0], range(20)))
            assert set(statuses) == {200}
            sent += len(statuses)

    assert len(served.pids("counter")) == 2
    # Each worker writes its counts each second: then, whichever answers, it answers for both.
    served.settle()
    assert {served.health_count() - before for _ in range(6)} == {sent}


def test_a_dead_workers_gauges_leave_and_its_counts_stay(served: Served) -> None:
    for _ in range(40):
        served.get("/health")
    served.settle()
    counted = served.health_count()
    live = served.pids("gauge_livesum")
    assert live, "the workers that opened a pool keep its gauges"
    victim = sorted(live)[0]

    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while victim in served.pids("gauge_livesum") and time.monotonic() < deadline:
        time.sleep(0.1)

    assert victim not in served.pids("gauge_livesum")
    assert served.health_count() == counted + 0  # the scrape itself is not counted
