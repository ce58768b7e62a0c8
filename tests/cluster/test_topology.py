"""`make cluster-up`'s whole topology: two app instances behind nginx, on PgBouncer and a replica."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

import pytest

from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.cluster


class Browser:
    """A client that keeps cookies, as a browser or requests.Session does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=10) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"null")


def test_the_edge_spreads_requests_over_both_app_instances(cluster: Cluster) -> None:
    browser = Browser(cluster.edge_url)

    statuses = [browser.call("GET", "/health/ready")[0] for _ in range(8)]

    assert statuses == [200] * 8
    upstreams = set(re.findall(r" ua=(127\.0\.0\.1:\d+) ", cluster.edge_access_log.read_text()))
    assert len(upstreams) == 2, upstreams


def test_a_client_of_the_edge_reads_its_own_writes_through_either_instance(cluster: Cluster) -> None:
    browser = Browser(cluster.edge_url)
    account = {"email": "edge@example.com", "full_name": "Edge", "password": "password123"}
    status, _headers, user = browser.call("POST", "/api/v1/users", account)
    assert status == 201, user
    status, _headers, token = browser.call(
        "POST", "/api/v1/tokens", {"email": account["email"], "password": "password123"}
    )
    assert status == 201
    auth = {"Authorization": f"Bearer {token['token']}"}

    version = user["version"]
    for round_ in range(4):
        status, _h, changed = browser.call(
            "PATCH",
            f"/api/v1/users/{user['id']}",
            {"full_name": f"Edge {round_}"},
            {**auth, "If-Match": f'"{version}"'},
        )
        assert status == 200, changed
        version = changed["version"]
        # The cookie the write set picks a replica that has the write, or the primary.
        status, _h, read = browser.call("GET", f"/api/v1/users/{user['id']}")
        assert (status, read["version"], read["full_name"]) == (200, version, f"Edge {round_}")


def test_a_job_queued_through_the_edge_is_run_by_the_clusters_worker(cluster: Cluster) -> None:
    """The worker `make cluster-up` starts takes jobs from its Redis and runs them through PgBouncer."""
    browser = Browser(cluster.edge_url)
    account = {"email": "edge-admin@example.com", "full_name": "Admin", "password": "password123"}
    status, _headers, user = browser.call("POST", "/api/v1/users", account)
    assert status == 201, user
    with cluster.connect(cluster.primary_url) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE users SET is_admin = true WHERE id = %s", (user["id"],))
    status, _headers, token = browser.call(
        "POST", "/api/v1/tokens", {"email": account["email"], "password": "password123"}
    )
    auth = {"Authorization": f"Bearer {token['token']}"}
    items = [{"email": "from-a-job@example.com", "full_name": "Job", "password": "password123"}]

    status, headers, job = browser.call(
        "POST", "/api/v1/users/bulk", {"items": items}, {**auth, "Prefer": "respond-async"}
    )
    assert status == 202, job
    deadline = time.monotonic() + 5
    while job["state"] not in {"succeeded", "failed"} and time.monotonic() < deadline:
        time.sleep(0.1)
        job = browser.call("GET", headers["Location"], headers=auth)[2]

    assert job["state"] == "succeeded", job
