"""`make prod` runs the background jobs too: its Redis, its Celery worker, the web's hand-off."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.topology.conftest import PROJECT_ROOT, Edge

pytestmark = pytest.mark.proxy


def _request(
    edge: Edge, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    try:
        connection.request(
            method, path, json.dumps(body) if body is not None else None,
            {"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        connection.close()


def _flask(edge: Edge, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=PROJECT_ROOT, env=edge.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_job_queued_through_the_edge_is_run_by_the_prod_worker_within_five_seconds(edge: Edge) -> None:
    admin = {"email": "prod-admin@example.com", "full_name": "Admin", "password": "password123"}
    assert _request(edge, "POST", "/api/v1/users", admin)[0] == 201
    _flask(edge, "users", "promote", admin["email"])
    status, _, token = _request(
        edge, "POST", "/api/v1/tokens", {"email": admin["email"], "password": "password123"}
    )
    assert status == 201
    auth = {"Authorization": f"Bearer {token['token']}"}
    items = [{"email": "queued-at-the-edge@example.com", "full_name": "Queued", "password": "password123"}]

    status, headers, job = _request(
        edge, "POST", "/api/v1/users/bulk", {"items": items}, {**auth, "Prefer": "respond-async"}
    )
    assert status == 202, job
    deadline = time.monotonic() + 5
    while job["state"] not in {"succeeded", "failed"} and time.monotonic() < deadline:
        time.sleep(0.1)
        job = _request(edge, "GET", headers["Location"], headers=auth)[2]

    assert job["state"] == "succeeded", job
    assert [user["email"] for user in job["result"]["items"]] == ["queued-at-the-edge@example.com"]


def test_a_mail_a_process_of_the_prod_app_queues_reaches_the_smtp_server_within_five_seconds(
    edge: Edge,
) -> None:
    assert edge.inbox is not None
    # A process of the same app with the same settings (as `flask shell` would be): its
    # commit hands the job to the broker the prod script started, and only publishes it
    # (JOBS_WORKER=celery): the prod worker sends the mail.
    env = {
        **edge.env,
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{edge.env['REDIS_PORT']}/0",
        "JOBS_WORKER": "celery",
    }
    script = (
        "import time\n"
        "from wsgi import app\n"
        "from webapp.core.db import unit_of_work\n"
        "from webapp.core.mail import send_mail_later\n"
        "with app.app_context(), unit_of_work() as uow:\n"
        "    send_mail_later(uow.session, to='prod@example.com', subject='From prod', text='Hello.\\n')\n"
        "time.sleep(1)\n"
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        timeout=60,
        check=True,
        capture_output=True,
    )

    (message,) = edge.inbox.wait_for("prod@example.com", timeout=5)
    assert message["Subject"] == "From prod"
    assert time.monotonic() - started < 6
