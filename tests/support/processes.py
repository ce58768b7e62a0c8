"""Real processes for the jobs tests: Celery workers and a web process, started from this
checkout with their settings in the environment, killed with SIGKILL like a power cut."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]

# A Redis database of the jobs tests' own (the rate-limit tests use 15).
BROKER_URL = "redis://127.0.0.1:6379/13"


def require_redis() -> None:
    """Skip without Redis; in CI a missing Redis is a failure (.ci/run starts it)."""
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("CI must run the Celery tests: Redis is not answering on 127.0.0.1:6379")
        pytest.skip("Redis is not answering on 127.0.0.1:6379")


def flush_broker() -> None:
    redis.Redis.from_url(BROKER_URL).flushdb()


class Process:
    """A child in a session of its own (SIGKILL reaches its pool processes too), its output in a file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.output()[-4000:]
        raise AssertionError(f"{self.name} did not print {text!r} within {timeout} s:\n{tail}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown handler runs, nothing is acknowledged."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def child_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of an app process: the tests' database, the tests' broker, no .env file."""
    unset = {"DATABASE_URL", "TEST_DATABASE_URL", "DATABASE_PRIMARY_URL", "DATABASE_REPLICA_URLS"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(
        FLASK_SKIP_DOTENV="1",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=BROKER_URL,
        RATELIMIT_ENABLED="false",
        PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


@contextmanager
def processes(log_dir: Path) -> Iterator[list[Process]]:
    """Every process started into the list is stopped at the end, killed if it must be."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill()


def celery_worker(name: str, env: Mapping[str, str], log_dir: Path, *extra: str) -> Process:
    """`celery --app wsgi:celery_app worker`, as `make worker` runs it, one pool process."""
    argv = [
        sys.executable, "-m", "celery", "--app", "wsgi:celery_app", "worker",
        "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"{name}-{os.getpid()}@%h",
        "--without-mingle", "--without-gossip", *extra,
    ]  # fmt: skip
    worker = Process(name, argv, env, log_dir)
    worker.wait_for_output(" ready.")
    return worker


def web_process(env: Mapping[str, str], log_dir: Path, port: int) -> Process:
    web = Process("web", [sys.executable, "-m", "tests.support.jobs_web", str(port)], env, log_dir)
    web.wait_for_output("Running on")
    return web
