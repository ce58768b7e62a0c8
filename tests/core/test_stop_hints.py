"""The scripts that start servers say what stops them: make cluster-down for the cluster's."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def running_edge(tmp_path: Path) -> Iterator[Path]:
    """A run folder whose gunicorn, nginx and Celery worker pid files name live processes of those names."""
    (tmp_path / "nginx").mkdir()
    processes = {
        name: subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 60"])
        for name in ("gunicorn", "nginx", "celery")
    }
    (tmp_path / "gunicorn.pid").write_text(str(processes["gunicorn"].pid))
    (tmp_path / "nginx" / "nginx.pid").write_text(str(processes["nginx"].pid))
    (tmp_path / "celery.pid").write_text(str(processes["celery"].pid))
    (tmp_path / "prod.env").write_text("PORT=18080\nAPP_PORT=18000\nAPP_INSTANCES=1\n")
    yield tmp_path
    for process in processes.values():
        process.kill()
        process.wait()


def up(run_dir: Path, **env: str) -> str:
    answered = subprocess.run(
        [str(ROOT / "scripts" / "prod.sh"), "up"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PROD_RUN_DIR": str(run_dir), **env},
        timeout=30,
    )
    return answered.stderr


def test_prod_says_make_prod_down_stops_it(running_edge: Path) -> None:
    assert "make prod-down stops it" in up(running_edge)


def test_the_clusters_instances_say_make_cluster_down_stops_them(running_edge: Path) -> None:
    cluster = (ROOT / "scripts" / "cluster.sh").read_text()
    start_apps = cluster[cluster.index("start_apps() {") :]
    hint = re.search(r'PROD_STOP_HINT="([^"]+)"', start_apps[: start_apps.index("\n}\n")])

    assert hint is not None, "cluster.sh starts its app instances without saying what stops them"
    said = up(running_edge, PROD_STOP_HINT=hint.group(1))
    assert "make cluster-down stops it" in said
    assert "prod-down" not in said
