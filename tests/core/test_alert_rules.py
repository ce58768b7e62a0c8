"""The alert rules and the operations guide name only metrics the app exposes, and
Prometheus's own checker accepts the rules (deploy/prometheus/alerts.yml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# A family's samples: a histogram is also named by its family name (in the docs).
SUFFIXES = {"counter": ("_total",), "histogram": ("", "_bucket", "_count", "_sum"), "gauge": ("",)}


def _exposed(client: FlaskClient) -> set[str]:
    client.get("/api/v1/users/1")  # a request, so that the per-route series exist
    text = client.get("/metrics").get_data(as_text=True)
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


@pytest.mark.parametrize("document", [ALERTS, ROOT / "docs" / "operations.md"], ids=lambda path: path.name)
def test_every_metric_named_is_one_the_app_exposes(client: FlaskClient, document: Path) -> None:
    named = set(re.findall(r"\bwebapp_[a-z_]+[a-z]\b", document.read_text(encoding="utf-8")))

    assert named, document
    assert named <= _exposed(client)


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("CI must check the alert rules: install prometheus (it brings promtool)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")

    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
